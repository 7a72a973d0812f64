"""Transcripts stored with their items: an audio or video item taken with `"speech": true` writes
one item per stretch of speech beside it, and replacing or deleting the item takes them with it
(as runtime/videos.py does for a video's segments).

A speech segment's id is the item's id, '@s' and its index; its vector is its text's (the text
tower's); its metadata is the user's plus `parent` (the item's id), `start` and `end` in seconds,
`transcript` (what was said), `speech_segment` (its index) and, under a video, `video_id` (so
grouping by video takes spoken moments too). The item itself gains `transcript` (the whole text)
and `speech_segments` (how many). Imports encoders and index only (no web framework).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from encoders import InputError
from encoders.speech import Spoken, Transcript
from index.collection import Item

RESERVED = ("parent", "start", "end", "transcript", "speech_segment", "speech_segments")
MAX_ID = 512


def speech_id(item_id: str, i: int) -> str:
    return f"{item_id}@s{i}"


def check_speech_item(item_id: str, metadata: dict | None, what: str) -> None:
    """An item with speech leaves room for its segments' ids and the keys they carry."""
    if len(item_id) > MAX_ID - 7:
        raise InputError(f"{what}: an item with speech has an id of at most {MAX_ID - 7} "
                         "characters (its speech segments' ids add '@s' and an index)")  # fmt: skip
    taken = sorted(set(metadata or {}) & set(RESERVED))
    if taken:
        raise InputError(f"{what}: metadata key(s) {', '.join(taken)} are set by the service on "
                         "items with speech; rename them")  # fmt: skip


@dataclass
class SpeechRows:
    """What one item's transcript writes: ids, vectors, metadata and keyword texts."""

    ids: list[str] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    metadata: list[dict[str, Any]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


def with_transcript(metadata: dict | None, t: Transcript) -> dict[str, Any]:
    """The item's own metadata with its transcript and speech-segment count."""
    return {**(metadata or {}), "transcript": t.text, "speech_segments": len(t.segments)}


def speech_rows(item_id: str, metadata: dict | None, spoken: list[tuple[Spoken, np.ndarray]],
                video: bool) -> SpeechRows:  # fmt: skip
    out = SpeechRows()
    user = dict(metadata or {})
    if video:
        user["video_id"] = item_id
    for i, (s, vec) in enumerate(spoken):
        out.ids.append(speech_id(item_id, i))
        out.vectors.append(vec)
        out.metadata.append({**user, "parent": item_id, "start": s.start, "end": s.end,
                             "transcript": s.text, "speech_segment": i})  # fmt: skip
        out.texts.append(s.text)
    return out


def speech_count(item: Item | None) -> int:
    """How many speech segments a stored item has (0 for one without, or a segment itself)."""
    meta = item.metadata if item is not None else None
    if not isinstance(meta, dict) or "parent" in meta:
        return 0
    n = meta.get("speech_segments")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 0


def stale_speech(old: list[Item | None], now: dict[str, int]) -> list[str]:
    """Speech-segment ids of replaced items that their new version no longer has (`now`: id ->
    the new version's count, absent or 0 for none)."""
    out = []
    for item in old:
        if item is not None:
            out += [speech_id(item.id, i) for i in range(now.get(item.id, 0), speech_count(item))]
    return out
