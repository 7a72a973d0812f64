"""Service bench: text embeddings/s with 32 concurrent clients on loopback, dynamic batching
against batch-of-one serving in the same run, p50/p99 latency, and the service's overhead over
the bare model call at batch 1. The load generator runs in a separate process, as clients would:
it shares the machine's cores with the service but not its interpreter.

    python bench/service.py [--model house] [--clients 32] [--requests 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import numpy as np

from encoders import load_encoder
from runtime.container import Runtime
from runtime.settings import Settings
from service.runner import running

WORDS = "a red blue green dress shoe bag coat striped cotton leather small big photo of the".split()


def texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(3, 12))) for _ in range(n)]


async def load(
    url: str, bodies: list[dict], clients: int, timeout: float = 60
) -> tuple[float, list[float], dict]:
    """Every client posts one body to /v1/embeddings at a time, back to back, until the bodies
    run out: (requests/s, latencies, status code counts)."""
    queue = list(reversed(bodies))
    lat: list[float] = []
    codes: dict[int, int] = {}

    async def client(c: httpx.AsyncClient) -> None:
        while queue:
            body = queue.pop()
            t0 = time.perf_counter()
            r = await c.post(f"{url}/v1/embeddings", json=body)
            lat.append(time.perf_counter() - t0)
            codes[r.status_code] = codes.get(r.status_code, 0) + 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as c:
        t0 = time.perf_counter()
        await asyncio.gather(*[client(c) for _ in range(clients)])
        took = time.perf_counter() - t0
    return len(bodies) / took, lat, codes


def run_load(url: str, inputs: list[str], clients: int) -> tuple[float, list[float], dict]:
    """One-text requests, one per input."""
    return asyncio.run(load(url, [{"input": t} for t in inputs], clients))


def server_sums(url: str) -> dict[str, float]:
    """Sums of the service's own timing metrics for /v1/embeddings and the text batcher."""
    from prometheus_client.parser import text_string_to_metric_families

    want = {("jointspace_request_seconds_sum", "route", "/v1/embeddings"): "server",
            ("jointspace_wait_seconds_sum", "modality", "text"): "to model",
            ("jointspace_batch_seconds_sum", "modality", "text"): "model"}  # fmt: skip
    out = {}
    for fam in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for s in fam.samples:
            for (name, label, value), key in want.items():
                if s.name == name and s.labels.get(label) == value:
                    out[key] = s.value
    return out


def split(rounds: list[dict[str, float]]) -> str:
    """Median over rounds of the per-request means, in ms: arrival to model, model, the rest."""
    med = {k: statistics.median(r[k] for r in rounds) * 1e3 for k in rounds[0]}
    after = med["server"] - med["to model"] - med["model"]
    return (
        f"{med['server']:.2f} ms = arrival to model {med['to model']:.2f} + model "
        f"{med['model']:.2f} + model to response {after:.2f}"
    )


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(xs, p) * 1e3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="house")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=1500)
    ap.add_argument("--overhead-only", action="store_true", help="Only the batch-1 overhead.")
    ap.add_argument("--rounds", type=int, default=4, help="Alternating rounds per HTTP stack.")
    args = ap.parse_args()
    enc = load_encoder(args.model, device="cpu")
    data = texts(args.requests)

    # bare model call at batch 1, the floor for one request
    for t in data[:20]:
        enc.embed_text([t])
    bare = []
    for t in data[:200]:
        t0 = time.perf_counter()
        enc.embed_text([t])
        bare.append(time.perf_counter() - t0)

    results, seq, parts = {}, {}, {}
    stacks = {"asyncio + h11": dict(loop="asyncio", http="h11"),
              "uvloop + httptools": dict(loop="uvloop", http="httptools")}  # fmt: skip
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:

        def remote(url: str, inputs: list[str], clients: int):
            return pool.submit(run_load, url, inputs, clients).result()

        # sequential latency at batch 1: the service's own overhead, on both HTTP stacks, in
        # alternating rounds, split by the service's own metrics into arrival-to-model, model,
        # and model-to-response
        for _ in range(args.rounds):
            for stack, options in stacks.items():
                with tempfile.TemporaryDirectory() as d:
                    s = Settings.load({}, model=args.model, data_dir=d, demo=False, max_batch=1)
                    with running(s, Runtime(s, encoder=enc), **options) as url:
                        remote(url, data[:30], 1)  # warm-up
                        m0 = server_sums(url)
                        seq.setdefault(stack, []).extend(remote(url, data[:200], 1)[1])
                        m1 = server_sums(url)
                        parts.setdefault(stack, []).append({k: (m1[k] - m0[k]) / 200 for k in m0})
        if not args.overhead_only:
            for name, max_batch in (("batch of one", 1), ("dynamic batching", 64)):
                with tempfile.TemporaryDirectory() as d:
                    s = Settings.load({}, model=args.model, data_dir=d, demo=False,
                                      max_batch=max_batch, queue_size=4096)  # fmt: skip
                    with running(s, Runtime(s, encoder=enc)) as url:
                        remote(url, data[:64], 8)  # warm-up
                        results[name] = remote(url, data, args.clients)

    b50 = statistics.median(bare) * 1e3
    overhead = "\n".join(
        f"batch 1, one client, {stack}: bare model call p50 {b50:.2f} ms, through the service "
        f"p50 {pct(lat, 50):.2f} ms: overhead {pct(lat, 50) - b50:.2f} ms\n  in the server, mean "
        f"per request: {split(parts[stack])}"
        for stack, lat in seq.items()
    )
    if args.overhead_only:
        print(overhead)
        return
    print(
        f"# service bench: {args.model}, {args.clients} concurrent clients, {args.requests} "
        "one-text requests to /v1/embeddings on loopback, CPU"
    )
    print(f"{'serving':<18} {'texts/s':>9} {'p50 ms':>8} {'p99 ms':>8}  status codes")
    for name, (rate, lat, codes) in results.items():
        print(f"{name:<18} {rate:>9.1f} {pct(lat, 50):>8.1f} {pct(lat, 99):>8.1f}  {codes}")
    ratio = results["dynamic batching"][0] / results["batch of one"][0]
    print(f"dynamic batching / batch of one: {ratio:.2f}x (target >= 3x)")
    print(overhead)


if __name__ == "__main__":
    main()
