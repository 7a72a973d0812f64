"""Index backends bench: the same vectors, metadata and queries on FAISS (the default backend) and
on Milvus, in one run: upsert items/s, search queries/s with recall@10 against numpy brute force
(all queries in one call, and one query per call as the service sends them), and queries/s with a
filter matching 10% (one call of --filtered queries).

Data: the clustered unit vectors of bench/index.py (default 100k x 256), metadata {"cat": 0-9}.
Milvus is milvus-lite (a `.db` in a temp dir) unless --milvus names a server
(`--milvus http://HOST:19530`). Ratios are against the FAISS Flat row of the same run.

    python bench/backends.py [--n 100000] [--dim 256] [--queries 200] [--per-call 50]
                             [--filtered 20] [--milvus URI]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench.index import brute_force, clustered, recall
from index.backend import open_catalog

K = 10


def per_call(col, q: np.ndarray) -> float:
    """Queries/s, one query per call."""
    t0 = time.perf_counter()
    for row in q:
        col.search(row, k=K)
    return len(q) / (time.perf_counter() - t0)


def batched(col, q: np.ndarray, **kw) -> tuple[list, float]:
    """Hits and queries/s, all queries in one call."""
    t0 = time.perf_counter()
    hits = col.search(q, k=K, **kw)
    return hits, len(q) / (time.perf_counter() - t0)


def measure(cat, name: str, factory: str, x, metas, q, truth, args) -> dict:
    col = cat.create(name, args.dim, index=factory)
    ids = [str(i) for i in range(len(x))]
    t0 = time.perf_counter()
    for i in range(0, len(x), args.batch):
        col.upsert(ids[i : i + args.batch], x[i : i + args.batch], metas[i : i + args.batch])
    t_up = time.perf_counter() - t0
    t0 = time.perf_counter()
    col.settle()  # FAISS: rebuild/snapshot; Milvus: flush, seal, build the index
    t_settle = time.perf_counter() - t0
    per_call(col, q[:5])  # warm-up
    hits, qps = batched(col, q)
    _, fqps = batched(col, q[: args.filtered], filter={"cat": 3})
    return {
        "upsert": len(x) / t_up, "settle": t_settle, "recall": recall(hits, truth, K),
        "qps": qps, "per_call": per_call(col, q[: args.per_call]), "filtered_qps": fqps,
        "index": col.index_factory,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--per-call", type=int, default=50, help="queries sent one per call")
    ap.add_argument("--filtered", type=int, default=20, help="queries with the filter")
    ap.add_argument("--batch", type=int, default=5_000, help="items per upsert call")
    ap.add_argument("--milvus", default=None, help="a Milvus server URL (default: milvus-lite)")
    args = ap.parse_args()

    x = clustered(args.n, args.dim, clusters=1000, seed=1)
    q = clustered(args.queries, args.dim, clusters=1000, seed=2)
    truth = brute_force(x, q, K)
    rng = np.random.default_rng(3)
    metas = [{"cat": int(c)} for c in rng.integers(0, 10, size=args.n)]
    tmp = Path(tempfile.mkdtemp(prefix="jointspace-backends-"))
    milvus = f"milvus:{args.milvus or tmp / 'milvus.db'}"
    rows = []
    try:
        engines = (("faiss", "FAISS"), (milvus, "Milvus" if args.milvus else "milvus-lite"))
        for spec, label in engines:
            cat = open_catalog(spec, tmp / "collections")
            for factory in ("Flat", "HNSW32"):
                name = f"bench_{factory.lower()}"
                if name in cat.names():
                    cat.drop(name)
                rows.append((label, measure(cat, name, factory, x, metas, q, truth, args)))
                print(f"  {label} {factory}: done", file=sys.stderr, flush=True)
            cat.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = rows[0][1]
    print(f"{args.n:,} x {args.dim} vectors, k={K}; upserts in calls of {args.batch:,}; "
          f"{args.queries} queries in one call (recall, queries/s), {args.per_call} one per call, "
          f"{args.filtered} in one call with a filter matching 10%")  # fmt: skip
    print("| backend | index | upsert items/s | settle s | recall@10 | queries/s | x FAISS Flat "
          "| one per call q/s | filtered q/s |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, r in rows:
        print(f"| {label} | {r['index']} | {r['upsert']:,.0f} | {r['settle']:.1f} | "
              f"{r['recall']:.3f} | {r['qps']:,.0f} | {r['qps'] / base['qps']:.2f} | "
              f"{r['per_call']:,.0f} | {r['filtered_qps']:,.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
