"""Exact (brute-force) scoring of a collection's stored vectors: the top k of a filtered set small
enough to score directly, and exact scores for ANN candidates (re-ranking).

Reads vectors from the item store (index/store.py); knows nothing of FAISS, torch or HTTP.
"""

from __future__ import annotations

import numpy as np

from index.ann import pad_to_k, worst_score
from index.store import ItemStore


def order(scores: np.ndarray, metric: str) -> np.ndarray:
    """Column order of each row, best first (smallest distance for l2, largest score else)."""
    return np.argsort(scores if metric == "l2" else -scores, axis=1, kind="stable")


def score(q: np.ndarray, vecs: np.ndarray, metric: str) -> np.ndarray:
    """(queries, vectors) scores: squared distances for l2, inner products else."""
    if metric == "l2":
        return (q * q).sum(1)[:, None] - 2 * q @ vecs.T + (vecs * vecs).sum(1)[None, :]
    return q @ vecs.T


def exact_top_k(store: ItemStore, dim: int, metric: str, q: np.ndarray, k: int,
                allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Brute-force top-k over `allowed` labels (None: every item), vectors from the store."""
    best_s = np.zeros((len(q), 0), np.float32)
    best_l = np.zeros((len(q), 0), np.int64)
    if allowed is None:
        chunks = store.scan(dim)[1]
    else:
        chunks = (
            store.vectors(allowed[i : i + 50_000], dim) for i in range(0, len(allowed), 50_000)
        )
    for labels, vecs in chunks:
        s = np.concatenate([best_s, score(q, vecs, metric).astype(np.float32)], axis=1)
        lab = np.concatenate([best_l, np.broadcast_to(labels, (len(q), len(labels)))], axis=1)
        pick = order(s, metric)[:, :k]
        best_s = np.take_along_axis(s, pick, 1)
        best_l = np.take_along_axis(lab, pick, 1)
    return pad_to_k(best_s, best_l, k, metric)


def rescore(store: ItemStore, dim: int, metric: str, q: np.ndarray, cand: np.ndarray,
            k: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Exact scores for ANN candidates, from the stored float32 vectors; the best k of each row."""
    labels, vecs = store.vectors(np.unique(cand[cand >= 0]), dim)
    pos = {int(x): i for i, x in enumerate(labels)}
    exact = score(q, vecs, metric) if len(labels) else np.zeros((len(q), 0), np.float32)
    s = np.full(cand.shape, worst_score(metric), np.float32)
    for r in range(len(q)):
        for c, lab in enumerate(cand[r]):
            if lab >= 0 and int(lab) in pos:
                s[r, c] = exact[r, pos[int(lab)]]
    pick = order(s, metric)[:, :k]
    return np.take_along_axis(s, pick, 1), np.take_along_axis(cand, pick, 1)
