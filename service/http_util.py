"""Small HTTP helpers: the streaming body cap, per-request timing, and decoding of base64 media.
Pure ASGI; nothing outside service/ imports this."""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable

from encoders import InputError

DATA_URL = re.compile(r"^data:(?P<mime>[\w.+/-]*)(?P<params>(;[\w-]+=[^;,]*)*)(?P<b64>;base64)?,")


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
    over, or as soon as the bytes received pass the cap (chunked uploads). Past the cap no more of
    the body is read, and whatever the app tries to answer after that (the framework turns a
    failed read into its own 400) is dropped: the client gets the 413."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for k, v in scope.get("headers", []):
            if k == b"content-length" and v.isdigit() and int(v) > self.limit:
                return await self._reject(send)
        seen = 0
        state = {"started": False, "rejected": False}

        async def limited_receive():
            nonlocal seen
            if state["rejected"]:
                raise BodyTooLarge
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    if not state["started"]:
                        state["rejected"] = True
                        await self._reject(send)
                    raise BodyTooLarge
            return msg

        async def guarded_send(msg):
            if state["rejected"]:
                return  # the 413 has been sent; the app's own answer is dropped
            if msg["type"] == "http.response.start":
                state["started"] = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            if not state["started"] and not state["rejected"]:
                await self._reject(send)

    async def _reject(self, send) -> None:
        msg = f"request body over {self.limit} bytes"
        body = json.dumps({"error": {"type": "payload_too_large", "message": msg, "code": 413}})
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
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
        scope.setdefault("state", {})["arrived"] = t0  # where a request's queue-wait budget starts
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
