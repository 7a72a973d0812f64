"""Items stored under a parent item: a video's segments (`ID@N`), its sound segments (`ID@aN`)
and the speech segments of an audio or video item (`ID@sN`). Owns their ids, how many a stored
parent says it has, which of them a replaced parent leaves behind, and the ids and metadata one
video item and one transcript write, so that the service's upserts and a batch job's rows store
them alike.

A video's whole item carries the user's metadata plus `video_id` (its own id), `start` 0, `end`
the duration and `segments` (how many; `sound_segments` with separate sound); a segment carries
`video_id`, `start`, `end` and `segment` (its index); a sound segment `sound_segment` instead. A
speech segment carries `parent` (the item's id), `start`, `end`, `transcript` (what was said),
`speech_segment` and, under a video, `video_id`; its parent gains `transcript` (the whole text)
and `speech_segments` (how many).
Plain functions over ids, vectors and metadata dicts: must not import torch, the encoders or
anything of HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from index.collection import Item

#: the metadata keys a video item's rows carry (set by the service, not the user)
VIDEO_KEYS = ("video_id", "start", "end", "segment", "segments", "sound_segment", "sound_segments")
#: the metadata keys an item's speech segments and the item itself carry
SPEECH_KEYS = ("parent", "start", "end", "transcript", "speech_segment", "speech_segments")


def taken(metadata: dict | None, keys: Sequence[str]) -> str:
    """The keys of `keys` that `metadata` sets, sorted and comma-separated ('' for none): the
    service sets them on an item's rows, so the user's metadata may not."""
    return ", ".join(sorted(set(metadata or {}) & set(keys)))


def segment_id(video_id: str, i: int) -> str:
    return f"{video_id}@{i}"


def sound_id(video_id: str, i: int) -> str:
    return f"{video_id}@a{i}"


def speech_id(item_id: str, i: int) -> str:
    return f"{item_id}@s{i}"


def _count(meta: dict, key: str) -> int:
    n = meta.get(key)
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 0


def segment_count(item: Item | None, key: str = "segments") -> int:
    """How many segments (or sound segments) a stored item has: a video's whole item says so,
    anything else 0."""
    meta = item.metadata if item is not None else None
    if isinstance(meta, dict) and meta.get("video_id") == item.id:
        return _count(meta, key)
    return 0


def speech_count(item: Item | None) -> int:
    """How many speech segments a stored item has (0 for one without, or a segment itself)."""
    meta = item.metadata if item is not None else None
    if not isinstance(meta, dict) or "parent" in meta:
        return 0
    return _count(meta, "speech_segments")


def stale_segments(old: Sequence[Item | None], now: dict[str, int],
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


def stale_speech(old: Sequence[Item | None], now: dict[str, int]) -> list[str]:
    """Speech-segment ids of replaced items that their new version no longer has (`now`: id ->
    the new version's count, absent or 0 for none)."""
    out = []
    for item in old:
        if item is not None:
            out += [speech_id(item.id, i) for i in range(now.get(item.id, 0), speech_count(item))]
    return out


def video_item_rows(
    item_id: str,
    metadata: dict | None,
    duration: float,
    vector: np.ndarray,
    spans: Sequence[tuple[float, float]],
    segment_vectors: Sequence[np.ndarray],
    sound: Sequence[tuple[float, float, np.ndarray]] | None = None,
) -> tuple[list[str], list[np.ndarray], list[dict[str, Any]]]:
    """Ids, vectors and metadata of one video item: the whole video first, then (with `sound`:
    (start, end, vector) each, from separate sound) its sound segments, then its segments."""
    user = dict(metadata or {})
    whole = {**user, "video_id": item_id, "start": 0.0, "end": round(duration, 3),
             "segments": len(spans)}  # fmt: skip
    if sound is not None:
        whole["sound_segments"] = len(sound)
    ids, vecs, metas = [item_id], [vector], [whole]
    for i, (a, b, vec) in enumerate(sound or []):
        ids.append(sound_id(item_id, i))
        vecs.append(vec)
        metas.append({**user, "video_id": item_id, "start": a, "end": b, "sound_segment": i})
    for i, ((a, b), vec) in enumerate(zip(spans, segment_vectors, strict=True)):
        ids.append(segment_id(item_id, i))
        vecs.append(vec)
        metas.append({**user, "video_id": item_id, "start": a, "end": b, "segment": i})
    return ids, vecs, metas


def with_transcript(metadata: dict | None, text: str, n: int) -> dict[str, Any]:
    """An item's metadata with its transcript and speech-segment count."""
    return {**(metadata or {}), "transcript": text, "speech_segments": n}


def speech_item_rows(
    item_id: str,
    metadata: dict | None,
    said: Sequence[tuple[float, float, str]],
    vectors: Sequence[np.ndarray],
    video: bool,
) -> tuple[list[str], list[np.ndarray], list[dict[str, Any]]]:
    """Ids, vectors and metadata of an item's speech segments ((start, end, text) each, with its
    text's vector)."""
    user = dict(metadata or {})
    if video:
        user["video_id"] = item_id
    ids, metas = [], []
    for i, (a, b, text) in enumerate(said):
        ids.append(speech_id(item_id, i))
        metas.append({**user, "parent": item_id, "start": a, "end": b, "transcript": text,
                      "speech_segment": i})  # fmt: skip
    return ids, list(vectors), metas
