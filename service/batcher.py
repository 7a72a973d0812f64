"""Dynamic batching: requests from many clients share one forward pass per model and modality.

Each request submits a job (its list of inputs). One worker per batcher takes jobs from a bounded
queue until `max_batch` inputs are gathered or `max_wait_ms` has passed since the first, runs the
model once in a worker thread, and hands every job its slice of the result. A full queue refuses
new jobs at once (the HTTP layer answers 429); a job whose client went away is cancelled and
skipped before batching; a failing model call fails exactly the jobs of that batch. The batcher
knows nothing of HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


class Overloaded(Exception):
    """The queue is full; retry after `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"the server is busy: retry in {retry_after:.0f} s")
        self.retry_after = retry_after


@dataclass
class Job:
    inputs: Sequence[Any]
    future: asyncio.Future


class Batcher:
    def __init__(
        self,
        fn: Callable[[list[Any]], Sequence[Any]],
        *,
        max_batch: int,
        max_wait_ms: float,
        queue_size: int,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        """`fn` maps a list of inputs to a same-length sequence of results (it runs in a thread)."""
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=queue_size)
        self.on_batch = on_batch
        self._task: asyncio.Task | None = None
        self._busy_s = 0.05  # running estimate of one batch's duration, for Retry-After

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._worker())

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        if self._task is None:
            return
        await self.queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    @property
    def depth(self) -> int:
        return self.queue.qsize()

    def submit(self, inputs: Sequence[Any]) -> asyncio.Future:
        """Queue a job; its future resolves to the list of results. Raises Overloaded when full."""
        fut = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait(Job(list(inputs), fut))
        except asyncio.QueueFull:
            waiting = self.queue.qsize() / max(1, self.max_batch)
            raise Overloaded(retry_after=max(1.0, waiting * self._busy_s)) from None
        return fut

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        carry: Job | None = None
        while True:
            job = carry or await self.queue.get()
            carry = None
            jobs, n = [], 0
            deadline = loop.time() + self.max_wait
            while True:
                if job.future.done():  # cancelled: the client went away before batching
                    self.queue.task_done()
                elif jobs and n + len(job.inputs) > self.max_batch:
                    carry = job  # would overflow: it opens the next batch
                    break
                else:
                    jobs.append(job)
                    n += len(job.inputs)
                if n >= self.max_batch:
                    break
                remaining = deadline - loop.time()
                try:
                    job = (
                        self.queue.get_nowait()
                        if remaining <= 0
                        else await asyncio.wait_for(self.queue.get(), remaining)
                    )
                except (asyncio.QueueEmpty, TimeoutError):
                    break
            if jobs:
                await self._run(jobs, n)

    async def _run(self, jobs: list[Job], n: int) -> None:
        inputs = [x for j in jobs for x in j.inputs]
        t0 = time.perf_counter()
        try:
            results = await asyncio.to_thread(self.fn, inputs)
            if len(results) != len(inputs):
                raise RuntimeError(
                    f"model returned {len(results)} results for {len(inputs)} inputs"
                )
        except Exception as e:
            for j in jobs:
                if not j.future.done():
                    j.future.set_exception(e)
        else:
            start = 0
            for j in jobs:
                part = results[start : start + len(j.inputs)]
                start += len(j.inputs)
                if not j.future.done():
                    j.future.set_result(part)
        finally:
            took = time.perf_counter() - t0
            self._busy_s = 0.8 * self._busy_s + 0.2 * took
            if self.on_batch:
                self.on_batch(n, took)
            for _ in jobs:
                self.queue.task_done()
