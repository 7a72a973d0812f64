"""Request and response shapes of the HTTP API (pydantic), documented in the OpenAPI schema."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Vector = list[float]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    type: str
    message: str
    code: int


class ErrorResponse(BaseModel):
    error: ErrorBody


# -- /v1/embeddings (OpenAI-compatible) --------------------------------------------------------
class TextInput(Strict):
    type: Literal["text"]
    text: str


class ImageInput(Strict):
    type: Literal["image"]
    image: str = Field(description="data:image/...;base64,... or bare base64; URLs are not fetched")


Item = Annotated[TextInput | ImageInput, Field(discriminator="type")]


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients send fields such as `user`
    input: str | list[str | Item] = Field(description="A text, or a list of texts and media items")
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
    texts: list[str] = Field(default_factory=list)
    images: list[str] = Field(default_factory=list, description="base64 or data: URLs")
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
class CollectionCreate(Strict):
    name: str = Field(description="1-64 letters, digits, '_', '-', '.'")
    metric: Literal["cosine", "ip", "l2"] = "cosine"
    index: str = Field("auto", description="FAISS factory string, or auto")


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


class ItemIn(Strict):
    id: str = Field(min_length=1, max_length=512)
    text: str | None = None
    image: str | None = Field(None, description="base64 or data: URL")
    vector: Vector | None = None
    metadata: dict[str, Any] | None = None


class UpsertRequest(Strict):
    items: list[ItemIn] = Field(min_length=1)
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
    text: str | None = None
    image: str | None = None
    vector: Vector | None = None
    id: str | None = Field(None, description="An item already in the collection")


class TermIn(Strict):
    text: str = Field(min_length=1)
    weight: float = Field(0.8, ge=-10, le=10)


class SearchRequest(Strict):
    query: Query
    k: int = Field(10, ge=1, le=1000)
    filter: dict[str, Any] | None = None
    terms: list[TermIn] = Field(default_factory=list, description="Weighted text terms to add")
    modification: str | None = Field(
        None, description='A phrase such as "in blue instead of red" or "but not striped"'
    )
    exact_rerank: bool = False
    include_vectors: bool = False


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
    input: Query
    labels: list[str] = Field(min_length=1, max_length=1000)
    templates: list[str] | None = Field(None, description="Prompt templates with one {}")


class LabelScore(BaseModel):
    label: str
    score: float


class ClassifyResponse(BaseModel):
    scores: list[LabelScore]
    activation: Literal["softmax", "sigmoid"]


class ModelInfo(BaseModel):
    id: str
    object: Literal["model"] = "model"
    dim: int
    modalities: list[str]
    context_length: int
    loss: str
    device: str
