"""Several models bench: the same load split over two models in one service, against the whole
load on one model, in one run.

Everything runs in its own process, as in production: the services (`jointspace serve`), the load
generators (`hey`, one process per model) and this script, which only starts them and reads hey's
per-request CSV.

- one model: `jointspace serve --model house`, `--clients` clients sending one text each to
  /v1/embeddings for `--seconds`: texts/s and p99 (the baseline);
- two models: `jointspace serve --model house --model house:models/house` (the same weights loaded
  twice, as a fine-tuned model beside its base would be: each model has its own batchers), half
  the clients naming each model, at the same time: texts/s of both together and p99 of each;
  their ratio to the baseline.

    python bench/models.py [--clients 32] [--seconds 20]

Needs `hey` (Debian: apt-get install hey).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench.storm import TEXT, codes, hey, serve

ROOT = Path(__file__).resolve().parents[1]


def body(model: str) -> bytes:
    return json.dumps({"input": TEXT, "model": model}).encode()


def load(url: str, models: list[str], clients: int, seconds: float) -> dict[str, list[tuple]]:
    """`clients` split evenly over `models`, one hey process per model, all at once."""
    out: dict[str, list[tuple]] = {}
    each = clients // len(models)

    def run(m: str) -> None:
        out[m] = hey(url, body(m), each, seconds=seconds)

    threads = [threading.Thread(target=run, args=(m,)) for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def figures(rows: list[tuple], seconds: float) -> tuple[float, float]:
    """Accepted texts/s and p99 (ms) of the requests that finished after the first second."""
    ok = [lat for off, lat, code in rows if code == 200 and 1 <= off + lat < seconds]
    return len(ok) / (seconds - 1), float(np.percentile(ok, 99)) * 1e3 if ok else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=20)
    args = ap.parse_args()
    second = f"house:{ROOT / 'models' / 'house'}"

    with serve("house", {}) as url:
        hey(url, body("house"), 4, n=200)  # warm-up
        one = load(url, ["house"], args.clients, args.seconds)["house"]
    base, base_p99 = figures(one, args.seconds)
    print(f"one model,  {args.clients} clients      {base:7.0f} texts/s, p99 {base_p99:5.0f} ms, "
          f"codes {codes(one)}")  # fmt: skip

    with serve(["house", second], {}) as url:
        for m in ("house", second):
            hey(url, body(m), 2, n=100)  # warm-up, each model
        two = load(url, ["house", second], args.clients, args.seconds)
    both = [r for rows in two.values() for r in rows]
    total, p99 = figures(both, args.seconds)
    print(f"two models, {args.clients // 2}+{args.clients // 2} clients   {total:7.0f} texts/s "
          f"({total / base:.2f}x one model), p99 {p99:5.0f} ms ({p99 / base_p99:.2f}x), "
          f"codes {codes(both)}")  # fmt: skip
    for name, m in (("house", "house"), ("house:DIR", second)):
        rate, mp99 = figures(two[m], args.seconds)
        print(f"  model {name:10s}            {rate:7.0f} texts/s, p99 {mp99:5.0f} ms")


if __name__ == "__main__":
    main()
