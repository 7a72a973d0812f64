"""The dynamic batcher: coalescing, back-pressure, dropped clients, failure isolation."""

from __future__ import annotations

import asyncio

import pytest

from runtime.batcher import Batcher, Overloaded, Speed


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


def test_the_queue_bound_counts_inputs_not_jobs():
    shed = []

    async def main():
        b = Batcher(lambda xs: xs, max_batch=4, max_wait_ms=1, queue_size=10,
                    on_shed=lambda n, why: shed.append((n, why)))  # fmt: skip
        b.submit(list(range(6)))
        with pytest.raises(Overloaded) as e:
            b.submit(list(range(6)))  # 12 inputs would be queued: over 10
        assert e.value.reason == "queue_full"
        assert str(e.value).startswith("the server is busy: 6 inputs are queued (limit 10)")
        assert b.depth == 6
        b.start()
        await b.stop()

    run(main())
    assert shed == [(6, "queue_full")]


def test_a_job_that_would_wait_past_the_budget_is_refused_at_once():
    async def main():
        b = Batcher(lambda xs: xs, max_batch=1, queue_size=100, max_queue_wait_ms=200)
        b.speed.per_input = {1: 0.045}  # 45 ms per input, as if measured
        accepted = [b.submit([i]) for i in range(5)]  # 0, 45, 90, 135 and 180 ms ahead of them
        with pytest.raises(Overloaded) as e:
            b.submit(["one too many"])  # 225 ms ahead: over 200 ms
        assert e.value.reason == "queue_wait"
        assert str(e.value).startswith("the server is busy: the request would wait 0.2 s, over "
                                       "the 0.2 s budget; retry in 1 s")  # fmt: skip
        assert e.value.retry_after == 1.0
        b.start()
        assert await asyncio.gather(*accepted) == [[0], [1], [2], [3], [4]]
        await b.stop()

    run(main())


def test_a_large_job_may_wait_a_few_times_its_own_compute():
    async def main():
        b = Batcher(lambda xs: xs, max_batch=16, queue_size=1000, max_queue_wait_ms=100)
        b.speed.per_input = {1: 0.01, 5: 0.06}  # 10 ms alone; 60 ms an input in batches of 16
        accepted = [b.submit(list(range(16))) for _ in range(5)]  # up to 4 x 0.96 s ahead
        with pytest.raises(Overloaded) as e:
            b.submit(list(range(16)))  # 5 jobs ahead: 4.8 s, over 4 x its own 0.96 s
        assert str(e.value).startswith("the server is busy: the request would wait 4.8 s, over "
                                       "the 3.8 s budget")  # fmt: skip
        assert b.allowance(1) == 0.1  # a small job keeps the plain budget
        b.start()
        assert len(await asyncio.gather(*accepted)) == 5
        await b.stop()

    run(main())


def test_a_queue_is_priced_at_the_batch_sizes_it_will_be_served_at():
    speed = Speed(max_batch=64)
    for _ in range(10):
        speed.observe(1, 0.010)  # the small batches that refusals leave behind: 10 ms an input
    speed.observe(64, 0.064)  # a full batch: 1 ms an input
    assert speed.per_input == {1: pytest.approx(0.010), 7: pytest.approx(0.001)}
    assert speed.cost(128) == pytest.approx(0.128)  # two full batches, not 128 x 10 ms
    assert speed.cost(65) == pytest.approx(0.064 + 0.010)  # a full batch and a batch of one
    assert speed.batch(3) == pytest.approx(0.030)  # the nearest size measured: batches of one
    speed.observe(64, 0.128)
    assert speed.per_input[7] == pytest.approx(0.7 * 0.001 + 0.3 * 0.002)
    assert Speed(8).cost(100) == 0.0  # nothing measured: nothing is refused for time


def test_an_idle_model_runs_a_lone_job_at_once_and_batches_what_arrives_meanwhile():
    import threading

    calls, started, release = [], threading.Event(), threading.Event()

    def fn(xs):
        calls.append(list(xs))
        started.set()
        release.wait(5)
        return xs

    async def main():
        b = Batcher(fn, max_batch=8, queue_size=100)  # no batching window (the default)
        b.start()
        first = b.submit(["a"])
        while not started.is_set():
            await asyncio.sleep(0.001)
        rest = [b.submit([x]) for x in "bcd"]  # they arrive while the model is busy
        release.set()
        assert await first == ["a"]
        assert await asyncio.gather(*rest) == [["b"], ["c"], ["d"]]
        await b.stop()

    run(main())
    assert calls == [["a"], ["b", "c", "d"]]


def test_a_job_that_waited_past_the_budget_fails_instead_of_running():
    import threading

    seen, gate = [], threading.Event()

    def fn(xs):
        seen.extend(xs)
        gate.wait(5)
        return xs

    async def main():
        b = Batcher(fn, max_batch=1, max_wait_ms=0, queue_size=10, max_queue_wait_ms=100)
        b.start()
        first = b.submit(["first"])
        await asyncio.sleep(0.05)
        late = b.submit(["late"])  # nothing measured yet, so admitted; then waits 300 ms
        await asyncio.sleep(0.3)
        gate.set()
        assert await first == ["first"]
        with pytest.raises(Overloaded) as e:
            await late
        assert e.value.reason == "expired"
        assert "the request waited 0." in str(e.value) and "over the 0.1 s budget" in str(e.value)
        await b.stop()

    run(main())
    assert seen == ["first"]
