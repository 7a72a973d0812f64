"""Quantized collections against float: Recall@10 (against exact float search by numpy, measured in
the same run), index bytes per vector and queries/s of collections with quantization none (Flat),
int8 (SQ8) and binary (BFlat), at several rescoring depths, with each figure's ratio to float's.

Data (--data):
- house (default): the house model's vectors of Fashion-MNIST images (train and test, 70,000),
  each tinted one of the house colours, and again in a second colour until there are --n; the
  queries are --queries of those images in a third colour, not in the collection.
- clustered: bench/index.py's synthetic clustered unit vectors (--dim dimensions).

    python bench/quantized.py [--n 100000] [--queries 1000] [--data house|clustered] [--dim 512]

Every collection is exhaustive (index Flat and its codes) so that the figures measure the codes,
not an ANN structure. The baseline is the float collection's own search (no rescoring); rescore
10 at k 10 means the codes' own top 10, rescored among themselves; 40 is the default (4 x k).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index import Catalog  # noqa: E402

K = 10
RESCORE = (10, 40, 100)  # 40 = the default, 4 x k


def house_vectors(n: int, n_queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    from encoders import load_encoder
    from housedata.sets import COLOURS, fashion_mnist, tint

    grey = np.concatenate([fashion_mnist("train")[0], fashion_mnist("test")[0]])
    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    first = rng.integers(len(names), size=len(grey))
    second = (first + rng.integers(1, len(names) - 1, size=len(grey))) % len(names)
    third = (second + 1) % len(names)
    third[third == first] = (third[third == first] + 1) % len(names)
    extra = rng.choice(len(grey), size=max(0, n - len(grey)), replace=False)
    asked = rng.choice(len(grey), size=n_queries, replace=False)
    plan = [(i, first[i]) for i in range(min(n, len(grey)))] + [(i, second[i]) for i in extra]
    plan += [(i, third[i]) for i in asked]
    enc = load_encoder("house", device="cpu")
    out = []
    for at in range(0, len(plan), 5000):
        imgs = [Image.fromarray(tint(grey[i], names[c])) for i, c in plan[at : at + 5000]]
        out.append(enc.embed_images(imgs))
    vecs = np.concatenate(out).astype(np.float32)
    return vecs[:n], vecs[n:]


def clustered_vectors(n: int, n_queries: int, dim: int, seed: int):
    spec = importlib.util.spec_from_file_location("bench_index", ROOT / "bench" / "index.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.clustered(n, dim, 1000, seed), module.clustered(n_queries, dim, 1000, seed + 1)


def truth(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    out = []
    for at in range(0, len(q), 100):
        s = q[at : at + 100] @ x.T
        out.append(np.argsort(-s, axis=1)[:, :K])
    return np.concatenate(out)


def measure(col, q: np.ndarray, want: np.ndarray, rescore: int | None) -> tuple[float, float]:
    col.search(q[:10], K, rescore=rescore)  # warm
    t = time.perf_counter()
    hits = col.search(q, K, rescore=rescore)
    qps = len(q) / (time.perf_counter() - t)
    recall = np.mean([len({int(h.id) for h in row} & set(w.tolist())) / K
                      for row, w in zip(hits, want, strict=True)])  # fmt: skip
    return float(recall), qps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--data", choices=("house", "clustered"), default="house")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t = time.perf_counter()
    if args.data == "house":
        x, q = house_vectors(args.n, args.queries, args.seed)
    else:
        x, q = clustered_vectors(args.n, args.queries, args.dim, args.seed)
    print(f"data: {args.data}, {len(x)} x {x.shape[1]}, {len(q)} queries "
          f"({time.perf_counter() - t:.0f} s to make)")  # fmt: skip
    want = truth(x, q)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cat = Catalog(tmp, auto_maintain=False, search_device="cpu")
        for kind in ("none", "int8", "binary"):
            col = cat.create(kind, x.shape[1], index="Flat", quantization=kind)
            for at in range(0, len(x), 10_000):
                col.upsert([str(i) for i in range(at, min(at + 10_000, len(x)))],
                           x[at : at + 10_000])  # fmt: skip
            info = col.info()
            for r in (None,) if kind == "none" else RESCORE:  # float: its default, no rescoring
                recall, qps = measure(col, q, want, r)
                rows.append((kind, info["index"], r, recall, qps, info["index_bytes"] / len(x)))
        cat.close()
    f_rec, f_qps, f_b = rows[0][3:]
    print(f"{'quantization':12} {'index':6} {'rescore':>7} {'recall@10':>9} {'x float':>7} "
          f"{'queries/s':>9} {'x float':>7} {'index B/vec':>11} {'x float':>7}")  # fmt: skip
    for kind, index, r, rec, qps, b in rows:
        print(f"{kind:12} {index:6} {r or '-':>7} {rec:9.4f} {rec / f_rec:7.4f} {qps:9.0f} "
              f"{qps / f_qps:7.2f} {b:11.1f} {b / f_b:7.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
