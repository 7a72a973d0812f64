"""Shapes of the embedding routes: the OpenAI-compatible /v1/embeddings and the native /embed.

Imports pydantic and service.schemas only.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt
from pydantic.json_schema import SkipJsonSchema

from service.schemas.base import Strict, Text, Vector, limited, opt
from service.schemas.inputs import Item, MultiQuery, VideoSegments

EncodingFormat = Literal["float", "base64", "int8", "uint8", "binary", "ubinary"]
ENCODING_DOC = (
    "float: numbers; base64: little-endian float32 bytes; int8: round(v * 127 / L) clipped to "
    "[-127, 127] with L = min(1, 4/sqrt(d)) for d dimensions returned; uint8: int8 + 128; "
    "ubinary: one bit per dimension (set where v > 0), packed 8 to a byte, first dimension in "
    "the highest bit; binary: ubinary - 128 as signed bytes"
)
# a vector as its encoding format gives it: integers (int8, uint8, binary, ubinary), floats, or
# base64 text (integers first: a list of whole numbers is codes, not floats)
Encoded = list[int] | Vector | str


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients send fields such as `user`
    input: (
        Text
        | Annotated[list[Text | Item], Field(json_schema_extra={"minItems": 1, "x-limit": "items"})]
    ) = Field(description="A text, or a list of texts and media items")
    model: str | None = None
    dimensions: StrictInt | None = Field(None, ge=1, description="Truncate and re-normalise")
    encoding_format: EncodingFormat = Field("float", description=ENCODING_DOC)
    truncate: StrictBool = False


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: Encoded


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
    model: str | SkipJsonSchema[None] = opt(
        min_length=1, max_length=1000,
        description="The served model to embed with (GET /v1/models; default: the first served)",
    )  # fmt: skip
    truncate: bool = False
    encoding_format: EncodingFormat = Field("float", description=ENCODING_DOC)


class Segment(BaseModel):
    start: float = Field(description="Seconds from the start of the clip")
    end: float
    vector: Encoded


class Embedding(BaseModel):
    modality: Literal["text", "image", "audio", "video", "multi"]
    vector: Encoded = Field(
        description="For audio and video: the whole clip's pooled vector (in the request's "
        "encoding_format)"
    )
    truncated: bool = False
    n_tokens: int | None = None
    segments: list[Segment] | None = Field(
        None, description="Audio: the clip's windows; video: its segments; each with its own vector"
    )


class EmbedResponse(BaseModel):
    model: str
    dim: int
    embeddings: list[Embedding]
