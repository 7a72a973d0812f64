"""Shapes of the collection routes: collections, upserted and fetched items, search.

Imports pydantic and service.schemas only.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from service.schemas.base import (
    NAME_PATTERN,
    NONBLANK,
    Strict,
    Text,
    Vector,
    exactly_one,
    limited,
    opt,
)
from service.schemas.inputs import ItemIn, Query

# -- collections -----------------------------------------------------------------------------------
CollectionName = Annotated[str, Field(pattern=NAME_PATTERN, description="1-64 letters, digits, "
                                      "'_', '-', '.'; starts with a letter or digit")]  # fmt: skip


MetaKey = Annotated[str, Field(min_length=1, max_length=256)]


class CollectionCreate(Strict):
    name: CollectionName
    model: str | SkipJsonSchema[None] = opt(
        min_length=1, max_length=1000,
        description="The served model whose vectors the collection holds, for good (default: the "
        "first served)",
    )  # fmt: skip
    metric: Literal["cosine", "ip", "l2"] = "cosine"
    index: str = Field("auto", min_length=1, description="FAISS factory string, or auto")
    text_fields: list[MetaKey] = Field(
        default_factory=list, max_length=16,
        description="Metadata keys whose values the keyword index holds beside each item's "
        "text input (FAISS backend)",
    )  # fmt: skip
    quantization: Literal["none", "int8", "binary"] = Field(
        "none", description="The codes the index holds: float (none), int8 (SQ8) or binary (one "
        "bit per dimension); hits are rescored from the stored float vectors (FAISS backend, "
        "metric cosine)",
    )  # fmt: skip


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
    text_fields: list[str] = Field(description="Metadata keys the keyword index holds")
    quantization: str = Field(description="none, int8 or binary")
    bytes_per_vector: int = Field(description="Bytes of one vector's code in the index")
    index_bytes: int | None = Field(
        description="The index's size in memory as written out (codes, ids, graph links, "
        "quantizer); null on the Milvus backend"
    )
    store_vector_bytes: int | None = Field(
        description="Bytes of the float vectors the store keeps beside the index (null on "
        "the Milvus backend)"
    )


class CollectionDeleted(BaseModel):
    deleted: str = Field(description="The name of the collection dropped")


class ItemsDeleted(BaseModel):
    deleted: int = Field(description="How many items were deleted")


ITEM_KINDS = ("text", "image", "audio", "video", "vector")


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


QUERY_KINDS = ("text", "image", "audio", "vector", "id")


class TermIn(Strict):
    text: Text
    weight: float = Field(0.8, ge=-10, le=10)


class HybridOptions(Strict):
    fusion: Literal["weighted", "rrf"] = Field(
        "weighted", description="Over the union of both sides' hits, each scored on both: "
        "weighted: alpha * (vector score min-max scaled to [0, 1]) + (1 - alpha) * (BM25 / the "
        "best BM25); rrf: alpha/(60 + vector rank) + (1 - alpha)/(60 + keyword rank)",
    )  # fmt: skip
    alpha: float = Field(0.5, ge=0, le=1, description="The vector side's weight (1: vector only)")
    k_each: int = Field(100, ge=1, le=1000, description="Hits each side finds before fusion")


class SearchRequest(Strict):
    query: Query = Field(description="Exactly one of text, image, audio, vector or an item's id")
    model: str | SkipJsonSchema[None] = opt(
        min_length=1, max_length=1000,
        description="The model the collection holds (optional: it always searches with its own; "
        "another name is refused)",
    )  # fmt: skip
    k: int = Field(10, ge=1, le=1000)
    mode: Literal["vector", "keyword", "hybrid"] = Field(
        "vector", description="vector: nearest vectors; keyword: BM25 over the items' text; "
        "hybrid: both, fused (keyword and hybrid need a text query)",
    )  # fmt: skip
    hybrid: HybridOptions = Field(default_factory=HybridOptions,
                                  description="How hybrid mode fuses")  # fmt: skip
    rescore: int | SkipJsonSchema[None] = opt(
        ge=1, le=10_000, description="Candidates scored again from the stored float vectors "
        "(default 4 x k on a quantized collection)",
    )  # fmt: skip
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
    score: float = Field(
        description="vector: the vector score; keyword: BM25 (higher is better); hybrid: fused"
    )
    metadata: dict[str, Any] | None = None
    media: str | None = None
    found_by: list[Literal["vector", "keyword"]] = Field(
        default_factory=list, description="Which searches found this hit"
    )
    vector_score: float | None = None
    bm25: float | None = None


class SearchResponse(BaseModel):
    hits: list[Hit]
    terms: list[TermIn]
