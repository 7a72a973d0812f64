"""The dynamic batcher: coalescing, back-pressure, dropped clients, failure isolation."""

from __future__ import annotations

import asyncio

import pytest

from service.batcher import Batcher, Overloaded


def run(coro):
    return asyncio.run(coro)


def test_concurrent_jobs_share_one_forward_pass():
    calls = []

    def fn(xs):
        calls.append(list(xs))
        return [x * 10 for x in xs]

    async def main():
        b = Batcher(fn, max_batch=8, max_wait_ms=50, queue_size=100)
        b.start()
        futs = [b.submit([i, i + 100]) for i in range(3)]
        out = await asyncio.gather(*futs)
        await b.stop()
        return out

    assert run(main()) == [[0, 1000], [10, 1010], [20, 1020]]
    assert calls == [[0, 100, 1, 101, 2, 102]]


def test_batches_never_exceed_max_batch():
    sizes = []

    def fn(xs):
        sizes.append(len(xs))
        return xs

    async def main():
        b = Batcher(fn, max_batch=4, max_wait_ms=20, queue_size=100)
        b.start()
        await asyncio.gather(*[b.submit([i, i]) for i in range(5)])
        await b.stop()

    run(main())
    assert sizes == [4, 4, 2]


def test_full_queue_refuses_at_once():
    async def main():
        b = Batcher(lambda xs: xs, max_batch=2, max_wait_ms=1, queue_size=2)
        b.submit([1])
        b.submit([2])
        with pytest.raises(Overloaded) as e:
            b.submit([3])
        assert e.value.retry_after >= 1
        b.start()
        await b.stop()

    run(main())


def test_cancelled_job_is_skipped_before_batching():
    seen = []

    def fn(xs):
        seen.extend(xs)
        return xs

    async def main():
        b = Batcher(fn, max_batch=8, max_wait_ms=10, queue_size=10)
        gone = b.submit(["gone"])
        kept = b.submit(["kept"])
        gone.cancel()  # the client went away while its job waited
        b.start()
        assert await kept == ["kept"]
        await b.stop()

    run(main())
    assert seen == ["kept"]


def test_a_failing_batch_fails_exactly_its_jobs():
    def fn(xs):
        if "bad" in xs:
            raise RuntimeError("model exploded")
        return xs

    async def main():
        b = Batcher(fn, max_batch=2, max_wait_ms=5, queue_size=10)
        b.start()
        f1, f2, f3 = b.submit(["a"]), b.submit(["bad"]), b.submit(["c"])
        res = await asyncio.gather(f1, f2, f3, return_exceptions=True)
        await b.stop()
        return res

    a, bad, c = run(main())
    assert isinstance(a, RuntimeError) and str(a) == "model exploded"
    assert isinstance(bad, RuntimeError)
    assert c == ["c"]
