"""Fusing a vector search with a keyword search. Each side finds its k_each best items; every item
of the union is then scored on both signals (its exact vector score, and its BM25 score for the
query's words, none when it matches no word), and the two are fused:

    weighted: score = alpha * v' + (1 - alpha) * b'
    rrf:      score = alpha / (60 + vector rank) + (1 - alpha) / (60 + keyword rank)

b' is the BM25 score divided by the union's best (0 without a match) and v' the vector score
scaled likewise from its theoretical minimum: for cosine (v + 1) / (best + 1); for ip and l2,
which have no such bound, min-max over the union (for l2 a smaller distance is better; all equal:
1). A bound rather than the union's own minimum (the theoretical min-max of Bruch et al., "An
Analysis of Fusion Functions for Hybrid Retrieval", 2023) keeps a handful of near-equal vector
scores from being stretched over the whole of [0, 1]. Ranks count from 1 over the union, tied
scores sharing the better rank; an item matching no word has no keyword term. Scoring the whole
union matters when a query word is common: each side's own list then ends at an arbitrary cut
among equally matching items, and an item just past the cut would lose the other side's weight.
Ties keep the vector side's order, then the keyword side's. Pure functions; knows nothing of
SQLite, FAISS or HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

RRF_K = 60
FUSIONS = ("weighted", "rrf")


@dataclass
class FusedHit:
    id: str
    score: float
    metadata: dict | None
    found_by: list[str] = field(default_factory=list)  # whose k_each list held it
    vector_score: float | None = None
    bm25: float | None = None  # None: it matches none of the query's words


def _ranks(scores: np.ndarray, lower_is_better: bool) -> np.ndarray:
    """1-based competition ranks (ties share the better rank)."""
    s = -scores if not lower_is_better else scores
    return np.searchsorted(np.sort(s), s, side="left") + 1


def _scaled(scores: np.ndarray, metric: str) -> np.ndarray:
    if metric == "cosine":
        return (scores + 1) / (scores.max() + 1) if scores.max() > -1 else np.ones_like(scores)
    lower_is_better = metric == "l2"
    lo, hi = scores.min(), scores.max()
    if hi == lo:
        return np.ones_like(scores)
    out = (scores - lo) / (hi - lo)
    return 1 - out if lower_is_better else out


def fuse(cands: list[FusedHit], k: int, fusion: str = "weighted", alpha: float = 0.5,
         metric: str = "cosine") -> list[FusedHit]:  # fmt: skip
    """The best k candidates (each with vector_score set and bm25 set or None), their `score`
    filled in by the fusion; `cands` in vector order, then keyword-only ones."""
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, not {fusion!r}")
    if not cands:
        return []
    v = np.array([c.vector_score for c in cands], dtype=np.float64)
    matched = np.array([c.bm25 is not None for c in cands])
    b = np.array([c.bm25 if c.bm25 is not None else 0.0 for c in cands], dtype=np.float64)
    if fusion == "weighted":
        best = b[matched].max() if matched.any() else 0.0
        b_part = np.where(matched, b / best if best > 0 else 1.0, 0.0)
        total = alpha * _scaled(v, metric) + (1 - alpha) * b_part
    else:
        k_rank = _ranks(np.where(matched, b, -np.inf), False)
        total = alpha / (RRF_K + _ranks(v, metric == "l2")) + np.where(
            matched, (1 - alpha) / (RRF_K + k_rank), 0
        )
    for c, s in zip(cands, total, strict=True):
        c.score = float(s)
    order = sorted(range(len(cands)), key=lambda i: -total[i])  # stable: the given order
    return [cands[i] for i in order[:k]]
