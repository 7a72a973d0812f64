"""Dynamic batching: requests from many clients share one forward pass per model and modality.

Each request submits a job (its list of inputs). One worker per batcher takes jobs from the queue
until `max_batch` inputs are gathered or `max_wait_ms` has passed since the first, runs the model
once in a worker thread, and hands every job its slice of the result.

Load shedding (as TEI and vLLM do it), so that accepted requests keep their latency and a client
can tell an overloaded service from a slow one:
- the queue holds at most `queue_size` *inputs* (not jobs: 64 requests of 64 texts are 4,096);
- a job is refused at once when the queue, at the measured seconds per input, would keep it
  waiting longer than `max_queue_wait_ms`;
- a job that has waited past that budget anyway is failed when its turn comes, not run.
Both raise `Overloaded` (the HTTP layer answers 429 with Retry-After). A job whose client went away
is skipped before batching; a failing model call fails exactly the jobs of that batch. The batcher
knows nothing of HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


class Overloaded(Exception):
    """Refused to keep latency bounded; retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float, reason: str = "queue_full") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.reason = reason


@dataclass
class Job:
    inputs: Sequence[Any]
    future: asyncio.Future
    arrived: float  # time.perf_counter() when the request came in: the budget starts here


class Batcher:
    def __init__(
        self,
        fn: Callable[[list[Any]], Sequence[Any]],
        *,
        max_batch: int,
        max_wait_ms: float,
        queue_size: int,
        max_queue_wait_ms: float = 1000.0,
        on_batch: Callable[[int, float], None] | None = None,
        on_shed: Callable[[int, str], None] | None = None,
        on_wait: Callable[[float], None] | None = None,
    ) -> None:
        """`fn` maps a list of inputs to a same-length sequence of results (it runs in a thread)."""
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.queue_size = queue_size
        self.budget = max_queue_wait_ms / 1000
        self.on_batch, self.on_shed, self.on_wait = on_batch, on_shed, on_wait
        self._jobs: deque[Job] = deque()
        self._queued = 0  # inputs in _jobs
        self._running = 0  # inputs in the batch now on the model
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task | None = None
        self._per_input_s = 0.0  # running estimate of model seconds per input, for admission

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._worker())

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        if self._task is None:
            return
        while self._jobs or self._running:
            self._idle.clear()
            await self._idle.wait()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    @property
    def depth(self) -> int:
        """Inputs waiting for a batch."""
        return self._queued

    def expected_wait(self, extra: int = 0) -> float:
        """Seconds a job of `extra` inputs queued now would wait until its batch has run."""
        return (self._queued + self._running + extra) * self._per_input_s

    def submit(self, inputs: Sequence[Any], arrived: float | None = None) -> asyncio.Future:
        """Queue a job; its future resolves to the list of results. Raises Overloaded. The budget
        runs from `arrived` (time.perf_counter() when the request came in) when given."""
        n = len(inputs)
        now = time.perf_counter()
        arrived = now if arrived is None else min(arrived, now)
        if self._queued + n > self.queue_size and self._queued:
            self._refuse(n, "queue_full", f"the server is busy: {self._queued} inputs are queued "
                         f"(limit {self.queue_size})")  # fmt: skip
        wait = self.expected_wait(n) + (now - arrived)
        if wait > self.budget and (self._queued or self._running):
            self._refuse(n, "queue_wait", f"the server is busy: the request would wait "
                         f"{wait:.1f} s, over the {self.budget:.1f} s budget")  # fmt: skip
        fut = asyncio.get_running_loop().create_future()
        self._jobs.append(Job(list(inputs), fut, arrived))
        self._queued += n
        self._wake.set()
        return fut

    def _refuse(self, n: int, reason: str, message: str) -> None:
        if self.on_shed:
            self.on_shed(n, reason)
        retry = max(1.0, self.expected_wait() - self.budget / 2)
        raise Overloaded(f"{message}; retry in {retry:.0f} s", retry, reason)

    async def _next(self, timeout: float | None) -> Job | None:
        while not self._jobs:
            self._wake.clear()
            if timeout is not None and timeout <= 0:
                return None
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                return None
        job = self._jobs.popleft()
        self._queued -= len(job.inputs)
        return job

    def _expired(self, job: Job) -> bool:
        waited = time.perf_counter() - job.arrived
        if waited <= self.budget:
            return False
        if self.on_shed:
            self.on_shed(len(job.inputs), "expired")
        retry = max(1.0, self.expected_wait())
        job.future.set_exception(Overloaded(
            f"the server is busy: the request waited {waited:.1f} s, over the "
            f"{self.budget:.1f} s budget; retry in {retry:.0f} s", retry, "expired",
        ))  # fmt: skip
        return True

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        carry: Job | None = None
        while True:
            job = carry or await self._next(None)
            carry = None
            jobs, n = [], 0
            deadline = loop.time() + self.max_wait
            while job is not None:
                if job.future.done() or self._expired(job):  # client left, or waited too long
                    pass
                elif jobs and n + len(job.inputs) > self.max_batch:
                    carry = job  # would overflow: it opens the next batch
                    break
                else:
                    jobs.append(job)
                    n += len(job.inputs)
                if n >= self.max_batch:
                    break
                job = await self._next(deadline - loop.time())
            if jobs:
                await self._run(jobs, n)
            if not self._jobs and carry is None:
                self._idle.set()

    async def _run(self, jobs: list[Job], n: int) -> None:
        inputs = [x for j in jobs for x in j.inputs]
        self._running = n
        t0 = time.perf_counter()
        if self.on_wait:  # arrival to the model: parsing, queueing and batching, per request
            for j in jobs:
                self.on_wait(t0 - j.arrived)
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
            self._running = 0
            per = took / max(1, n)
            self._per_input_s = (
                per if not self._per_input_s else 0.8 * self._per_input_s + 0.2 * per
            )
            if self.on_batch:
                self.on_batch(n, took)
