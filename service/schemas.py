"""Request and response shapes of the HTTP API (pydantic), documented in the OpenAPI schema.

The schema says what the service checks: optional request fields are not nullable (an explicit
null is refused), a query has exactly one kind (`oneOf`), names carry their `pattern`. Limits that
come from the settings the service started with (items per request, text length, the served
model's vector length) are marked with `x-limit` here and filled in by service/contract.py.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator
from pydantic.json_schema import SkipJsonSchema

from generation.decoder import DEFAULT_GUIDANCE
from index.catalog import NAME_RE

NAME_PATTERN = NAME_RE.pattern
NONBLANK = r"\S"  # at least one character that is not white space
TEMPLATE = r"^[^{}]*\{\}[^{}]*$"  # one {} where the label goes (checked in the route)


def _no_default(schema: dict) -> None:
    schema.pop("default", None)


def opt(*, limit: str | None = None, **kw: Any) -> Any:
    """An optional request field: absent means unset; the schema shows no null and no default."""
    extra = {"x-limit": limit} if limit else None

    def edit(schema: dict) -> None:
        _no_default(schema)
        if extra:
            schema.update(extra)

    return Field(None, json_schema_extra=edit, **kw)


def limited(limit: str, **kw: Any) -> Any:
    return Field(json_schema_extra={"x-limit": limit}, **kw)


Vector = list[float]
# Texts are checked by the engine (empty, too long) with messages that name the input; the schema
# states the same rules.
Text = Annotated[str, Field(json_schema_extra={"pattern": NONBLANK, "x-limit": "text"})]


class Strict(BaseModel):
    """A request body: unknown fields, explicit nulls and values of another JSON type (0 for
    false, "5" for 5) are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for k, v in data.items():
                if v is None:
                    raise ValueError(f"{k} must not be null (leave it out instead)")
        return data


class ErrorBody(BaseModel):
    type: str
    message: str
    code: int


class ErrorResponse(BaseModel):
    error: ErrorBody


# -- /v1/embeddings (OpenAI-compatible) --------------------------------------------------------
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


# -- /embed (native) -----------------------------------------------------------------------------
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

    @model_validator(mode="after")
    def _one_way(self) -> VideoSegments:
        if self.shots and self.interval is not None:
            raise ValueError("give interval or shots, not both")
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end:g}) must be after start ({self.start:g})")
        return self


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


# -- collections -----------------------------------------------------------------------------------
CollectionName = Annotated[str, Field(pattern=NAME_PATTERN, description="1-64 letters, digits, "
                                      "'_', '-', '.'; starts with a letter or digit")]  # fmt: skip
ItemId = Annotated[str, Field(min_length=1, max_length=512)]


class CollectionCreate(Strict):
    name: CollectionName
    metric: Literal["cosine", "ip", "l2"] = "cosine"
    index: str = Field("auto", min_length=1, description="FAISS factory string, or auto")


class CollectionInfo(BaseModel):
    name: str
    dim: int
    metric: str
    model: str | None
    index: str
    factory_setting: str
    count: int
    lsn: int | None = Field(
        description="The collection's log position (null on the Milvus backend, which keeps "
        "its own)"
    )
    search_device: str = Field(
        description="Where an unfiltered search runs now: cpu or gpu (FAISS), or milvus"
    )


class CollectionDeleted(BaseModel):
    deleted: str = Field(description="The name of the collection dropped")


class ItemsDeleted(BaseModel):
    deleted: int = Field(description="How many items were deleted")


def one_of(schema: dict) -> None:
    """A union of object shapes is `oneOf` (pydantic writes `anyOf`): exactly one must match."""
    if "anyOf" in schema:
        schema["oneOf"] = schema.pop("anyOf")


FUSABLE = ("text", "image", "audio")


def exactly_one(data: Any, kinds: tuple[str, ...], what: str) -> None:
    """A readable refusal before the union is tried (its own errors name every member). Several
    of text, image and audio (and nothing else) make a fused input."""
    if not isinstance(data, dict):
        return
    given = [k for k in kinds if data.get(k) is not None]
    if len(given) == 1 or (len(given) > 1 and set(given) <= set(FUSABLE)):
        return
    raise ValueError(
        f"{what} needs exactly one of {', '.join(kinds[:-1])} or {kinds[-1]}, or several of "
        "text, image and audio to fuse"
    )


