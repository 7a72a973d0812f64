"""Dynamic batching: requests from many clients share one forward pass per model and modality.

Each request submits a job (its list of inputs). One worker per batcher runs the model, in a thread
of the batcher's own, on everything queued, up to `max_batch` inputs, and hands every job its
slice of the result.
When the model is idle a job runs at once (no batching window: a lone client pays nothing); what
arrives while the model is busy is batched for the next pass, as TEI does. `max_wait_ms` > 0 adds
a window in which a batch waits to fill.

Load shedding, so that accepted requests keep their latency and a client can tell an overloaded
service from a slow one:
- the queue holds at most `queue_size` *inputs* (not jobs: 64 requests of 64 texts are 4,096);
- a job is refused at once when the work ahead of it, at the model's measured speed, would keep it
  waiting longer than its allowance: the `max_queue_wait_ms` budget, or `FAIR_SHARE` times the
  job's own compute when that is longer (a few large requests that the model serves in turn are
  queued, not refused);
- a job that has waited past its allowance anyway is failed when its turn comes, not run.
Both raise `Overloaded` (the HTTP layer answers 429 with Retry-After).

The speed is learned per batch size (seconds per input, for batch sizes in powers of two) and a
queue is priced at the batch sizes it will be served at: small batches, which refusals leave
behind, are slow per input but say nothing about a full queue, so the estimate does not feed on
its own refusals. A job whose client went away is skipped before batching; a failing model call
fails exactly the jobs of that batch. The batcher knows nothing of HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

#: a job may wait this many times its own compute when that is longer than the budget
FAIR_SHARE = 4


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
    allowance: float  # seconds it may wait before its batch starts


class Speed:
    """Seconds per input at each batch size (EWMA per power-of-two bucket), and what a number
    of inputs costs when served in batches of at most `max_batch`."""

    def __init__(self, max_batch: int) -> None:
        self.max_batch = max_batch
        self.per_input: dict[int, float] = {}  # bucket (bit length of the size) -> seconds

    def observe(self, n: int, seconds: float) -> None:
        b, per = n.bit_length(), seconds / max(1, n)
        old = self.per_input.get(b)
        self.per_input[b] = per if old is None else 0.7 * old + 0.3 * per

    def batch(self, n: int) -> float:
        """Seconds one batch of `n` inputs takes (0 before anything was measured)."""
        if n <= 0 or not self.per_input:
            return 0.0
        b = n.bit_length()
        near = min(self.per_input, key=lambda k: (abs(k - b), -k))  # ties: the larger batch
        return self.per_input[near] * n

    def cost(self, n: int) -> float:
        """Seconds `n` queued inputs take, served in full batches and one remainder."""
        full, rest = divmod(n, self.max_batch)
        return full * self.batch(self.max_batch) + self.batch(rest)


class Batcher:
    def __init__(
        self,
        fn: Callable[[list[Any]], Sequence[Any]],
        *,
        max_batch: int,
        max_wait_ms: float = 0.0,
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
        self.speed = Speed(max_batch)
        self._jobs: deque[Job] = deque()
        self._queued = 0  # inputs in _jobs
        self._running = 0  # inputs in the batch now on the model
        self._started = 0.0  # when that batch started
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task | None = None
        # one thread of its own runs the model: always the same thread, so the math library's
        # thread team is made once and kept, not one per thread of a shared pool
        self._thread: ThreadPoolExecutor | None = None

    def start(self) -> None:
        if self._task is None:
            self._thread = self._thread or ThreadPoolExecutor(1, thread_name_prefix="model")
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
        if self._thread is not None:
            self._thread.shutdown(wait=False)
            self._thread = None

    @property
    def depth(self) -> int:
        """Inputs waiting for a batch."""
        return self._queued

    def expected_wait(self) -> float:
        """Seconds a job queued now would wait until its batch starts: the rest of the batch on
        the model, then what is queued, priced at the batch sizes it will be served at."""
        left = 0.0
        if self._running:
            left = max(0.0, self.speed.batch(self._running) - (time.perf_counter() - self._started))
        return left + self.speed.cost(self._queued)

    def allowance(self, n: int) -> float:
        """Seconds a job of `n` inputs may wait: the budget, or FAIR_SHARE times its own compute."""
        return max(self.budget, FAIR_SHARE * self.speed.cost(n))

    def submit(self, inputs: Sequence[Any], arrived: float | None = None) -> asyncio.Future:
        """Queue a job; its future resolves to the list of results. Raises Overloaded. The wait
        runs from `arrived` (time.perf_counter() when the request came in) when given."""
        n = len(inputs)
        now = time.perf_counter()
        arrived = now if arrived is None else min(arrived, now)
        if self._queued + n > self.queue_size and self._queued:
            self._refuse(n, "queue_full", f"the server is busy: {self._queued} inputs are queued "
                         f"(limit {self.queue_size})")  # fmt: skip
        allowed = self.allowance(n)
        wait = self.expected_wait() + (now - arrived)
        if wait > allowed and (self._queued or self._running):
            self._refuse(n, "queue_wait", f"the server is busy: the request would wait "
                         f"{wait:.1f} s, over the {allowed:.1f} s budget")  # fmt: skip
        fut = asyncio.get_running_loop().create_future()
        self._jobs.append(Job(list(inputs), fut, arrived, allowed))
        self._queued += n
        self._wake.set()
        return fut

    def _retry(self) -> float:
        return max(1.0, self.expected_wait() - self.budget / 2)

    def _refuse(self, n: int, reason: str, message: str) -> None:
        if self.on_shed:
            self.on_shed(n, reason)
        retry = self._retry()
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
        if waited <= job.allowance:
            return False
        if self.on_shed:
            self.on_shed(len(job.inputs), "expired")
        retry = self._retry()
        job.future.set_exception(Overloaded(
            f"the server is busy: the request waited {waited:.1f} s, over the "
            f"{job.allowance:.1f} s budget; retry in {retry:.0f} s", retry, "expired",
        ))  # fmt: skip
        return True

    async def _gather(self, job: Job) -> tuple[list[Job], int, Job | None]:
        """The jobs of the next batch, starting with `job`: whatever is queued now (and, with a
        window, what arrives within it), up to max_batch inputs; and the job that did not fit."""
        loop = asyncio.get_running_loop()
        jobs, n = [], 0
        deadline = loop.time() + self.max_wait
        while job is not None:
            if job.future.done() or self._expired(job):  # client left, or waited too long
                pass
            elif jobs and n + len(job.inputs) > self.max_batch:
                return jobs, n, job  # would overflow: it opens the next batch
            else:
                jobs.append(job)
                n += len(job.inputs)
            if n >= self.max_batch:
                break
            job = await self._next(deadline - loop.time())
        return jobs, n, None

    async def _worker(self) -> None:
        carry: Job | None = None
        while True:
            first = carry or await self._next(None)
            jobs, n, carry = await self._gather(first)
            if jobs:
                await self._run(jobs, n)
            if not self._jobs and carry is None:
                self._idle.set()

    async def _run(self, jobs: list[Job], n: int) -> None:
        inputs = [x for j in jobs for x in j.inputs]
        self._running, self._started = n, time.perf_counter()
        t0 = self._started
        if self.on_wait:  # arrival to the model: parsing, queueing and batching, per request
            for j in jobs:
                self.on_wait(t0 - j.arrived)
        try:
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(self._thread, self.fn, inputs)
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
            self.speed.observe(n, took)
            if self.on_batch:
                self.on_batch(n, took)
