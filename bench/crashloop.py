"""Crash loop through the HTTP API: start the service as a process, put items from several
writers, SIGKILL the service while puts are in flight, restart it, and check that every item whose
put was acknowledged (200) in that cycle is there with its vector (and a sample of 500 from earlier
cycles), and that the count lies between the acknowledged and the sent.

    python bench/crashloop.py [--cycles 20] [--model house] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(model: str, data: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "cli.main", "serve", "--model", model, "--data-dir", str(data),
           "--port", str(port), "--no-demo"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited with {proc.returncode} at start-up")
        time.sleep(0.2)
    raise RuntimeError("the service did not start")


def writer(url: str, prefix: str, dim: int, acked: dict, sent: set, stop: threading.Event) -> None:
    rng = np.random.default_rng(abs(hash(prefix)) % 2**32)
    n = 0
    with httpx.Client(timeout=30) as c:
        while not stop.is_set():
            ids = [f"{prefix}-{n + i}" for i in range(10)]
            vecs = rng.normal(size=(10, dim)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            sent.update(ids)
            body = {
                "items": [{"id": i, "vector": v.tolist()} for i, v in zip(ids, vecs, strict=True)]
            }
            try:
                r = c.put(f"{url}/collections/crash/items", json=body)
            except httpx.HTTPError:
                return  # the service died under this put: not acknowledged
            if r.status_code == 200:
                acked.update(zip(ids, vecs, strict=True))
            n += 10


def cycle(args, data: Path, k: int, acked: dict, sent: set, rng) -> tuple[int, int]:
    """One start, load, kill, restart and check; returns (acknowledged so far, missing)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start(args.model, data, port)
    if k == 0:
        httpx.post(f"{url}/collections", json={"name": "crash", "metric": "ip"}).raise_for_status()
    dim = httpx.get(f"{url}/collections/crash").json()["dim"]
    stop = threading.Event()
    threads = [threading.Thread(target=writer, args=(url, f"c{k}w{w}", dim, acked, sent, stop))
               for w in range(3)]  # fmt: skip
    for t in threads:
        t.start()
    time.sleep(rng.uniform(0.5, 2.5))
    proc.send_signal(signal.SIGKILL)  # while puts are in flight
    proc.wait()
    stop.set()
    for t in threads:
        t.join()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start(args.model, data, port)
    try:
        return len(acked), check(url, acked, sent, f"c{k}w", rng)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def check(url: str, acked: dict, sent: set, cycle_prefix: str, rng) -> int:
    """Missing acknowledged items (or wrong vectors) among this cycle's and a sample of 500
    earlier ones; the count bounds the rest (every acknowledged id, nothing never sent)."""
    with httpx.Client(timeout=30) as c:
        count = c.get(f"{url}/collections/crash").json()["count"]
        if count < len(acked) or count > len(sent):
            raise AssertionError(f"{count} items: acknowledged {len(acked)}, sent {len(sent)}")
        new = [i for i in acked if i.startswith(cycle_prefix)]
        old = [i for i in acked if not i.startswith(cycle_prefix)]
        sample = list(rng.choice(old, size=min(500, len(old)), replace=False)) if old else []
        missing = 0
        for item_id in new + sample:
            vec = acked[item_id]
            r = c.get(f"{url}/collections/crash/items/{item_id}", params={"include_vector": True})
            ok = r.status_code == 200 and np.allclose(r.json()["vector"], vec, atol=1e-6)
            missing += not ok
        return missing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--model", default="house")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    acked: dict[str, np.ndarray] = {}
    sent: set[str] = set()
    lost = 0
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.cycles):
            total, missing = cycle(args, Path(tmp) / "data", k, acked, sent, rng)
            lost += missing
            print(f"cycle {k + 1}: {total} acknowledged items so far, {missing} missing",
                  flush=True)  # fmt: skip
    print(
        f"crash loop: {args.cycles} SIGKILL cycles, {len(acked)} acknowledged items, "
        f"{lost} lost, {len(sent) - len(acked)} ids sent but not acknowledged, "
        f"{time.time() - t0:.0f} s"
    )


if __name__ == "__main__":
    main()
