"""Embeddings: the OpenAI-compatible `POST /v1/embeddings` and the native `POST /embed` (JSON or
multipart upload)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from encoders import InputError
from index.codes import FORMATS, encode
from runtime.pipeline import Embedded
from runtime.settings import Settings
from service import schemas as S
from service.contract import BATCHED, errors, operation_id
from service.deps import LEASE, Lease, check_count, disconnect_watch, get_settings, require
from service.inputs import cut_of, to_input

router = APIRouter(tags=["embeddings"], generate_unique_id_function=operation_id)
READ = require("read")


@router.post("/v1/embeddings", response_model=S.EmbeddingsResponse, responses=errors(404, *BATCHED))
async def create_embeddings(
    req: S.EmbeddingsRequest, settings: Settings = Depends(get_settings), _=READ,
    lease: Lease = LEASE, gone: asyncio.Event = Depends(disconnect_watch),
) -> S.EmbeddingsResponse:  # fmt: skip
    """OpenAI-compatible: `input` is a text or a list of texts, `{"type": "image"}`,
    `{"type": "audio"}` and `{"type": "video"}` items (an audio or video item's vector is the
    whole clip's pooled vector), and `{"type": "multi"}` items: several of text, image and audio
    fused into one vector. `model` picks a served model (GET /v1/models; default: the first)."""
    slot = lease.runtime.served.resolve(req.model)
    model = await lease.take(req.model)
    encoder, pipe = model.encoder, model.pipeline
    items = [req.input] if isinstance(req.input, str) else list(req.input)
    if not items:
        raise InputError("input is empty")
    check_count(settings, len(items), "inputs")
    if req.dimensions is not None and req.dimensions > encoder.dim:
        raise InputError(f"dimensions {req.dimensions} is more than the model's {encoder.dim}")
    inputs = [to_input(x, f"input {i}") for i, x in enumerate(items)]
    out = await pipe.embed(inputs, truncate=req.truncate, cancel=gone)
    vecs = np.stack([r.vector for r in out]).astype(np.float32)
    tokens = sum(r.n_tokens for r in out)
    if req.dimensions is not None:
        vecs = vecs[:, : req.dimensions]
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True).clip(1e-12)
    codes = encoded(vecs, req.encoding_format)
    data = [S.EmbeddingData(index=i, embedding=e) for i, e in enumerate(codes)]
    usage = S.Usage(prompt_tokens=tokens, total_tokens=tokens)
    return S.EmbeddingsResponse(data=data, model=slot.id, usage=usage)


def encoded(vecs: np.ndarray, fmt: str) -> list[Any]:
    """Each row of `vecs` in encoding format `fmt` (index/codes.py states the scaling and the
    packing): floats, base64 of little-endian float32, or integer codes."""
    if fmt == "float":
        return vecs.tolist()
    if fmt == "base64":
        return [base64.b64encode(v.astype("<f4").tobytes()).decode() for v in vecs]
    return encode(vecs, fmt).tolist()


# In a form, one `texts` field and a list of one text are the same bytes: both are declared.
FORM_TEXT = {"type": "string", "pattern": S.NONBLANK, "x-limit": "text"}
FORM_FILE = {"type": "string", "format": "binary"}
MULTIPART = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "texts": {
            "anyOf": [FORM_TEXT, {"type": "array", "items": FORM_TEXT, "x-limit": "items"}],
            "description": "Plain text, one field per text. A field that parses as JSON other than "
            "a string (an object, array, number, boolean or null) is refused as a likely "
            "serialisation mistake: send such texts with the JSON form.",
        },
        "files": {"anyOf": [FORM_FILE, {"type": "array", "items": FORM_FILE}]},
        "truncate": {"type": "boolean"},
        "interval": {"type": "number", "exclusiveMinimum": 0, "maximum": 600},
        "shots": {"type": "boolean"},
        "start": {"type": "number", "minimum": 0},
        "end": {"type": "number", "exclusiveMinimum": 0},
        "pooling": {"enum": ["mean", "temporal"]},
        "encoding_format": {"enum": list(FORMATS)},
        "model": {"type": "string", "minLength": 1, "maxLength": 1000},
    },
}
VIDEO_FIELDS = ("interval", "shots", "start", "end", "pooling")
EMBED_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": S.EmbedRequest.model_json_schema()},
            "multipart/form-data": {"schema": MULTIPART},
        },
    }
}


def _json_not_text(v: str) -> bool:
    try:
        return not isinstance(json.loads(v), str)
    except ValueError:
        return False


async def read_multipart(
    request: Request, max_items: int
) -> tuple[list[str], list, bool, S.VideoSegments | None, str, str | None]:
    """(texts, [(name, bytes)], truncate, video segments, encoding format, model) of a multipart
    upload, its field types checked."""
    try:
        form = await request.form(max_files=max_items, max_fields=max_items + 5)
    except StarletteHTTPException as e:  # too many parts, or not multipart at all
        raise InputError(f"multipart body: {e.detail}") from None
    known = {"texts", "files", "truncate", "encoding_format", "model", *VIDEO_FIELDS}
    unknown = sorted(set(form.keys()) - known)
    if unknown:
        raise InputError(f"unknown form field(s): {', '.join(unknown)}")
    texts = []
    for i, v in enumerate(form.getlist("texts")):
        if not isinstance(v, str):
            raise InputError(f"texts {i}: a text field, not a file")
        if _json_not_text(v):
            raise InputError(f"texts {i}: {v[:40]!r} is JSON, not plain text; send it with the "
                             "JSON form of /embed")  # fmt: skip
        texts.append(v)
    blobs = []
    for i, f in enumerate(form.getlist("files")):
        if not isinstance(f, UploadFile):
            raise InputError(f"files {i}: a file upload, not a text field")
        blobs.append((f.filename or f"file {i}", await f.read()))
    fmt = form.getlist("encoding_format")
    if len(fmt) > 1 or any(f not in FORMATS for f in fmt):
        raise InputError(f"encoding_format: give it once, as one of {', '.join(FORMATS)}")
    model = form.getlist("model")
    if len(model) > 1 or any(not isinstance(m, str) or not m for m in model):
        raise InputError("model: give it once, as the name of a served model")
    return (texts, blobs, _flag(form, "truncate"), _video_segments(form), (fmt or ["float"])[0],
            (model or [None])[0])  # fmt: skip


def _flag(form, field: str) -> bool:
    flags = form.getlist(field)
    if len(flags) > 1 or any(f not in ("true", "false") for f in flags):
        raise InputError(f"{field}: give it once, as true or false")
    return flags == ["true"]


def _video_segments(form) -> S.VideoSegments | None:
    """The segment fields of a multipart upload, checked as the JSON form's `segments`."""
    given: dict[str, Any] = {}
    for field in ("interval", "start", "end"):
        values = form.getlist(field)
        if len(values) > 1 or any(not isinstance(v, str) for v in values):
            raise InputError(f"{field}: give it once, as a number of seconds")
        if values:
            try:
                given[field] = float(values[0])
            except ValueError:
                raise InputError(f"{field}: {values[0][:40]!r} is not a number") from None
    if _flag(form, "shots"):
        given["shots"] = True
    pooling = form.getlist("pooling")
    if len(pooling) > 1 or any(p not in ("mean", "temporal") for p in pooling):
        raise InputError("pooling: give it once, as mean or temporal")
    if pooling:
        given["pooling"] = pooling[0]
    if not given:
        return None
    try:
        return S.VideoSegments(**given)
    except ValidationError as e:
        raise InputError("; ".join(err["msg"].removeprefix("Value error, ")
                                   for err in e.errors())) from None  # fmt: skip


@router.post(
    "/embed", response_model=S.EmbedResponse, openapi_extra=EMBED_BODY,
    responses=errors(404, *BATCHED),
)  # fmt: skip
async def embed(
    request: Request, settings: Settings = Depends(get_settings), _=READ,
    lease: Lease = LEASE, gone: asyncio.Event = Depends(disconnect_watch),
) -> S.EmbedResponse:  # fmt: skip
    """Native form: JSON `{"texts": [...], "images": [base64...], "audios": [base64...],
    "videos": [base64...], "segments": {"interval": 4}, "multi": [{"text": ..., "image": ...,
    "weights": {...}}]}` or a multipart upload with `texts` fields and `files` (each file an
    image, an audio clip or a video, told apart by its bytes) and the segment options as fields.
    `model` picks a served model (default: the first).
    Texts come first in the answer, then images, audio, videos and fused inputs, each in order; an
    audio embedding carries its windows (`segments`) beside the clip's pooled vector, a video
    embedding its segments (every `interval` seconds, or at shot boundaries with `shots`) beside
    the whole video's vector."""
    multi: list[S.MultiQuery] = []
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        texts, files, truncate, segs, fmt, asked = await read_multipart(request, settings.max_items)
        blobs = [(name, ("file", data)) for name, data in files]
    else:
        try:
            req = S.EmbedRequest.model_validate_json(await request.body())
        except ValidationError as e:
            raise RequestValidationError(e.errors()) from None
        texts, truncate, multi, segs = req.texts, req.truncate, req.multi, req.segments
        fmt, asked = req.encoding_format, req.model
        blobs = [(f"{kind} {i}", (kind, b))
                 for kind, given in (("image", req.images), ("audio", req.audios),
                                     ("video", req.videos))
                 for i, b in enumerate(given)]  # fmt: skip
    slot = lease.runtime.served.resolve(asked)
    if not texts and not blobs and not multi:
        raise InputError("nothing to embed: give texts, images, audios, videos or multi")
    check_count(settings, len(texts) + len(blobs) + len(multi), "inputs")
    cut = cut_of(segs)
    media = [to_input(blob, name, cut) for name, blob in blobs]
    media.sort(key=lambda x: MEDIA_ORDER.index(x.modality))  # the answer's order: by modality
    inputs = [to_input(t, f"text {i}") for i, t in enumerate(texts)] + media
    inputs += [to_input(q, f"multi {i}") for i, q in enumerate(multi)]
    pipe = (await lease.take(asked)).pipeline
    out = await pipe.embed(inputs, truncate=truncate, cancel=gone)
    embeddings = [_embedding(x.modality, r, fmt) for x, r in zip(inputs, out, strict=True)]
    return S.EmbedResponse(model=slot.id, dim=pipe.encoder.dim, embeddings=embeddings)


MEDIA_ORDER = ("image", "audio", "video")


def _embedding(modality: str, r: Embedded, fmt: str) -> S.Embedding:
    vector = encoded(r.vector[None].astype(np.float32), fmt)[0]
    if modality in ("audio", "video"):
        seg = encoded(np.asarray(r.segment_vectors, np.float32).reshape(len(r.segments), -1), fmt)
        segments = [S.Segment(start=a, end=b, vector=sv)
                    for (a, b), sv in zip(r.segments, seg, strict=True)]  # fmt: skip
        return S.Embedding(modality=modality, vector=vector, segments=segments)
    if modality == "image":
        return S.Embedding(modality=modality, vector=vector)
    return S.Embedding(modality=modality, vector=vector, truncated=r.truncated,
                       n_tokens=r.n_tokens)  # fmt: skip
