"""Video items of a collection: a video item becomes one item per segment plus one for the whole
video (laid out by index.children, which also says which segments a replaced video leaves
behind), with a thumbnail per segment; the checks on a video item's id and metadata; grouping
search hits by a metadata field (best segment per video).

A segment's id is the video's id, '@' and its index (safe in a URL path); its metadata is the
user's plus `video_id` (the id given), `start` and `end` in seconds and `segment` (its index); the
whole-video item's adds `video_id`, `start` 0, `end` the duration and `segments` (how many). With
`"audio": "separate"`, each segment's sound is an item too, `ID@aN` (`sound_segment`; the whole
video's `sound_segments` counts them).
Plain functions over the encoders' video types and a collection; the routes call them. Imports
encoders and index only (no web framework).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from encoders import InputError, VideoEmbedding
from index import Collection
from index.checks import MAX_K
from index.children import VIDEO_KEYS, segment_id, taken, video_item_rows

RESERVED = VIDEO_KEYS
MAX_ID = 512


def check_video_item(item_id: str, metadata: dict | None, what: str) -> None:
    """A video item's id leaves room for its segments' ids; its metadata leaves the keys the
    segments carry to them."""
    if len(item_id) > MAX_ID - 6:
        raise InputError(f"{what}: a video's id has at most {MAX_ID - 6} characters (its "
                         "segments' ids add '@' and an index)")  # fmt: skip
    if keys := taken(metadata, RESERVED):
        raise InputError(f"{what}: metadata key(s) {keys} are set by the service on "
                         "video items; rename them")  # fmt: skip


@dataclass
class VideoRows:
    """What one video item writes: ids, vectors and metadata (the whole video first), and a
    thumbnail per segment."""

    ids: list[str] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    metadata: list[dict[str, Any]] = field(default_factory=list)
    thumbs: list[tuple[str, Image.Image]] = field(default_factory=list)


def video_rows(item_id: str, metadata: dict | None, frames: list[Image.Image], duration: float,
               emb: VideoEmbedding, sound: list | None = None) -> VideoRows:  # fmt: skip
    """The whole video, its sound segments (with `sound`: (start, end, vector) each, from
    `"audio": "separate"`) and its segments, as index.children lays them out, and a thumbnail per
    segment."""
    spans = [(s.start, s.end) for s in emb.segments]
    ids, vecs, metas = video_item_rows(item_id, metadata, duration, emb.vector, spans,
                                       list(emb.segment_vectors), sound)  # fmt: skip
    thumbs = [(segment_id(item_id, i), frames[s.frames[len(s.frames) // 2]])
              for i, s in enumerate(emb.segments)]  # fmt: skip
    return VideoRows(ids, vecs, metas, thumbs)


def grouped_search(col: Collection, q: np.ndarray, k: int, flt: dict | None, by: str,
                   exclude: str | None, exact: bool) -> list:  # fmt: skip
    """The best hit per value of metadata field `by` (a hit without it is its own group), k
    groups at most: the search widens until k groups are found or the collection is exhausted."""
    total, want = col.count, max(4 * k, 32)
    while True:
        fetch = min(want, total, MAX_K)
        found = col.search(q, fetch, flt, exact_rerank=exact)[0] if fetch else []
        best: dict[Any, Any] = {}
        for h in found:
            if h.id == exclude:
                continue
            meta = h.metadata if isinstance(h.metadata, dict) else {}
            key = ("v", repr(meta[by])) if by in meta else ("id", h.id)
            best.setdefault(key, h)
        if len(best) >= k or fetch >= min(total, MAX_K) or len(found) < fetch:
            return list(best.values())[:k]
        want *= 4
