"""The one family of input shapes every route reuses: single-modality inputs of /v1/embeddings
and /caption (`type`-discriminated), the queries of search and /classify (one field names the
kind), collection items (a query with an id and metadata), fused inputs (several parts) and the
video segment options. service/inputs.py turns each of them into a runtime input.

Imports pydantic and service.schemas.base only.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, model_validator
from pydantic.json_schema import SkipJsonSchema

from service.schemas.base import (
    NAME_PATTERN,
    Strict,
    Text,
    Vector,
    limited,
    one_of,
    opt,
)

ItemId = Annotated[str, Field(min_length=1, max_length=512)]


class TextInput(Strict):
    type: Literal["text"]
    text: Text


class ImageInput(Strict):
    type: Literal["image"]
    image: str = Field(description="data:image/...;base64,... or bare base64; URLs are not fetched")


class AudioInput(Strict):
    type: Literal["audio"]
    audio: str = Field(
        description="data:audio/...;base64,... or bare base64 of WAV, FLAC, Ogg, MP3 or M4A"
    )


class VideoInput(Strict):
    type: Literal["video"]
    video: str = Field(
        description="data:video/...;base64,... or bare base64 of MP4, WebM or GIF; the vector is "
        "the whole video's (its sampled frames' mean, in the image space)"
    )


PartWeights = dict[Literal["text", "image", "audio"], Annotated[float, Field(ge=0, le=100)]]


class _Parts(Strict):
    """Several parts of one thing, fused into one vector: normalise(sum of weight x vector), or
    a named fusion head's fusion."""

    text: Text | SkipJsonSchema[None] = opt()
    image: str | SkipJsonSchema[None] = opt(description="base64 or data: URL")
    audio: str | SkipJsonSchema[None] = opt(description="base64 or data: URL of an audio clip")
    weights: PartWeights | SkipJsonSchema[None] = opt(
        description="Per-part weights (default 1 each)"
    )
    head: str | SkipJsonSchema[None] = opt(
        pattern=NAME_PATTERN,
        description="A trained fusion head (`jointspace fit-fusion-head`) fuses the parts "
        "instead of the weights",
    )

    @model_validator(mode="after")
    def _two_parts(self) -> _Parts:
        given = [p for p in ("text", "image", "audio") if getattr(self, p) is not None]
        if len(given) < 2:
            raise ValueError("a fused input needs at least two of text, image, audio")
        extra = sorted(set(self.weights or {}) - set(given))
        if extra:
            raise ValueError(f"weights name parts the input does not have: {', '.join(extra)}")
        if self.weights and not any(self.weights.get(p, 1.0) > 0 for p in given):
            raise ValueError("the weights leave nothing of the input: give a part a weight > 0")
        if self.weights and self.head:
            raise ValueError("give weights or a fusion head, not both: the head weighs the parts")
        return self

    def parts(self) -> dict[str, str]:
        return {p: getattr(self, p) for p in ("text", "image", "audio") if getattr(self, p)}


class MultiInput(_Parts):
    type: Literal["multi"]


Item = Annotated[
    TextInput | ImageInput | AudioInput | VideoInput | MultiInput, Field(discriminator="type")
]


SoundWeights = dict[Literal["image", "audio"], Annotated[float, Field(ge=0, le=100)]]


