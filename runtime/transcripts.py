"""Transcripts stored with their items: an audio or video item taken with `"speech": true` writes
one item per stretch of speech beside it, and replacing or deleting the item takes them with it
(index.children says which segments a replaced item leaves behind).

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
from index import children
from index.children import taken

RESERVED = children.SPEECH_KEYS
MAX_ID = 512


def check_speech_item(item_id: str, metadata: dict | None, what: str) -> None:
    """An item with speech leaves room for its segments' ids and the keys they carry."""
    if len(item_id) > MAX_ID - 7:
        raise InputError(f"{what}: an item with speech has an id of at most {MAX_ID - 7} "
                         "characters (its speech segments' ids add '@s' and an index)")  # fmt: skip
    if keys := taken(metadata, RESERVED):
        raise InputError(f"{what}: metadata key(s) {keys} are set by the service on "
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
    return children.with_transcript(metadata, t.text, len(t.segments))


def speech_rows(item_id: str, metadata: dict | None, spoken: list[tuple[Spoken, np.ndarray]],
                video: bool) -> SpeechRows:  # fmt: skip
    said = [(s.start, s.end, s.text) for s, _ in spoken]
    ids, vecs, metas = children.speech_item_rows(item_id, metadata, said,
                                                 [v for _, v in spoken], video)  # fmt: skip
    return SpeechRows(ids, vecs, metas, [text for *_, text in said])
