"""The one error shape, `{"error": {"type", "message", "code"}}`, for everything the service
answers: library errors, validation, the framework's own 404/405/400, overload and model failures.

`install(app)` registers every handler; `error_response` builds the body. Imports Starlette and
the library's error classes; no route logic here.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from encoders import InputError, JointspaceError, UnsupportedModality
from encoders.speech import NoRecogniser
from fusion.registry import Unknown
from generation.captioner import NoCaptioner
from generation.decoder import NoDecoder
from index import (
    CollectionError,
    CollectionExists,
    CollectionNotFound,
    IndexUnavailable,
    KeywordQueryError,
    StorageFailed,
    StorageFull,
    TowersChanged,
    Unsupported,
)
from runtime.batcher import Overloaded
from runtime.models import ModelNotServed, ModelUnavailable, UnknownModel
from runtime.pipeline import ItemNotFound
from runtime.waiting import ModelError
from service.access import Denied
from service.contract import api_routes

log = logging.getLogger("jointspace.service")

# Status -> error type, for HTTP errors raised by routes and by the framework itself.
TYPES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "invalid_request",
    429: "overloaded",
    503: "unavailable",
}

# Library errors -> (status, type). Starlette picks the most specific class by MRO.
LIBRARY = {
    InputError: (422, "invalid_input"),
    UnsupportedModality: (422, "unsupported_modality"),
    NoCaptioner: (422, "no_captioner"),
    NoDecoder: (422, "no_decoder"),
    NoRecogniser: (422, "no_speech_recognition"),
    CollectionNotFound: (404, "not_found"),
    Unknown: (404, "not_found"),  # a classifier or fusion head
    ItemNotFound: (404, "not_found"),  # an id query's item
    UnknownModel: (404, "not_found"),  # a model this service does not serve
    ModelNotServed: (409, "model_not_served"),  # a collection's model, not served now
    ModelUnavailable: (503, "model_unavailable"),  # a lazy model that failed to load
    CollectionExists: (409, "conflict"),
    TowersChanged: (409, "towers_changed"),  # vectors of the towers before a fine-tune
    KeywordQueryError: (422, "invalid_input"),
    Unsupported: (422, "unsupported"),
    CollectionError: (400, "invalid_request"),
    JointspaceError: (400, "invalid_request"),
}


UNPARSABLE = {
    "There was an error parsing the body": "the request body could not be parsed",
    "Invalid multipart data.": "the multipart body could not be parsed",
}


def error_response(
    status: int, type_: str, message: str, headers: dict | None = None
) -> JSONResponse:
    body = {"error": {"type": type_, "message": message, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


def allowed_methods(app: FastAPI, scope: dict) -> list[str]:
    """Every method some route of this path answers (Starlette's own 405 names only the first
    route that matched the path)."""
    methods: set[str] = set()
    for route in api_routes(app):
        match, _ = route.matches({**scope, "method": "__none__"})
        if match == Match.PARTIAL and getattr(route, "methods", None):
            methods |= set(route.methods)
    return sorted(methods)


async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
    status, headers = e.status_code, dict(e.headers or {})
    message = str(e.detail)
    if status == 404 and e.detail == "Not Found":  # the router's own: no route for this path
        message = f"no route {request.url.path}"
    elif status == 405:
        allow = allowed_methods(request.app, request.scope)
        headers["Allow"] = ", ".join(allow)
        message = f"method {request.method} is not allowed here; allowed: {', '.join(allow)}"
    elif status == 400 and e.detail in UNPARSABLE:  # the framework's: not JSON, bad multipart
        status, message = 422, UNPARSABLE[e.detail]
    return error_response(status, TYPES.get(status, "error"), message, headers or None)


async def _validation_error(_: Request, e: RequestValidationError) -> JSONResponse:
    first = e.errors()[0] if e.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(x) for x in first["loc"] if x != "body")
    text = first["msg"].removeprefix("Value error, ")
    msg = f"{where}: {text}" if where else text
    return error_response(422, "invalid_request", msg)


def _plain(status: int, kind: str):
    async def handler(_: Request, e: Exception) -> JSONResponse:
        return error_response(status, kind, str(e))

    return handler


async def _overloaded(_: Request, e: Overloaded) -> JSONResponse:
    retry = str(max(1, round(e.retry_after)))
    return error_response(429, "overloaded", str(e), {"Retry-After": retry})


async def _denied(_: Request, e: Denied) -> JSONResponse:
    return error_response(e.status, e.kind, str(e), e.headers)


async def _storage_full(request: Request, e: StorageFull) -> JSONResponse:
    request.app.state.metrics.writes_refused.labels(e.reason).inc()
    return error_response(507, "insufficient_storage", str(e))


async def _storage_failed(request: Request, e: StorageFailed) -> JSONResponse:
    request.app.state.metrics.writes_refused.labels("io_error").inc()
    log.error("%s", e)
    return error_response(503, "storage_error", str(e))


async def _index_unavailable(_: Request, e: IndexUnavailable) -> JSONResponse:
    log.warning("%s", e)
    return error_response(503, "index_unavailable", str(e), {"Retry-After": "5"})


async def _timeout(_: Request, e: TimeoutError) -> JSONResponse:
    return error_response(503, "timeout", str(e) or "timed out", {"Retry-After": "1"})


async def _model_error(_: Request, e: ModelError) -> JSONResponse:
    log.error("model call failed: %s", e)
    return error_response(500, "model_error", str(e))


async def _unexpected(_: Request, e: Exception) -> JSONResponse:
    log.exception("unexpected error")
    return error_response(500, "internal_error", f"internal error: {type(e).__name__}")


def install(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for exc, (status, kind) in LIBRARY.items():
        app.add_exception_handler(exc, _plain(status, kind))
    app.add_exception_handler(Overloaded, _overloaded)
    app.add_exception_handler(Denied, _denied)
    app.add_exception_handler(StorageFull, _storage_full)
    app.add_exception_handler(IndexUnavailable, _index_unavailable)
    app.add_exception_handler(StorageFailed, _storage_failed)
    app.add_exception_handler(TimeoutError, _timeout)
    app.add_exception_handler(ModelError, _model_error)
    app.add_exception_handler(Exception, _unexpected)
