"""Overload bench: does the service shed load, and do accepted requests keep their latency?

Two scenarios against the default settings (house model), each for `--seconds`: 256 clients
sending one text each without pause, and 64 clients sending 64 texts each. Then one normal request
right after the load stops. Latency is given as the clients see it (p50/p99 of 200s) and as the
server sees it (every answer, from its own histogram's buckets): the clients share the two cores
with the server, so on a small machine their own scheduling is part of what they see. Both with
load shedding as shipped (queue-wait budget 1 s) and, in
the same run, with shedding off (budget and queue so large that nothing is refused), as today's
baseline. The load comes from a separate process, as clients would.

    python bench/overload.py [--seconds 25] [--budget-ms 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import numpy as np

WORDS = "a red blue green dress shoe bag coat striped cotton leather small big photo of the".split()


async def load(url: str, clients: int, texts_per: int, seconds: float) -> dict:
    """Every client sends requests back to back until the time is up."""
    rng = np.random.default_rng(0)
    codes: Counter = Counter()
    ok_lat: list[float] = []
    stop = time.perf_counter() + seconds

    async def client(c: httpx.AsyncClient, k: int) -> None:
        while time.perf_counter() < stop:
            texts = [" ".join(rng.choice(WORDS, size=6)) + f" {k}" for _ in range(texts_per)]
            t0 = time.perf_counter()
            try:
                r = await c.post(f"{url}/v1/embeddings", json={"input": texts})
                codes[r.status_code] += 1
                if r.status_code == 200:
                    ok_lat.append(time.perf_counter() - t0)
                elif r.status_code == 429:  # a client that honours Retry-After, as SDKs do
                    await asyncio.sleep(float(r.headers.get("retry-after", "1")))
            except httpx.HTTPError as e:
                codes[type(e).__name__] += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=120) as c:
        await asyncio.gather(*[client(c, k) for k in range(clients)])
        await asyncio.sleep(0.5)
        t0 = time.perf_counter()
        after = await c.post(f"{url}/v1/embeddings", json={"input": "a red dress"})
        after_ms = (time.perf_counter() - t0) * 1e3
    pct = (lambda p: float(np.percentile(ok_lat, p)) * 1e3) if ok_lat else (lambda p: float("nan"))
    return {"codes": dict(codes), "p50": pct(50), "p99": pct(99), "after": (after.status_code,
            after_ms), "texts_ok": len(ok_lat) * texts_per / seconds}  # fmt: skip


def server_quantiles(url: str) -> tuple[float, float]:
    """Upper bounds (s) of the server's own p50 and p99 for /v1/embeddings, every answer
    included, from its latency histogram: time from the request reaching the app to the answer."""
    from prometheus_client.parser import text_string_to_metric_families

    buckets = []
    for fam in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for s in fam.samples:
            if (
                s.name == "jointspace_request_seconds_bucket"
                and s.labels["route"] == "/v1/embeddings"
            ):
                buckets.append((float(s.labels["le"]), s.value))
    buckets.sort()
    total = buckets[-1][1]
    q = lambda p: next(le for le, n in buckets if n >= p * total)  # noqa: E731
    return q(0.5), q(0.99)


def run_load(url: str, clients: int, texts_per: int, seconds: float) -> dict:
    return asyncio.run(load(url, clients, texts_per, seconds))


def main() -> None:
    from encoders import load_encoder
    from runtime.container import Runtime
    from runtime.settings import Settings
    from service.runner import running

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="house")
    ap.add_argument("--seconds", type=float, default=25)
    ap.add_argument("--budget-ms", type=float, default=1000)
    args = ap.parse_args()
    enc = load_encoder(args.model, device="cpu")
    configs = {
        "shedding off": dict(max_queue_wait_ms=600_000, queue_size=1_000_000),
        f"shedding on ({args.budget_ms:.0f} ms)": dict(max_queue_wait_ms=args.budget_ms),
    }
    scenarios = {"256 clients x 1 text": (256, 1), "64 clients x 64 texts": (64, 64)}
    print(f"# overload bench: {args.model}, {args.seconds:.0f} s per scenario, /v1/embeddings on "
          "loopback, CPU, default settings otherwise")  # fmt: skip
    print(f"{'scenario':<24} {'serving':<24} {'200/s texts':>11} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'server p50/p99 s':>16} {'after':>12}  codes")  # fmt: skip
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        for sname, (clients, per) in scenarios.items():
            for cname, overrides in configs.items():
                with tempfile.TemporaryDirectory() as d:
                    s = Settings.load({}, model=args.model, data_dir=d, demo=False, **overrides)
                    with running(s, Runtime(s, encoder=enc)) as url:
                        pool.submit(run_load, url, 4, 1, 1.0).result()  # warm-up
                        r = pool.submit(run_load, url, clients, per, args.seconds).result()
                        s50, s99 = server_quantiles(url)
                code, ms = r["after"]
                server = f"<={s50:g} / <={s99:g}"
                print(f"{sname:<24} {cname:<24} {r['texts_ok']:>11.0f} {r['p50']:>8.0f} "
                      f"{r['p99']:>8.0f} {server:>16} {f'{code} {ms:.0f} ms':>12}  {r['codes']}",
                      flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