class VideoSegments(Strict):
    """Vertex-style segment options: fixed intervals, or shots, within [start, end)."""

    interval: float | SkipJsonSchema[None] = opt(
        gt=0, le=600, description="Seconds per segment (default: the service's video_interval_s)"
    )
    shots: StrictBool = Field(False, description="Cut at shot boundaries instead of intervals")
    start: float = Field(0.0, ge=0, description="Seconds into the video where segments start")
    end: float | SkipJsonSchema[None] = opt(gt=0, description="Where they end (default: the end)")
    pooling: Literal["mean", "temporal"] | SkipJsonSchema[None] = opt(
        description="Frames to a vector by their mean or by the model's temporal head (default: "
        "the service's video_pooling)"
    )
    audio: Literal["off", "fuse", "separate"] = Field(
        "off", description="The sound track, where the model has an audio tower: off; fuse (each "
        "segment's vector from its frames and its sound window); separate (sound segments of "
        "their own, `ID@aN`, beside the frame segments)",
    )  # fmt: skip
    weights: SoundWeights | SkipJsonSchema[None] = opt(
        description="fuse's weights of the frames and the sound (default 1 each)"
    )

    @model_validator(mode="after")
    def _one_way(self) -> VideoSegments:
        if self.shots and self.interval is not None:
            raise ValueError("give interval or shots, not both")
        if self.weights is not None and self.audio != "fuse":
            raise ValueError('weights are for "audio": "fuse"')
        if self.weights and not any(self.weights.get(p, 1.0) > 0 for p in ("image", "audio")):
            raise ValueError("the weights leave nothing of the video: give a part a weight > 0")
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end:g}) must be after start ({self.start:g})")
        return self


class _Item(Strict):
    id: ItemId
    metadata: dict[str, Any] | SkipJsonSchema[None] = opt()


class TextQuery(Strict):
    text: Text


class ImageQuery(Strict):
    image: str = Field(description="base64 or data: URL")


class AudioQuery(Strict):
    audio: str = Field(description="base64 or data: URL of an audio clip")
    read_as: Literal["sound", "speech"] = Field(
        "sound", alias="as",
        description="sound: the clip through the audio tower; speech: its words, transcribed "
        "and embedded by the text tower (any model with a text tower)",
    )  # fmt: skip


class VectorQuery(Strict):
    vector: Vector = limited("dim")


class MultiQuery(_Parts):
    pass


# An item is one of the query kinds with an id and optional metadata.
class TextItem(_Item, TextQuery):
    pass


class ImageItem(_Item, ImageQuery):
    pass


class AudioItem(_Item):
    audio: str = Field(description="base64 or data: URL of an audio clip")
    speech: StrictBool = Field(
        False, description="Also store its transcript: one item per stretch of speech (`ID@sN`, "
        "its text's vector; metadata `parent`, `start`, `end`, `transcript`)",
    )  # fmt: skip


class VectorItem(_Item, VectorQuery):
    pass


class MultiItem(_Item, _Parts):
    pass


class VideoItem(_Item):
    """Stored as one item per segment (id `ID@N`, metadata with `video_id`, `start`, `end`,
    `segment`) plus the whole video under `ID` (with `segments`: how many)."""

    video: str = Field(description="base64 or data: URL of an MP4, WebM or GIF video")
    segments: VideoSegments | SkipJsonSchema[None] = opt(
        description="How the video is cut (default: every video_interval_s seconds)"
    )
    speech: StrictBool = Field(
        False, description="Also store what its sound track says: one item per stretch of "
        "speech (`ID@sN`, its text's vector; metadata `parent`, `video_id`, `start`, `end`, "
        "`transcript`)",
    )  # fmt: skip


ItemIn = Annotated[
    TextItem | ImageItem | AudioItem | VideoItem | VectorItem | MultiItem,
    Field(json_schema_extra=one_of),
]


class IdQuery(Strict):
    id: ItemId = Field(description="An item already in the collection; left out of the results")


Query = Annotated[
    TextQuery | ImageQuery | AudioQuery | VectorQuery | IdQuery | MultiQuery,
    Field(json_schema_extra=one_of),
]
ClassifyInput = Annotated[
    TextQuery | ImageQuery | AudioQuery | VectorQuery | MultiQuery,
    Field(json_schema_extra=one_of),
]


class TranscribeAudio(Strict):
    audio: str = Field(description="base64 or data: URL of an audio clip")


class TranscribeVideo(Strict):
    video: str = Field(description="base64 or data: URL of a video: its sound track is read")


TranscribeInput = Annotated[TranscribeAudio | TranscribeVideo, Field(json_schema_extra=one_of)]
