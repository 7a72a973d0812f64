"""Index bench: recall@10 and queries/s of Flat, IVF and HNSW collections against numpy brute
force measured in the same run, filtered-search latency, bytes per vector, and upsert throughput
with the durable log on.

Data: synthetic clustered float32 vectors, unit length (cosine). Real embeddings have a low
intrinsic dimension, so the clusters live on a random 32-dimensional subspace of the 512
dimensions (plus a little isotropic noise): clusters in the full 512 dimensions are either
trivially separable or close to uniform on the sphere, and neither says much about real data.

    python bench/index.py [--n 1000000] [--dim 512] [--queries 1000] [--gpu-queries 100000]

Where faiss-gpu sees a GPU, a GPU line follows the table: the same collection opened with
search_device='gpu', exact search of --gpu-queries queries in one batch (target: 100k queries/s
on 1M x 512), by the replica alone and through Collection.search. Without one that line says it
was skipped (--gpu-dry-run runs it with a CPU copy in place of the GPU, to check the code path).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import faiss
import numpy as np

from index import Catalog
from index.ann import auto_factory
from index.gpu import gpu_count


def clustered(
    n: int, dim: int, clusters: int, seed: int, latent: int = 32, spread: float = 0.6
) -> np.ndarray:
    """Gaussian clusters in a `latent`-d space (the same for every seed), mapped into `dim`-d by a
    fixed random orthonormal basis, plus isotropic noise; `seed` draws the points."""
    fixed = np.random.default_rng(0)
    centers = fixed.normal(size=(clusters, latent)).astype(np.float32)
    basis = np.linalg.qr(fixed.normal(size=(dim, latent)))[0].astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), np.float32)
    for i in range(0, n, 100_000):
        m = min(100_000, n - i)
        z = centers[rng.integers(0, clusters, size=m)]
        z = z + spread * rng.normal(size=(m, latent)).astype(np.float32)
        out[i : i + m] = z @ basis.T + 0.02 * rng.normal(size=(m, dim)).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def brute_force(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """numpy top-k by inner product, blocked so memory stays bounded."""
    best_s = np.full((len(q), 0), -np.inf, np.float32)
    best_i = np.zeros((len(q), 0), np.int64)
    for i in range(0, len(x), 200_000):
        s = q @ x[i : i + 200_000].T
        part = np.argpartition(-s, k, axis=1)[:, :k]
        cand_s = np.concatenate([best_s, np.take_along_axis(s, part, 1)], 1)
        cand_i = np.concatenate([best_i, part + i], 1)
        order = np.argsort(-cand_s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, order, 1), np.take_along_axis(cand_i, order, 1)
    return best_i


def recall(hits, truth: np.ndarray, k: int) -> float:
    got = [{int(h.id) for h in row[:k]} for row in hits]
    return float(
        np.mean([len(g & set(t[:k].tolist())) / k for g, t in zip(got, truth, strict=True)])
    )


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def index_bytes(col) -> int:
    with tempfile.NamedTemporaryFile() as f:
        faiss.write_index(col._ann.index, f.name)
        return os.path.getsize(f.name)


def gpu_flat(root: Path, q: np.ndarray, truth: np.ndarray, k: int, args, flat_qps: float) -> str:
    """Exact search on the GPU replica of the Flat collection, queries in one batch: the replica's
    own search (labels and scores), and the whole Collection.search (plus ids and metadata)."""
    if args.gpu_dry_run:
        options, label = {"gpu_clone": faiss.clone_index}, "CPU copy standing in for a GPU"
    elif gpu_count() == 0:
        return "GPU exact search: skipped (this faiss is a CPU build or sees no GPU)"
    else:
        options, label = {"search_device": "gpu"}, "GPU"
    gcat = Catalog(root, auto_maintain=False, **options)
    gcol = gcat.get("bench")
    _, t_copy = timed(gcol.wait)  # the replica is made in the background on open
    assert gcol.search_device == "gpu", "the replica did not come up"
    extra = clustered(max(args.gpu_queries - len(q), 0), args.dim, args.clusters, seed=3)
    big = np.concatenate([q, extra])[: args.gpu_queries]
    gcol.search(big[:100], k=k)  # warm-up
    n0 = gcol.gpu.searches
    _, t_raw = timed(lambda: gcol.gpu.search(gcol._ann, gcol.lsn, big, k, 32))
    hits, t = timed(lambda: gcol.search(big, k=k))
    assert gcol.gpu.searches == n0 + 2, "a search did not go to the replica"
    r = recall(hits[: len(truth)], truth[: len(hits)], k)
    gcat.close()
    raw, full = len(big) / t_raw, len(big) / t
    return (
        f"exact search on the {label} (Flat replica, {len(big):,} queries in one batch): "
        f"{raw:,.0f} queries/s ({raw / flat_qps:,.1f}x CPU Flat), with ids and metadata "
        f"{full:,.0f} queries/s, recall@10 {r:.3f}; copy to the device {t_copy:.1f} s "
        f"(target >= 100,000 queries/s: {'met' if raw >= 100_000 else 'NOT met'})"
    )


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=10_000, help="items per upsert call")
    ap.add_argument("--skip-hnsw", action="store_true")
    ap.add_argument("--gpu-queries", type=int, default=100_000, help="batch for the GPU line")
    ap.add_argument(
        "--gpu-dry-run",
        action="store_true",
        help="run the GPU line with a CPU copy in place of the GPU (checks the code, not speed)",
    )
    ap.add_argument("--dir", default=None, help="data directory (default: a temp dir)")
    return ap.parse_args()


def load(cat: Catalog, root: Path, x: np.ndarray, args: argparse.Namespace):
    """The 'bench' collection with every vector and its metadata; prints the upsert figures."""
    rng = np.random.default_rng(2)
    cats = rng.integers(0, 10, size=args.n)
    rare = rng.random(args.n) < 0.001
    col = cat.create("bench", args.dim, index="Flat")
    ids = [str(i) for i in range(args.n)]
    metas = [{"cat": int(c), "rare": bool(r)} for c, r in zip(cats, rare, strict=True)]
    t0 = time.perf_counter()
    for i in range(0, args.n, args.batch):
        col.upsert(ids[i : i + args.batch], x[i : i + args.batch], metas[i : i + args.batch])
    t_up = time.perf_counter() - t0
    single = cat.create("single", args.dim, index="Flat")
    _, t_single = timed(lambda: [single.upsert([f"s{i}"], x[i : i + 1]) for i in range(300)])
    db_bytes = sum(  # the database and its write-ahead log not yet checkpointed into it
        f.stat().st_size for f in (root / "bench").glob("items.sqlite*") if f.is_file()
    )
    print(
        f"upsert, batches of {args.batch:,}: {args.n / t_up:,.0f} items/s "
        f"(each batch fsynced before it returns); one item per call: {300 / t_single:,.0f} items/s"
    )
    print(f"store on disk: {db_bytes / args.n:,.0f} bytes/vector (float32 vector + JSON metadata)")
    return col


def filtered_latency(col, q: np.ndarray, k: int) -> dict[str, list[float]]:
    """p50 ms of one query at a time on the current index: cold (filter evaluated in SQLite,
    without and with an expression index on the key) and warm (label set cached)."""
    lat = {}
    filters = (("cat == 3 (10%)", {"cat": 3}), ("rare (0.1%)", {"rare": True}))

    def p50_ms(fn, reps: int = 20) -> float:
        return float(np.percentile([timed(fn)[1] for _ in range(reps)], 50) * 1e3)

    def cold(flt):
        def f():
            col._filter_cache.clear()
            col.search(q[0], k=k, filter=flt, nprobe=32)

        return f

    for name, flt in filters:
        lat[name] = [p50_ms(cold(flt), 5)]
    col.index_field("cat")
    col.index_field("rare")
    for name, flt in filters:
        lat[name].append(p50_ms(cold(flt)))
        lat[name].append(p50_ms(lambda flt=flt: col.search(q[1], k=k, filter=flt, nprobe=32)))
    lat["no filter"] = [p50_ms(lambda: col.search(q[2], k=k, nprobe=32))] * 3
    return lat


def report(rows, np_qps, gpu_line, sizes: dict[str, int], n, t_build, ivf_name, lat) -> None:
    flat_qps = rows[0][2]
    print()
    print(f"{'index':<28} {'recall@10':>9} {'queries/s':>11} {'x numpy':>8} {'x Flat':>7}")
    for label, r, qps in rows:
        print(f"{label:<28} {r:>9.3f} {qps:>11,.0f} {qps / np_qps:>8.1f} {qps / flat_qps:>7.1f}")
    ok = [(lbl, r, qps) for lbl, r, qps in rows if r >= 0.95 and qps >= 10 * flat_qps]
    print(
        f"target (recall@10 >= 0.95 at >= 10x Flat queries/s): "
        f"{'met by ' + ', '.join(lbl for lbl, _, _ in ok) if ok else 'NOT met'}"
    )
    print(gpu_line)
    print()
    print("bytes/vector: " + ", ".join(f"{name} {b / n:,.0f}" for name, b in sizes.items()))
    print("build: " + ", ".join(f"{kk} {v:,.0f} s" for kk, v in t_build.items()))
    print(
        f"single-query latency on {ivf_name} nprobe=32, p50 ms "
        "(cold without field index / cold with field index / warm):"
    )
    for name, (a, b, c) in lat.items():
        print(f"  {name:<16} {a:9.1f} {b:9.1f} {c:9.1f}")


def main() -> None:
    args = parse_args()
    k = 10
    root = Path(args.dir or tempfile.mkdtemp(prefix="jointspace-bench-"))
    print(
        f"# index bench: n={args.n:,} dim={args.dim} queries={args.queries} "
        f"faiss={faiss.__version__} threads={faiss.omp_get_max_threads()} data={root}"
    )
    x = clustered(args.n, args.dim, args.clusters, seed=0)
    q = clustered(args.queries, args.dim, args.clusters, seed=1)  # same distribution, new points
    truth, t_np = timed(lambda: brute_force(x, q, k))
    np_qps = args.queries / t_np
    print(f"numpy brute force: {np_qps:,.1f} queries/s (the baseline)")

    cat = Catalog(root, auto_maintain=False, search_device="cpu")
    col = load(cat, root, x, args)
    rows = []

    def run(label: str, **kw) -> None:
        hits, t = timed(lambda: col.search(q, k=k, **kw))
        rows.append((label, recall(hits, truth, k), args.queries / t))

    run("Flat (exact)")
    sizes = {"Flat": index_bytes(col)}
    gpu_line = gpu_flat(root, q, truth, k, args, rows[0][2])
    t_build = {}
    _, t_build["IVF"] = timed(lambda: col.rebuild(auto_factory(args.n)))
    ivf_name = col.index_factory
    sizes[ivf_name] = index_bytes(col)
    for nprobe in (8, 16, 32, 64):
        run(f"{ivf_name} nprobe={nprobe}", nprobe=nprobe)
    lat = filtered_latency(col, q, k)
    if not args.skip_hnsw:
        _, t_build["HNSW"] = timed(lambda: col.rebuild("HNSW32,Flat"))
        sizes["HNSW32,Flat"] = index_bytes(col)
        for ef in (32, 64, 128):
            run(f"HNSW32,Flat efSearch={ef}", ef=ef)
    report(rows, np_qps, gpu_line, sizes, args.n, t_build, ivf_name, lat)
    cat.close()
    if args.dir is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
