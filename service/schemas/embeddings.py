"""Shapes of the embedding routes: the OpenAI-compatible /v1/embeddings and the native /embed.

Imports pydantic and service.schemas only.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt
from pydantic.json_schema import SkipJsonSchema

from service.schemas.base import Strict, Text, Vector, limited, opt
from service.schemas.inputs import Item, MultiQuery, VideoSegments


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients send fields such as `user`
    input: (
        Text
        | Annotated[list[Text | Item], Field(json_schema_extra={"minItems": 1, "x-limit": "items"})]
    ) = Field(description="A text, or a list of texts and media items")
    model: str | None = None
    dimensions: StrictInt | None = Field(None, ge=1, description="Truncate and re-normalise")
    encoding_format: Literal["float", "base64"] = "float"
    truncate: StrictBool = False


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: Vector | str


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: Usage


class EmbedRequest(Strict):
    texts: list[Text] = limited("items", default_factory=list)
    images: list[str] = limited("items", default_factory=list, description="base64 or data: URLs")
    audios: list[str] = limited(
        "items", default_factory=list, description="base64 or data: URLs of audio clips"
    )
    multi: list[MultiQuery] = limited(
        "items", default_factory=list,
        description="Inputs of several parts (text, image, audio, weights), each fused into one",
    )  # fmt: skip
    videos: list[str] = limited(
        "items", default_factory=list, description="base64 or data: URLs of videos"
    )
    segments: VideoSegments | SkipJsonSchema[None] = opt(
        description="How videos are cut into segments (default: every video_interval_s seconds)"
    )
    truncate: bool = False


class Segment(BaseModel):
    start: float = Field(description="Seconds from the start of the clip")
    end: float
    vector: Vector


class Embedding(BaseModel):
    modality: Literal["text", "image", "audio", "video", "multi"]
    vector: Vector = Field(description="For audio and video: the whole clip's pooled vector")
    truncated: bool = False
    n_tokens: int | None = None
    segments: list[Segment] | None = Field(
        None, description="Audio: the clip's windows; video: its segments; each with its own vector"
    )


class EmbedResponse(BaseModel):
    model: str
    dim: int
    embeddings: list[Embedding]
