"""Request and response shapes of the HTTP API (pydantic), documented in the OpenAPI schema.

The schema says what the service checks: optional request fields are not nullable (an explicit
null is refused), a query has exactly one kind (`oneOf`), names carry their `pattern`. Limits that
come from the settings the service started with (items per request, text length, the served
model's vector length) are marked with `x-limit` and filled in by service/contract.py.

Split by what they hold: `base` (the strict base, fields, errors), `inputs` (the one input family
every route reuses), `embeddings`, `collections` (and search) and `tasks` (classify, classifiers,
fusion heads, captions, generation, operations). Imports pydantic and the library layers only.
"""

from __future__ import annotations

from service.schemas.base import (  # noqa: F401
    FUSABLE,
    NAME_PATTERN,
    NONBLANK,
    TEMPLATE,
    ErrorBody,
    ErrorResponse,
    Strict,
    Text,
    Vector,
    exactly_one,
    limited,
    one_of,
    opt,
)
from service.schemas.collections import (  # noqa: F401
    ITEM_KINDS,
    QUERY_KINDS,
    CollectionCreate,
    CollectionDeleted,
    CollectionInfo,
    CollectionName,
    Hit,
    HybridOptions,
    ItemOut,
    ItemsDeleted,
    SearchRequest,
    SearchResponse,
    TermIn,
    UpsertRequest,
    UpsertResponse,
)
from service.schemas.embeddings import (  # noqa: F401
    Embedding,
    EmbeddingData,
    EmbeddingsRequest,
    EmbeddingsResponse,
    EmbedRequest,
    EmbedResponse,
    Segment,
    Usage,
)
from service.schemas.inputs import (  # noqa: F401
    AudioInput,
    AudioItem,
    AudioQuery,
    ClassifyInput,
    IdQuery,
    ImageInput,
    ImageItem,
    ImageQuery,
    Item,
    ItemId,
    ItemIn,
    MultiInput,
    MultiItem,
    MultiQuery,
    PartWeights,
    Query,
    TextInput,
    TextItem,
    TextQuery,
    TranscribeAudio,
    TranscribeInput,
    TranscribeVideo,
    VectorItem,
    VectorQuery,
    VideoInput,
    VideoItem,
    VideoSegments,
    _Item,
    _Parts,
)
from service.schemas.tasks import (  # noqa: F401
    GENERATE_KINDS,
    CaptionData,
    CaptionRequest,
    CaptionResponse,
    CaptionUsage,
    ClassifierCreate,
    ClassifierStatus,
    ClassifyRequest,
    ClassifyResponse,
    FusionHeadStatus,
    GeneratedImage,
    GenerateRequest,
    GenerateResponse,
    Health,
    LabelScore,
    ModelInfo,
    ModelList,
    ModelState,
    SegmentCaption,
    TranscribeRequest,
    TranscribeResponse,
    TranscriptSegment,
)
