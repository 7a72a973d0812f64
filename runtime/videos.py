"""Video items of a collection: a video item becomes one item per segment plus one for the whole
video, and deleting or replacing it takes its segments with it. Also grouping search hits by a
metadata field (best segment per video).

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
from index.collection import Item

RESERVED = ("video_id", "start", "end", "segment", "segments", "sound_segment", "sound_segments")
MAX_ID = 512


def segment_id(video_id: str, i: int) -> str:
    return f"{video_id}@{i}"


def sound_id(video_id: str, i: int) -> str:
    return f"{video_id}@a{i}"


def check_video_item(item_id: str, metadata: dict | None, what: str) -> None:
    """A video item's id leaves room for its segments' ids; its metadata leaves the keys the
    segments carry to them."""
    if len(item_id) > MAX_ID - 6:
        raise InputError(f"{what}: a video's id has at most {MAX_ID - 6} characters (its "
                         "segments' ids add '@' and an index)")  # fmt: skip
    taken = sorted(set(metadata or {}) & set(RESERVED))
    if taken:
        raise InputError(f"{what}: metadata key(s) {', '.join(taken)} are set by the service on "
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
    """The whole video, its segments and (with `sound`: (start, end, vector) each, from
    `"audio": "separate"`) its sound segments `ID@aN` (metadata `sound_segment`; the whole
    video's `sound_segments` counts them)."""
    user = dict(metadata or {})
    whole = {**user, "video_id": item_id, "start": 0.0, "end": round(duration, 3),
             "segments": len(emb.segments)}  # fmt: skip
    if sound is not None:
        whole["sound_segments"] = len(sound)
    out = VideoRows([item_id], [emb.vector], [whole])
    for i, (a, b, vec) in enumerate(sound or []):
        out.ids.append(sound_id(item_id, i))
        out.vectors.append(vec)
        out.metadata.append({**user, "video_id": item_id, "start": a, "end": b,
                             "sound_segment": i})  # fmt: skip
    for i, (s, vec) in enumerate(zip(emb.segments, emb.segment_vectors, strict=True)):
        sid = segment_id(item_id, i)
        out.ids.append(sid)
        out.vectors.append(vec)
        out.metadata.append({**user, "video_id": item_id, "start": s.start, "end": s.end,
                             "segment": i})  # fmt: skip
        out.thumbs.append((sid, frames[s.frames[len(s.frames) // 2]]))
    return out


def segment_count(item: Item | None, key: str = "segments") -> int:
    """How many segments (or sound segments) a stored item has: a video's whole item says so,
    anything else 0."""
    meta = item.metadata if item is not None else None
    if isinstance(meta, dict) and meta.get("video_id") == item.id:
        n = meta.get(key)
        return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 0
    return 0


def stale_segments(old: list[Item | None], now: dict[str, int],
                   sound: dict[str, int] | None = None) -> list[str]:  # fmt: skip
    """Segment ids (and sound-segment ids) of replaced items that their new version no longer
    has (`now`, `sound`: id -> the new version's counts, absent for none)."""
    out, sound = [], sound or {}
    for item in old:
        if item is not None:
            out += [segment_id(item.id, i) for i in range(now.get(item.id, 0),
                                                          segment_count(item))]  # fmt: skip
            heard = segment_count(item, "sound_segments")
            out += [sound_id(item.id, i) for i in range(sound.get(item.id, 0), heard)]
    return out


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
