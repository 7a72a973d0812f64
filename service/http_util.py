"""Small HTTP helpers: the stable error shape, the streaming body cap, per-request timing,
bearer-key checks, and decoding of base64 media. Imports FastAPI/Starlette; nothing outside service/
imports this."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import time
from collections.abc import Callable

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse

from encoders import InputError

DATA_URL = re.compile(r"^data:(?P<mime>[\w.+/-]*)(?P<params>(;[\w-]+=[^;,]*)*)(?P<b64>;base64)?,")


def error_response(
    status: int, type_: str, message: str, headers: dict | None = None
) -> JSONResponse:
    body = {"error": {"type": type_, "message": message, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


def decode_b64(data: str, what: str) -> bytes:
    """Bytes of a data: URL or bare base64 string. URLs are refused: the server fetches nothing."""
    s = data.strip()
    if s.lower().startswith(("http://", "https://", "ftp://", "file:")):
        raise InputError(f"{what}: URLs are not fetched; send the bytes as base64 or a data: URL")
    if m := DATA_URL.match(s):
        if not m["b64"]:
            raise InputError(f"{what}: only base64 data: URLs are accepted")
        s = s[m.end() :]
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{what}: not valid base64") from None


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Caps request bodies while they stream in: 413 from the Content-Length header when it is
    over, or as soon as the bytes received pass the cap (chunked uploads)."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for k, v in scope.get("headers", []):
            if k == b"content-length" and v.isdigit() and int(v) > self.limit:
                return await self._reject(send)
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge
            return msg

        async def tracking_send(msg):
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send) -> None:
        msg = f"request body over {self.limit} bytes"
        body = json.dumps({"error": {"type": "payload_too_large", "code": 413, "message": msg}})
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body.encode()})


class Timed:
    """Pure ASGI middleware that reports (method, route template, status, seconds) of every HTTP
    request to `report` (Starlette's BaseHTTPMiddleware costs a task group per request)."""

    def __init__(self, app, report: Callable[[str, str, int, float], None]) -> None:
        self.app, self.report = app, report

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = 500

        async def status_send(msg):
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
            await send(msg)

        try:
            await self.app(scope, receive, status_send)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.report(scope["method"], path, status, time.perf_counter() - t0)


class KeyCheck:
    """Bearer tokens, compared in constant time against every configured key."""

    def __init__(self, full: list[str], read_only: list[str]) -> None:
        self.full = [k.encode() for k in full]
        self.read_only = [k.encode() for k in read_only]

    @property
    def enabled(self) -> bool:
        return bool(self.full or self.read_only)

    def access(self, request: Request) -> str:
        """'write', 'read', or raise 401."""
        if not self.enabled:
            return "write"
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(401, "missing bearer token", {"WWW-Authenticate": "Bearer"})
        t = token.strip().encode()
        full = False
        read = False
        for k in self.full:  # no early exit: the time taken does not depend on which key matched
            full |= hmac.compare_digest(t, k)
        for k in self.read_only:
            read |= hmac.compare_digest(t, k)
        if full:
            return "write"
        if read:
            return "read"
        raise HTTPException(401, "invalid bearer token", {"WWW-Authenticate": "Bearer"})