class _Item(Strict):
    id: ItemId
    metadata: dict[str, Any] | SkipJsonSchema[None] = opt()


class TextQuery(Strict):
    text: Text


class ImageQuery(Strict):
    image: str = Field(description="base64 or data: URL")


class AudioQuery(Strict):
    audio: str = Field(description="base64 or data: URL of an audio clip")


class VectorQuery(Strict):
    vector: Vector = limited("dim")


class MultiQuery(_Parts):
    pass


# An item is one of the query kinds with an id and optional metadata.
class TextItem(_Item, TextQuery):
    pass


class ImageItem(_Item, ImageQuery):
    pass


class AudioItem(_Item, AudioQuery):
    pass


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


ITEM_KINDS = ("text", "image", "audio", "video", "vector")
ItemIn = Annotated[
    TextItem | ImageItem | AudioItem | VideoItem | VectorItem | MultiItem,
    Field(json_schema_extra=one_of),
]


class UpsertRequest(Strict):
    items: list[ItemIn] = limited("items", min_length=1)
    truncate: bool = False

    @model_validator(mode="before")
    @classmethod
    def _kinds(cls, data: Any) -> Any:
        for it in data.get("items") or [] if isinstance(data, dict) else []:
            ident = it.get("id") if isinstance(it, dict) else None
            exactly_one(it, ITEM_KINDS, f"item '{ident}'")
        return data


class UpsertResponse(BaseModel):
    upserted: int
    lsn: int | None = Field(
        description="The write's log position (null on the Milvus backend, which keeps its own)"
    )


class ItemOut(BaseModel):
    id: str
    vector: Vector | None = None
    metadata: dict[str, Any] | None = None
    media: str | None = None


class IdQuery(Strict):
    id: ItemId = Field(description="An item already in the collection; left out of the results")


QUERY_KINDS = ("text", "image", "audio", "vector", "id")
Query = Annotated[
    TextQuery | ImageQuery | AudioQuery | VectorQuery | IdQuery | MultiQuery,
    Field(json_schema_extra=one_of),
]
ClassifyInput = Annotated[
    TextQuery | ImageQuery | AudioQuery | VectorQuery | MultiQuery,
    Field(json_schema_extra=one_of),
]


class TermIn(Strict):
    text: Text
    weight: float = Field(0.8, ge=-10, le=10)


class SearchRequest(Strict):
    query: Query = Field(description="Exactly one of text, image, audio, vector or an item's id")
    k: int = Field(10, ge=1, le=1000)
    filter: dict[str, Any] | SkipJsonSchema[None] = opt(description="Metadata filter")
    terms: list[TermIn] = limited("items", default_factory=list,
                                  description="Weighted text terms to add")  # fmt: skip
    modification: str | SkipJsonSchema[None] = opt(
        description='A phrase such as "in blue instead of red" or "but not striped"',
        pattern=NONBLANK,
    )
    exact_rerank: bool = False
    group_by: str | SkipJsonSchema[None] = opt(
        min_length=1, max_length=256,
        description="A metadata field: the best hit per value (`video_id`: the best segment per "
        "video); hits without the field are each their own group",
    )  # fmt: skip

    @model_validator(mode="before")
    @classmethod
    def _kinds(cls, data: Any) -> Any:
        if isinstance(data, dict):
            exactly_one(data.get("query"), QUERY_KINDS, "a query")
        return data


class Hit(BaseModel):
    id: str
    score: float
    metadata: dict[str, Any] | None = None
    media: str | None = None


class SearchResponse(BaseModel):
    hits: list[Hit]
    terms: list[TermIn]


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
        Field(description="Items as in /v1/embeddings: image, audio or multi (a text is refused)")
    )
    max_tokens: StrictInt = limited(
        "caption_tokens", default=30, ge=1, description="Most tokens written per caption"
    )
    beams: StrictInt = limited(
        "caption_beams", default=1, ge=1, description="Beam width (1: greedy decoding)"
    )


class CaptionData(BaseModel):
    index: int
    caption: str


class CaptionUsage(BaseModel):
    prompt_tokens: int = Field(description="Prefix positions the vectors became")
    completion_tokens: int = Field(description="Tokens written")
    total_tokens: int


class CaptionResponse(BaseModel):
    model: str
    data: list[CaptionData]
    usage: CaptionUsage


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
    context_length: int
    loss: str
    device: str


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
