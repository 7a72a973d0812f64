"""Fusing a vector search's hits with a keyword search's: reciprocal rank fusion or a weighted sum
of min-max normalised scores. Pure functions over the two ranked lists.

    rrf:      score = alpha / (60 + vector rank) + (1 - alpha) / (60 + keyword rank)
    weighted: score = alpha * v' + (1 - alpha) * b'

Ranks count from 1; a side that did not find an item adds nothing. v' and b' are each side's
scores scaled to [0, 1] over that side's hits (best 1, worst 0; a side with one hit, or all
equal, gives each 1); for the l2 metric a smaller distance is the better score. Ties keep the
vector side's order, then the keyword side's. Knows nothing of SQLite, FAISS or HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from index.checks import Hit

RRF_K = 60
FUSIONS = ("rrf", "weighted")


@dataclass
class FusedHit:
    id: str
    score: float
    metadata: dict | None
    found_by: list[str] = field(default_factory=list)
    vector_score: float | None = None
    bm25: float | None = None


def _scaled(scores: list[float], lower_is_better: bool) -> list[float]:
    if not scores:
        return []
    lo, hi = min(scores), max(scores)
    if hi == lo:
        return [1.0] * len(scores)
    out = [(s - lo) / (hi - lo) for s in scores]
    return [1 - x for x in out] if lower_is_better else out


def fuse(vector: list[Hit], keyword: list[Hit], k: int, fusion: str = "rrf",
         alpha: float = 0.5, l2: bool = False) -> list[FusedHit]:  # fmt: skip
    """The best k of both lists fused; `keyword` hits' scores are BM25 (higher is better)."""
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, not {fusion!r}")
    if fusion == "rrf":
        v_part = [alpha / (RRF_K + r) for r in range(1, len(vector) + 1)]
        k_part = [(1 - alpha) / (RRF_K + r) for r in range(1, len(keyword) + 1)]
    else:
        v_part = [alpha * x for x in _scaled([h.score for h in vector], l2)]
        k_part = [(1 - alpha) * x for x in _scaled([h.score for h in keyword], False)]
    out: dict[str, FusedHit] = {}
    for h, part in zip(vector, v_part, strict=True):
        out[h.id] = FusedHit(h.id, part, h.metadata, ["vector"], vector_score=h.score)
    for h, part in zip(keyword, k_part, strict=True):
        got = out.setdefault(h.id, FusedHit(h.id, 0.0, h.metadata))
        got.score += part
        got.found_by.append("keyword")
        got.bm25 = h.score
    ranked = sorted(out.values(), key=lambda x: -x.score)  # stable: vector order, then keyword
    return ranked[:k]
