"""Waiting for a batcher's answer on behalf of a request: the request's cancel event (set when its
client goes away, carrying its arrival time), the time limit, and the model's failures turned into
ModelError. Used by every part that submits to a batcher.

Imports only runtime.batcher and encoders (no web framework).
"""

from __future__ import annotations

import asyncio
from typing import Any

from encoders import InputError
from runtime.batcher import Overloaded


class Cancel(asyncio.Event):
    """Set when the request's client goes away. Carries the time the request arrived, where its
    queue-wait budget starts (time spent reading and parsing it counts too)."""

    def __init__(self, arrived: float | None = None) -> None:
        super().__init__()
        self.arrived = arrived


class ModelError(RuntimeError):
    """The model failed on a batch; the requests of that batch fail with it."""


def arrived(cancel: asyncio.Event | None) -> float | None:
    return getattr(cancel, "arrived", None)


async def wait(fut: asyncio.Future, cancel: asyncio.Event | None, timeout: float) -> Any:
    """Wait for a batch result; give up (cancelling the job) if `cancel` is set first."""
    stop = asyncio.ensure_future(cancel.wait()) if cancel is not None else None
    try:
        done, _ = await asyncio.wait(
            {fut} if stop is None else {fut, stop}, timeout=timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )  # fmt: skip
    finally:
        if stop is not None:
            stop.cancel()
    if fut in done:
        return _result(fut)
    fut.cancel()
    if not done:
        raise TimeoutError("the model did not answer in time")
    raise asyncio.CancelledError("client went away")


def _result(fut: asyncio.Future) -> Any:
    try:
        return fut.result()
    except (InputError, Overloaded, asyncio.CancelledError):
        raise
    except Exception as e:
        raise ModelError(f"{type(e).__name__}: {e}") from e
