"""Typed inputs: what a request asks to embed, whatever route it came by. Plain dataclasses (no
pydantic, no HTTP): media arrive here as bytes, already out of their base64. Each kind names its
modality, the key of the pipeline's table (runtime/pipeline.py).

Imports nothing of the project.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class Cut:
    """How a video is cut into segments: `interval` seconds, or at shot boundaries, within
    [start, end) seconds (end None: to the end)."""

    interval: float | None = None
    shots: bool = False
    start: float = 0.0
    end: float | None = None
    pooling: str | None = None  # None: the service's video_pooling
    audio: str = "off"  # the sound track: off, fuse (into each segment) or separate (its own)
    weights: dict[str, float] | None = None  # fuse's image and audio weights (default 1 each)


@dataclass(frozen=True)
class Text:
    modality: ClassVar[str] = "text"
    text: str


@dataclass(frozen=True)
class Image:
    """An encoded picture; `name` is how errors call it."""

    modality: ClassVar[str] = "image"
    data: bytes
    name: str


@dataclass(frozen=True)
class Audio:
    """A clip; with `speech` its transcript is stored and searchable beside its vector."""

    modality: ClassVar[str] = "audio"
    data: bytes
    name: str
    speech: bool = False


@dataclass(frozen=True)
class Spoken:
    """A clip read as words: its transcript, embedded as a text (a query "as": "speech")."""

    modality: ClassVar[str] = "speech"
    data: bytes
    name: str


@dataclass(frozen=True)
class Video:
    modality: ClassVar[str] = "video"
    data: bytes
    name: str
    cut: Cut = Cut()
    speech: bool = False  # its sound track's transcript too


@dataclass(frozen=True)
class Vector:
    """A vector given as it is (checked to be finite float32 numbers)."""

    modality: ClassVar[str] = "vector"
    values: list[float]
    name: str


@dataclass(frozen=True)
class ItemRef:
    """An item already in the collection the pipeline is given: its stored vector."""

    modality: ClassVar[str] = "item"
    id: str


@dataclass(frozen=True)
class Multi:
    """Several parts of one thing (text, image, audio), fused into one vector by the weights or by
    the named fusion head."""

    modality: ClassVar[str] = "multi"
    parts: dict[str, Text | Image | Audio]
    name: str
    weights: dict[str, float] | None = None
    head: str | None = None


Input = Text | Image | Audio | Spoken | Video | Vector | ItemRef | Multi
