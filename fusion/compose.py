"""Composed queries: "like this, but in blue" as arithmetic on joint-space vectors.

A query vector (from an image, a text, or an item already indexed) is moved by weighted text
vectors and re-normalised: q' = normalise(w0 * q + sum_i w_i * t_i). Negative weights push away
("not red"). `parse_modification` turns short phrases such as "in blue instead of red" or "but not
striped" into weighted terms. Pure functions over numpy arrays: no models, FAISS or HTTP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

DEFAULT_WEIGHT = 0.8  # of a modification term, relative to the query's 1.0


@dataclass(frozen=True)
class Term:
    text: str
    weight: float


_INSTEAD = re.compile(
    r"^(?:in |with |as )?(?P<new>.+?)\s+(?:instead of|rather than)\s+(?P<old>.+)$"
)
_NOT = re.compile(r"^(?:but\s+)?(?:not|no|without)\s+(?P<old>.+)$")
_LEAD = re.compile(r"^(?:but\s+)?(?:in|with|as|more|make it)\s+")


def parse_modification(text: str, weight: float = DEFAULT_WEIGHT) -> list[Term]:
    """Weighted terms for a modification phrase.

    "blue" / "in blue" / "but in blue"        -> +blue
    "in blue instead of red" / "blue rather than red" -> +blue, -red
    "not red" / "but not red" / "without red" -> -red
    """
    t = " ".join(text.strip().lower().split()).rstrip(".!")
    if not t:
        return []
    t = re.sub(r"^but\s+", "", t)
    if m := _INSTEAD.match(t):
        return [Term(_LEAD.sub("", m["new"]), weight), Term(m["old"], -weight)]
    if m := _NOT.match(t):
        return [Term(m["old"], -weight)]
    return [Term(_LEAD.sub("", t), weight)]


PARTS = ("text", "image", "audio")


def fuse(parts: dict[str, np.ndarray], weights: dict[str, float] | None = None) -> np.ndarray:
    """One vector for an input made of parts: normalise(sum_p w_p * v_p), as float32 (d,). Parts
    without a weight weigh 1; `weights` may only name parts that are there."""
    weights = weights or {}
    unknown = sorted(set(weights) - set(parts))
    if unknown:
        raise ValueError(f"weights name parts the input does not have: {', '.join(unknown)}")
    total = sum(
        float(weights.get(p, 1.0)) * np.asarray(v, dtype=np.float64).reshape(-1)
        for p, v in parts.items()
    )
    norm = float(np.linalg.norm(total))
    if not parts or norm == 0 or not np.isfinite(norm):
        raise ValueError("the weighted parts cancel out: nothing is left to embed")
    return (total / norm).astype(np.float32)


def fuse_sound(
    vector: np.ndarray,
    segment_vectors: np.ndarray,
    heard: dict[int, np.ndarray],
    weights: dict[str, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A video's vectors with its sound fused in: segment j's frames vector with `heard[j]` (its
    sound window's), and the whole video's with the mean of the windows'; a segment without a
    window keeps its frames vector. `weights` name "image" and "audio" (1 each by default).
    Returns (whole, segments)."""
    segs = np.array(segment_vectors, np.float32, copy=True)
    for j, v in heard.items():
        segs[j] = fuse({"image": segs[j], "audio": v}, weights)
    if not heard:
        return np.asarray(vector, np.float32), segs
    mean = np.mean(list(heard.values()), axis=0)
    return fuse({"image": vector, "audio": mean}, weights), segs


def compose(
    query: np.ndarray,
    term_vectors: np.ndarray,
    weights: list[float] | np.ndarray,
    query_weight: float = 1.0,
) -> np.ndarray:
    """normalise(query_weight * query + sum(weights[i] * term_vectors[i])), as float32 (d,)."""
    # float64 throughout: a float32 sum or norm of large query values would overflow
    q = np.asarray(query, dtype=np.float64).reshape(-1) * query_weight
    if len(weights):
        q = q + np.asarray(weights, dtype=np.float64) @ np.asarray(term_vectors, dtype=np.float64)
    norm = float(np.linalg.norm(q))
    if norm == 0:
        raise ValueError("the weighted terms cancel the query out: nothing is left to search for")
    return (q / norm).astype(np.float32)
