"""Shapes of the routes that do more than embed: /classify, trained classifiers and fusion heads,
/caption, /transcribe, /generate, and the operations (models, health).

Imports pydantic, generation.decoder and service.schemas only.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictInt, model_validator
from pydantic.json_schema import SkipJsonSchema

from generation.decoder import DEFAULT_GUIDANCE
from service.schemas.base import (
    NAME_PATTERN,
    NONBLANK,
    TEMPLATE,
    Strict,
    Text,
    Vector,
    limited,
    opt,
)
from service.schemas.inputs import ClassifyInput, Item, ItemId, TranscribeInput


# -- /classify ----------------------------------------------------------------------------------
class ClassifyRequest(Strict):
    input: ClassifyInput = Field(description="Exactly one of text, image, audio or vector")
    labels: list[Text] | SkipJsonSchema[None] = opt(
        limit="items", min_length=1, description="Zero-shot: the labels to score the input against"
    )
    templates: (
        list[Annotated[str, Field(json_schema_extra={"pattern": TEMPLATE})]] | SkipJsonSchema[None]
    ) = opt(limit="items", min_length=1, description="Prompt templates, each with one {}")
    classifier: str | SkipJsonSchema[None] = opt(
        pattern=NAME_PATTERN,
        description="A trained classifier (POST /classifiers) instead of labels",
    )
    model: str | SkipJsonSchema[None] = opt(
        min_length=1, max_length=1000,
        description="The served model to classify with (default: the first served)",
    )  # fmt: skip
    abstain: float | SkipJsonSchema[None] = opt(
        ge=0, le=1, description="With a classifier: abstain when the top probability is below this"
    )

    @model_validator(mode="before")
    @classmethod
    def _labels_or_classifier(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if (data.get("labels") is None) == (data.get("classifier") is None):
                raise ValueError("give either labels (zero-shot) or a classifier, not both or none")
            if data.get("classifier") is None and "abstain" in data:
                raise ValueError("abstain applies to a trained classifier")
        return data


class LabelScore(BaseModel):
    label: str
    score: float


class ClassifyResponse(BaseModel):
    scores: list[LabelScore]
    activation: Literal["softmax", "sigmoid"]
    classifier: str | None = Field(None, description="The trained classifier that scored it")
    abstained: bool | None = Field(
        None, description="With `abstain`: whether the top probability fell below it"
    )


class ClassifierCreate(Strict):
    name: str = Field(pattern=NAME_PATTERN, description="1-64 letters, digits, '_', '-' or '.'")
    collection: str = Field(pattern=NAME_PATTERN, description="The collection to learn from")
    label_field: str = Field(
        min_length=1, max_length=256, description="The metadata key holding each item's label"
    )
    fusion: Literal["early", "late", "attention"] = "late"
    epochs: int = Field(200, ge=1, le=5000, description="Passes over the training split")


class ClassifierStatus(BaseModel):
    name: str
    status: Literal["training", "ready", "failed"]
    model: str | None = None
    fusion: str | None = None
    source: str | None = Field(None, description="What it learned from")
    classes: list[str] | None = None
    modalities: list[str] | None = None
    metrics: dict[str, float] | None = Field(
        None, description="Validation figures: accuracy, ECE before and after temperature scaling"
    )
    error: str | None = None


class FusionHeadStatus(BaseModel):
    name: str
    status: Literal["training", "ready", "failed"]
    model: str | None = None
    source: str | None = Field(None, description="What it learned from")
    parts: list[str] | None = Field(None, description="The parts it fuses")
    metrics: dict[str, float | None] | None = Field(
        None,
        description="Training figures: examples, the epoch kept, and leave-one-out recall@1 on "
        "the validation things with the head and with equal weights",
    )
    error: str | None = None


# -- captions -------------------------------------------------------------------------------------
class CaptionRequest(Strict):
    input: Annotated[list[Item], Field(min_length=1, json_schema_extra={"x-limit": "captions"})] = (
        Field(
            description="Items as in /v1/embeddings: image, audio, video or multi (a text is "
            "refused)"
        )
    )
    model: str | SkipJsonSchema[None] = opt(
        min_length=1, max_length=1000,
        description="The served model whose captioner writes (default: the first served)",
    )  # fmt: skip
    max_tokens: StrictInt = limited(
        "caption_tokens", default=30, ge=1, description="Most tokens written per caption"
    )
    beams: StrictInt = limited(
        "caption_beams", default=1, ge=1, description="Beam width (1: greedy decoding)"
    )


class SegmentCaption(BaseModel):
    start: float = Field(description="Seconds into the video")
    end: float
    caption: str


class CaptionData(BaseModel):
    index: int
    caption: str
    segments: list[SegmentCaption] | None = Field(
        None, description="A video item's: a caption per segment, beside the whole video's"
    )


class CaptionUsage(BaseModel):
    prompt_tokens: int = Field(description="Prefix positions the vectors became")
    completion_tokens: int = Field(description="Tokens written")
    total_tokens: int


class CaptionResponse(BaseModel):
    model: str
    data: list[CaptionData]
    usage: CaptionUsage


# -- transcription --------------------------------------------------------------------------------
class TranscribeRequest(Strict):
    input: TranscribeInput = Field(description="An audio clip, or a video whose sound is read")


class TranscriptSegment(BaseModel):
    start: float = Field(description="Seconds from the start of the clip")
    end: float
    text: str


class TranscribeResponse(BaseModel):
    text: str = Field(description="Everything said, the segments' texts joined")
    segments: list[TranscriptSegment] = Field(description="Stretches of speech; none in silence")
    duration: float = Field(description="Seconds of sound transcribed")


# -- generation -----------------------------------------------------------------------------------
GENERATE_KINDS = ("prompt", "image", "vector", "id")


class GenerateRequest(Strict):
    prompt: Text | SkipJsonSchema[None] = opt(
        description="A text, drawn from the prior's image vector for it"
    )
    image: str | SkipJsonSchema[None] = opt(description="base64 or data: URL of an image")
    vector: Vector | SkipJsonSchema[None] = opt(
        limit="dim", description="A joint-space image vector"
    )
    id: ItemId | SkipJsonSchema[None] = opt(
        description="An item of `collection`: its stored vector is drawn"
    )
    collection: str | SkipJsonSchema[None] = opt(
        pattern=NAME_PATTERN, description="The collection of `id`"
    )
    modification: str | SkipJsonSchema[None] = opt(
        description='A phrase such as "in blue instead of red", as in search', pattern=NONBLANK,
        max_length=1000,
    )  # fmt: skip
    model: str | SkipJsonSchema[None] = opt(
        min_length=1, max_length=1000,
        description="The served model whose decoder draws (default: the collection's model "
        "with id, else the first served)",
    )  # fmt: skip
    n: StrictInt = limited("generate_n", default=1, ge=1, description="Pictures to draw")
    steps: StrictInt = limited(
        "generate_steps", default=25, ge=1, description="DDIM sampling steps"
    )
    guidance: float = Field(
        DEFAULT_GUIDANCE, ge=0, le=20,
        description="Classifier-free guidance scale (1: none; 0: unconditioned)",
    )  # fmt: skip
    seed: StrictInt = Field(0, ge=0, le=2**32 - 1, description="The same seed draws the same bytes")

    @model_validator(mode="before")
    @classmethod
    def _kinds(cls, data: Any) -> Any:
        if isinstance(data, dict):
            given = [k for k in GENERATE_KINDS if data.get(k) is not None]
            if len(given) != 1:
                raise ValueError("a generation needs exactly one of prompt, image, vector or id")
            if (data.get("id") is None) != (data.get("collection") is None):
                raise ValueError("id and collection go together")
        return data


class GeneratedImage(BaseModel):
    b64_json: str = Field(description="A PNG, base64-encoded")


class GenerateResponse(BaseModel):
    created: int = Field(description="Unix time of the answer")
    data: list[GeneratedImage]


# -- operations -----------------------------------------------------------------------------------
class ModelInfo(BaseModel):
    id: str
    object: Literal["model"] = "model"
    dim: int
    modalities: list[str]
    parts: list[str] = Field(
        default_factory=list,
        description="The model's trained parts: audio, temporal, captioner, decoder, prior",
    )
    base: str | None = Field(None, description="The towers spec of a model directory's base")
    context_length: int
    loss: str
    device: str
    dimensions: list[int] = Field(
        description="The vector lengths the model was trained for (a Matryoshka model's "
        "prefixes, else its full dimension); `dimensions` outside them truncates a vector that "
        "was not trained to be truncated"
    )
    default: bool = Field(description="Whether requests without `model` get this one")
    loaded: bool = Field(description="Whether it is loaded now (else it loads on its next use)")
    memory_bytes: int | None = Field(
        description="Bytes its weights take while loaded (null while it is not)"
    )


class ModelState(BaseModel):
    id: str
    loaded: bool
    memory_bytes: int | None = Field(description="Bytes its weights take (null while unloaded)")
    in_use: int = Field(description="Requests holding it now")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelInfo]


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        description="degraded: reads and searches work, writes do not (see reason)"
    )
    ready: bool = Field(description="Whether writes can be accepted now (for a load balancer)")
    reason: str | None = Field(None, description="Why the service is degraded")
    model: str
    collections: int
    free_bytes: int = Field(description="Free bytes on the data directory's filesystem")
    index_backend: str = Field(
        description="Where collections live: faiss, milvus-lite:PATH or milvus:URL"
    )
    models: list[ModelState] = Field(description="The served models, loaded or not")
