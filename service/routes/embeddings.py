"""Embeddings: the OpenAI-compatible `POST /v1/embeddings` and the native `POST /embed` (JSON or
multipart upload)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from encoders import InputError
from encoders.audio import ALLOWED as ALLOWED_AUDIO
from encoders.audio import sniff_audio
from encoders.decode import ALLOWED_FORMATS, sniff_format
from encoders.video import ALLOWED as ALLOWED_VIDEO
from encoders.video import has_video_stream, sniff_video
from runtime.engine import Engine
from service import schemas as S
from service.contract import BATCHED, errors, operation_id
from service.deps import (
    check_count,
    cut_of,
    disconnect_watch,
    embed_items,
    embed_parts,
    get_engine,
    require,
)
from service.http_util import decode_b64

router = APIRouter(tags=["embeddings"], generate_unique_id_function=operation_id)
READ = require("read")


@router.post("/v1/embeddings", response_model=S.EmbeddingsResponse, responses=errors(404, *BATCHED))
async def create_embeddings(
    req: S.EmbeddingsRequest, eng: Engine = Depends(get_engine), _=READ,
    gone: asyncio.Event = Depends(disconnect_watch),
) -> S.EmbeddingsResponse:  # fmt: skip
    """OpenAI-compatible: `input` is a text or a list of texts, `{"type": "image"}`,
    `{"type": "audio"}` and `{"type": "video"}` items (an audio or video item's vector is the
    whole clip's pooled vector), and `{"type": "multi"}` items: several of text, image and audio
    fused into one vector."""
    settings = eng.settings
    if req.model is not None and req.model not in {eng.encoder.name, settings.model}:
        raise HTTPException(
            404, f"model '{req.model}' is not served here (serving {settings.model})"
        )
    inputs = [req.input] if isinstance(req.input, str) else list(req.input)
    if not inputs:
        raise InputError("input is empty")
    check_count(settings, len(inputs), "inputs")
    if req.dimensions is not None and req.dimensions > eng.encoder.dim:
        raise InputError(f"dimensions {req.dimensions} is more than the model's {eng.encoder.dim}")
    vecs, tokens = await embed_items(eng, inputs, gone, truncate=req.truncate)
    if req.dimensions is not None:
        vecs = vecs[:, : req.dimensions]
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True).clip(1e-12)
    data = []
    for i, v in enumerate(vecs):
        emb: Any = (
            base64.b64encode(v.astype("<f4").tobytes()).decode()
            if req.encoding_format == "base64"
            else v.tolist()
        )
        data.append(S.EmbeddingData(index=i, embedding=emb))
    usage = S.Usage(prompt_tokens=tokens, total_tokens=tokens)
    return S.EmbeddingsResponse(data=data, model=settings.model, usage=usage)


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


def media_kind(name: str, data: bytes) -> str:
    """An uploaded file is an image, an audio clip or a video by its bytes (never by its name or
    content type: a GIF is an image, an MP4 with a video stream a video, one without it audio);
    anything else is refused naming the three allow-lists."""
    if sniff_format(data[:16]):
        return "image"
    if sniff_video(data[:16]) and (sniff_audio(data[:16]) is None or has_video_stream(data)):
        return "video"
    if sniff_audio(data[:16]):
        return "audio"
    raise InputError(
        f"{name}: not a supported image ({', '.join(ALLOWED_FORMATS)}), audio ({ALLOWED_AUDIO}) "
        f"or video format ({ALLOWED_VIDEO})"
    )


def _json_not_text(v: str) -> bool:
    try:
        return not isinstance(json.loads(v), str)
    except ValueError:
        return False


async def read_multipart(
    request: Request, max_items: int
) -> tuple[list[str], list, bool, S.VideoSegments | None]:
    """(texts, [(name, bytes)], truncate, video segments) of a multipart upload, its field types
    checked."""
    try:
        form = await request.form(max_files=max_items, max_fields=max_items + 5)
    except StarletteHTTPException as e:  # too many parts, or not multipart at all
        raise InputError(f"multipart body: {e.detail}") from None
    unknown = sorted(set(form.keys()) - {"texts", "files", "truncate", *VIDEO_FIELDS})
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
    return texts, blobs, _flag(form, "truncate"), _video_segments(form)


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
    responses=errors(*BATCHED),
)  # fmt: skip
async def embed(
    request: Request, eng: Engine = Depends(get_engine), _=READ,
    gone: asyncio.Event = Depends(disconnect_watch),
) -> S.EmbedResponse:  # fmt: skip
    """Native form: JSON `{"texts": [...], "images": [base64...], "audios": [base64...],
    "videos": [base64...], "segments": {"interval": 4}, "multi": [{"text": ..., "image": ...,
    "weights": {...}}]}` or a multipart upload with `texts` fields and `files` (each file an
    image, an audio clip or a video, told apart by its bytes) and the segment options as fields.
    Texts come first in the answer, then images, audio, videos and fused inputs, each in order; an
    audio embedding carries its windows (`segments`) beside the clip's pooled vector, a video
    embedding its segments (every `interval` seconds, or at shot boundaries with `shots`) beside
    the whole video's vector."""
    settings = eng.settings
    multi: list[S.MultiQuery] = []
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        texts, files, truncate, segs = await read_multipart(request, settings.max_items)
        blobs = [(name, data, media_kind(name, data)) for name, data in files]
    else:
        try:
            req = S.EmbedRequest.model_validate_json(await request.body())
        except ValidationError as e:
            raise RequestValidationError(e.errors()) from None
        texts, truncate, multi, segs = req.texts, req.truncate, req.multi, req.segments
        blobs = [(f"{kind} {i}", decode_b64(b, f"{kind} {i}"), kind)
                 for kind, given in (("image", req.images), ("audio", req.audios),
                                     ("video", req.videos))
                 for i, b in enumerate(given)]  # fmt: skip
    if not texts and not blobs and not multi:
        raise InputError("nothing to embed: give texts, images, audios, videos or multi")
    check_count(settings, len(texts) + len(blobs) + len(multi), "inputs")
    cut = cut_of(segs)
    images, clips, videos = [], [], []
    for name, data, kind in blobs:
        if kind == "image":
            images.append(eng.decode(data, name))
        elif kind == "audio":
            clips.append(await eng.decode_audio(data, name))
        else:
            videos.append(await eng.decode_video(data, name, shots=cut.shots))
    out: list[S.Embedding] = []
    if texts:
        res = await eng.embed_texts(texts, truncate=truncate, cancel=gone)
        rows = zip(res.vectors, res.truncated, res.n_tokens, strict=True)
        out += [S.Embedding(modality="text", vector=v.tolist(), truncated=t, n_tokens=n)
                for v, t, n in rows]  # fmt: skip
    if images:
        vecs = await eng.embed_images(images, cancel=gone)
        out += [S.Embedding(modality="image", vector=v.tolist()) for v in vecs]
    if clips:
        res = await eng.embed_audio(clips, cancel=gone)
        for v, spans, seg in zip(res.vectors, res.segments, res.segment_vectors, strict=True):
            out.append(_with_segments("audio", v, spans, seg))
    if videos:
        for r in await eng.embed_videos(videos, cut, cancel=gone):
            spans = [(s.start, s.end) for s in r.segments]
            out.append(_with_segments("video", r.vector, spans, r.segment_vectors))
    for i, q in enumerate(multi):
        f = await embed_parts(eng, q, gone, f"multi {i}", truncate=truncate)
        out.append(S.Embedding(modality="multi", vector=f.vector.tolist(), n_tokens=f.n_tokens))
    return S.EmbedResponse(model=settings.model, dim=eng.encoder.dim, embeddings=out)


def _with_segments(modality: str, vector: np.ndarray, spans: list, vectors) -> S.Embedding:
    segments = [S.Segment(start=a, end=b, vector=sv.tolist())
                for (a, b), sv in zip(spans, vectors, strict=True)]  # fmt: skip
    return S.Embedding(modality=modality, vector=vector.tolist(), segments=segments)
