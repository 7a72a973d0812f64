"""Request and response shapes of the HTTP API (pydantic), documented in the OpenAPI schema.

The schema says what the service checks: optional request fields are not nullable (an explicit
null is refused), a query has exactly one kind (`oneOf`), names carry their `pattern`. Limits that
come from the settings the service started with (items per request, text length, the served
model's vector length) are marked with `x-limit` here and filled in by service/contract.py.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

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
    """A request body: unknown fields and explicit nulls are refused."""

    model_config = ConfigDict(extra="forbid")

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


Item = Annotated[TextInput | ImageInput, Field(discriminator="type")]


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients send fields such as `user`
    input: (
        Text
        | Annotated[list[Text | Item], Field(json_schema_extra={"minItems": 1, "x-limit": "items"})]
    ) = Field(description="A text, or a list of texts and media items")
    model: str | None = None
    dimensions: int | None = Field(None, ge=1, description="Truncate and re-normalise")
    encoding_format: Literal["float", "base64"] = "float"
    truncate: bool = False


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
class EmbedRequest(Strict):
    texts: list[Text] = limited("items", default_factory=list)
    images: list[str] = limited("items", default_factory=list, description="base64 or data: URLs")
    truncate: bool = False


class Embedding(BaseModel):
    modality: Literal["text", "image"]
    vector: Vector
    truncated: bool = False
    n_tokens: int | None = None


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
    lsn: int
    search_device: str = Field(description="where an unfiltered search runs now: cpu or gpu")


class CollectionDeleted(BaseModel):
    deleted: str = Field(description="The name of the collection dropped")


class ItemsDeleted(BaseModel):
    deleted: int = Field(description="How many items were deleted")


class ItemIn(Strict):
    """One item: its id, exactly one of text, image or vector, and optional metadata."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": [k]} for k in ("text", "image", "vector")]}
    )
    id: ItemId
    text: Text | SkipJsonSchema[None] = opt()
    image: str | SkipJsonSchema[None] = opt(description="base64 or data: URL")
    vector: Vector | SkipJsonSchema[None] = opt(limit="dim")
    metadata: dict[str, Any] | SkipJsonSchema[None] = opt()

    @model_validator(mode="after")
    def _one_kind(self) -> ItemIn:
        given = [k for k in ("text", "image", "vector") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"item '{self.id}' needs exactly one of text, image or vector")
        return self


class UpsertRequest(Strict):
    items: list[ItemIn] = limited("items", min_length=1)
    truncate: bool = False


class UpsertResponse(BaseModel):
    upserted: int
    lsn: int


class ItemOut(BaseModel):
    id: str
    vector: Vector | None = None
    metadata: dict[str, Any] | None = None
    media: str | None = None


class Query(Strict):
    """Exactly one of text, image, vector or the id of an item already in the collection."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": [k]} for k in ("text", "image", "vector", "id")]}
    )
    text: Text | SkipJsonSchema[None] = opt()
    image: str | SkipJsonSchema[None] = opt(description="base64 or data: URL")
    vector: Vector | SkipJsonSchema[None] = opt(limit="dim")
    id: ItemId | SkipJsonSchema[None] = opt(description="An item already in the collection")

    @model_validator(mode="after")
    def _one_kind(self) -> Query:
        given = [k for k in ("text", "image", "vector", "id") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a query needs exactly one of text, image, vector or id")
        return self


class TermIn(Strict):
    text: Text
    weight: float = Field(0.8, ge=-10, le=10)


class SearchRequest(Strict):
    query: Query
    k: int = Field(10, ge=1, le=1000)
    filter: dict[str, Any] | SkipJsonSchema[None] = opt(description="Metadata filter")
    terms: list[TermIn] = limited("items", default_factory=list,
                                  description="Weighted text terms to add")  # fmt: skip
    modification: str | SkipJsonSchema[None] = opt(
        description='A phrase such as "in blue instead of red" or "but not striped"',
        pattern=NONBLANK,
    )
    exact_rerank: bool = False


class Hit(BaseModel):
    id: str
    score: float
    metadata: dict[str, Any] | None = None
    media: str | None = None


class SearchResponse(BaseModel):
    hits: list[Hit]
    terms: list[TermIn]


# -- /classify ----------------------------------------------------------------------------------
class ClassifyInput(Strict):
    """Exactly one of text, image or vector."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": [k]} for k in ("text", "image", "vector")]}
    )
    text: Text | SkipJsonSchema[None] = opt()
    image: str | SkipJsonSchema[None] = opt(description="base64 or data: URL")
    vector: Vector | SkipJsonSchema[None] = opt(limit="dim")
    id: ClassVar[None] = None  # an input is never an item of a collection

    @model_validator(mode="after")
    def _one_kind(self) -> ClassifyInput:
        given = [k for k in ("text", "image", "vector") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("an input needs exactly one of text, image or vector")
        return self


class ClassifyRequest(Strict):
    input: ClassifyInput
    labels: list[Text] = limited("items", min_length=1)
    templates: (
        list[Annotated[str, Field(json_schema_extra={"pattern": TEMPLATE})]] | SkipJsonSchema[None]
    ) = opt(limit="items", min_length=1, description="Prompt templates, each with one {}")


class LabelScore(BaseModel):
    label: str
    score: float


class ClassifyResponse(BaseModel):
    scores: list[LabelScore]
    activation: Literal["softmax", "sigmoid"]


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
    status: Literal["ok"]
    model: str
    collections: int
