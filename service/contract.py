"""The API contract: the error responses each route declares, operation ids, and the OpenAPI
document as served, with the limits of the settings the service started with filled in.

Routes declare their errors with `errors(...)`; every error uses the one error model. The document
is built once, after start-up (the served model's vector length is known then): `x-limit` marks
left by service/schemas/ become `maxItems`, `maxLength` and the vector length, and when keys are
configured every guarded route gains 401, 403 and 429 and the bearer security scheme.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from service.schemas import ErrorResponse

DESCRIPTIONS = {
    400: "The request is well-formed but cannot be applied (e.g. a bad filter or index)",
    401: "Missing or invalid bearer key",
    403: "The key's role or collections do not allow this",
    404: "No such collection, item, model or media",
    409: "A conflict: the collection (or classifier) exists already, or it holds vectors of "
    "towers the model no longer has (re-embed it)",
    413: "The request body is over the configured limit",
    422: "Invalid input: the body, a parameter, a text, an image or a vector",
    429: "Too busy (queue full or queue-wait budget spent), or the key's rate; see Retry-After",
    500: "The model failed on the batch this request was in",
    503: "The model did not answer in time, the vector database behind the collections (a Milvus "
    "index_backend) cannot be reached (see Retry-After), or the collection is read-only after a "
    "disk I/O error until the service restarts",
    507: "The data directory is full, or below its free-space floor; nothing was written",
}
BATCHED = (413, 422, 429, 500, 503)  # every route whose work goes through the batcher


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that can answer these error statuses."""
    return {c: {"model": ErrorResponse, "description": DESCRIPTIONS[c]} for c in sorted(codes)}


def operation_id(route: APIRoute) -> str:
    """The route function's own name: `create_collection`, `search_collection`, `embed`..."""
    return route.name


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every APIRoute of the app, through the routers it includes."""
    contexts = iter_route_contexts(app.router.routes)
    return [c.original_route for c in contexts if isinstance(c.original_route, APIRoute)]


def _role(route: APIRoute) -> str | None:
    for dep in route.dependant.dependencies:
        role = getattr(dep.call, "role", None)
        if role:
            return role
    return None


def _fill_limits(node: Any, limits: dict[str, dict[str, int]]) -> None:
    if isinstance(node, dict):
        mark = node.pop("x-limit", None)
        if mark is not None:
            node.update(limits[mark])
        for v in node.values():
            _fill_limits(v, limits)
    elif isinstance(node, list):
        for v in node:
            _fill_limits(v, limits)


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The document for the running service (cached on the app after the first call)."""
    if app.openapi_schema:
        return app.openapi_schema
    settings, runtime = app.state.settings, app.state.runtime
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes,
        tags=app.openapi_tags,
    )  # fmt: skip
    _hoist_defs(doc, doc.setdefault("components", {}).setdefault("schemas", {}))
    # a vector's length: the served models' dimensions (those described so far; none known yet,
    # with lazy models, leaves it unstated)
    dims = [s.info["dim"] for s in runtime.served.slots.values() if s.info]
    dim = {"minItems": min(dims), "maxItems": max(dims)} if dims else {}
    _fill_limits(doc, {
        "items": {"maxItems": settings.max_items},
        "text": {"maxLength": settings.max_text_chars},
        "dim": dim,
        "captions": {"maxItems": min(settings.max_items, settings.caption_queue)},
        "caption_tokens": {"maximum": settings.max_caption_tokens},
        "caption_beams": {"maximum": settings.max_caption_beams},
        "generate_n": {"maximum": settings.max_generate_n},
        "generate_steps": {"maximum": settings.max_generate_steps},
    })  # fmt: skip
    if app.state.keyring.enabled:
        doc.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"}
        }
        guarded = {(r.path, m.lower()) for r in api_routes(app) if _role(r) for m in r.methods}
        for path, ops in doc.get("paths", {}).items():
            for method, op in ops.items():
                if (path, method) in guarded:
                    op["security"] = [{"bearer": []}]
                    for code in (401, 403, 429):
                        op["responses"].setdefault(str(code), _ref_response(code))
                    op["responses"] = dict(sorted(op["responses"].items()))
    app.openapi_schema = doc
    return doc


def _hoist_defs(node: Any, schemas: dict[str, Any]) -> None:
    """A schema embedded whole (the JSON form of /embed) carries its own `$defs`, which its
    `#/$defs/...` references cannot reach from the document's root: its definitions join
    components/schemas and the references point there."""
    if isinstance(node, dict):
        defs = node.pop("$defs", None)
        if defs:
            _repoint(node, defs)
            for name, schema in defs.items():
                _repoint(schema, defs)
                schemas.setdefault(name, schema)
        for v in node.values():
            _hoist_defs(v, schemas)
    elif isinstance(node, list):
        for v in node:
            _hoist_defs(v, schemas)


def _repoint(node: Any, defs: dict[str, Any]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in defs:
            node["$ref"] = "#/components/schemas/" + ref[8:]
        for v in node.values():
            _repoint(v, defs)
    elif isinstance(node, list):
        for v in node:
            _repoint(v, defs)


def _ref_response(code: int) -> dict[str, Any]:
    return {
        "description": DESCRIPTIONS[code],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }
