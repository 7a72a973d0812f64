"""The door: a bound on the POST and PUT requests in progress, checked before a request's body is
read or parsed (pure ASGI middleware; nothing outside service/ imports this).

A refusal that has to read, parse and validate its request costs about what serving a small one
does, so under a storm of clients that retry at once (they ignore Retry-After) the refusals alone
can take the cores from the model and keep the overload going after its cause has gone. At the
door a request that finds `limit` others in progress waits up to `wait_s` for one of them to end
(first come, first served; the turn passes straight to the waiter), and otherwise gets 429 with
Retry-After at the cost of reading its headers. Waiting at the door is what paces clients that
retry at once: each gets at most one refusal per `wait_s`.

A request's queue-wait budget (the batchers') starts when it passes the door. GET, HEAD, DELETE
and OPTIONS pass without a turn: health checks, metrics and reads stay answerable.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable

GATED = frozenset({"POST", "PUT", "PATCH"})
DRAIN_LIMIT = 1 << 20  # a refused body up to this size is read (and dropped): keep-alive holds


class Door:
    def __init__(
        self, app, limit: int, wait_s: float,
        on_refuse: Callable[[], None] | None = None,
        on_change: Callable[[int], None] | None = None,
    ) -> None:  # fmt: skip
        self.app, self.limit, self.wait_s = app, limit, wait_s
        self.on_refuse, self.on_change = on_refuse, on_change
        self.active = 0
        self._waiters: deque[asyncio.Future] = deque()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] not in GATED:
            return await self.app(scope, receive, send)
        if not await self._enter():
            if self.on_refuse:
                self.on_refuse()
            return await self._refuse(scope, receive, send)
        scope.setdefault("state", {})["arrived"] = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            self._leave()

    async def _enter(self) -> bool:
        if self.active < self.limit and not self._waiters:
            self._count(1)
            return True
        turn = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        await asyncio.wait({turn}, timeout=self.wait_s)
        if turn.done() or not turn.cancel():  # given a turn (by `_leave`, which counted it)
            return True
        self._waiters.remove(turn)
        return False

    def _leave(self) -> None:
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_result(True)  # the turn passes on: `active` stays
                return
        self._count(-1)

    def _count(self, d: int) -> None:
        self.active += d
        if self.on_change:
            self.on_change(self.active)

    async def _refuse(self, scope, receive, send) -> None:
        keep = await _drain(scope, receive)
        msg = (f"the server is busy: {self.limit} requests are in progress and none ended within "
               f"{self.wait_s:.1f} s; retry in 1 s")  # fmt: skip
        body = json.dumps({"error": {"type": "overloaded", "message": msg, "code": 429}}).encode()
        headers = [(b"content-type", b"application/json"), (b"retry-after", b"1"),
                   (b"content-length", str(len(body)).encode())]  # fmt: skip
        if not keep:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _drain(scope, receive) -> bool:
    """Read and drop a small body, so the connection can be kept; False for a large one."""
    for k, v in scope.get("headers", []):
        if k == b"content-length" and (not v.isdigit() or int(v) > DRAIN_LIMIT):
            return False
    seen = 0
    while True:
        msg = await receive()
        if msg["type"] != "http.request":
            return False
        seen += len(msg.get("body", b""))
        if not msg.get("more_body") or seen > DRAIN_LIMIT:
            return not msg.get("more_body")
