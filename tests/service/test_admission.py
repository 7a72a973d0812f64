"""The door: POST/PUT requests beyond the limit wait for a turn, then get 429 before their body
is parsed; turns pass first come, first served; other methods pass."""

from __future__ import annotations

import asyncio
import json

from service.admission import Door


class App:
    """An ASGI app that holds each POST until released, recording the order it saw them."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.release = asyncio.Event()
        self.arrived: list[float] = []

    async def __call__(self, scope, receive, send) -> None:
        self.seen.append(scope["path"])
        self.arrived.append(scope["state"].get("arrived", 0.0))
        if scope["method"] != "GET":
            await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(door: Door, path: str, method: str = "POST", body: bytes = b'{"input": "x"}'):
    sent, chunks = [], [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(msg):
        sent.append(msg)

    headers = [(b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "method": method, "path": path, "headers": headers, "state": {}}
    await door(scope, receive, send)
    return sent, chunks


def test_requests_past_the_limit_wait_their_turn_then_get_429_unparsed():
    async def main():
        app, refused, counts = App(), [], []
        door = Door(app, limit=1, wait_s=0.05, on_refuse=lambda: refused.append(1),
                    on_change=counts.append)  # fmt: skip
        first = asyncio.create_task(call(door, "/first"))
        await asyncio.sleep(0.01)
        sent, left = await call(door, "/second")  # no turn within 50 ms
        assert app.seen == ["/first"] and refused == [1]
        assert left == []  # its body was read (and dropped): the connection can be kept
        start, body = sent
        assert start["status"] == 429
        assert dict(start["headers"])[b"retry-after"] == b"1"
        assert b"connection" not in dict(start["headers"])
        assert json.loads(body["body"]) == {"error": {
            "type": "overloaded", "code": 429, "message": "the server is busy: 1 requests are in "
            "progress and none ended within 0.1 s; retry in 1 s"}}  # fmt: skip
        health, _ = await call(door, "/health", method="GET")  # other methods pass
        assert health[0]["status"] == 200
        waiting = asyncio.create_task(call(door, "/third"))
        await asyncio.sleep(0.01)
        app.release.set()  # the first ends: its turn passes straight to the third
        await first
        sent, _ = await waiting
        assert sent[0]["status"] == 200
        assert app.seen == ["/first", "/health", "/third"]
        assert counts == [1, 0] and door.active == 0
        assert app.arrived[2] > app.arrived[0]  # the budget starts when a request passes

    asyncio.run(main())


def test_a_large_refused_body_is_not_read_and_the_connection_closes():
    async def main():
        app = App()
        door = Door(app, limit=1, wait_s=0.01)
        first = asyncio.create_task(call(door, "/first"))
        await asyncio.sleep(0.005)
        sent, left = await call(door, "/big", body=b"x" * (2 << 20))
        assert sent[0]["status"] == 429 and len(left) == 1  # not read
        assert dict(sent[0]["headers"])[b"connection"] == b"close"
        app.release.set()
        await first

    asyncio.run(main())
