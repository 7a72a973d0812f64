"""Images: `POST /generate` draws pictures from a prompt, an image, a collection item or a vector
(optionally moved by a modification phrase, as search is) with the served model's image decoder
(generation/decoder.py), through its own batcher. The answer has the shape of OpenAI's image API."""

from __future__ import annotations

import asyncio
import base64
import time

import numpy as np
from fastapi import APIRouter, Depends, Request

from encoders import InputError
from fusion import compose, parse_modification
from generation.decoder import MODIFICATION_WEIGHT
from runtime.generator import Draw, Generator, require_generator
from runtime.pipeline import Pipeline
from runtime.settings import Settings
from service import schemas as S
from service.access import check_scope
from service.contract import BATCHED, errors, operation_id
from service.deps import (
    LEASE,
    Lease,
    disconnect_watch,
    embed_query,
    get_catalog,
    get_settings,
    open_collection,
    require,
)

router = APIRouter(tags=["images"], generate_unique_id_function=operation_id)


@router.post("/generate", response_model=S.GenerateResponse, responses=errors(400, 404, *BATCHED))
async def generate(
    req: S.GenerateRequest, request: Request, s: Settings = Depends(get_settings),
    catalog=Depends(get_catalog), _=require("read"), lease: Lease = LEASE,
    gone: asyncio.Event = Depends(disconnect_watch),
) -> S.GenerateResponse:  # fmt: skip
    """Draw `n` pictures of a prompt (through the prior), an image, a collection item's vector or
    a vector, optionally moved by a modification ("in blue instead of red"). The same request with
    the same seed returns the same bytes. The decoder is that of the served model `model`
    (default: the collection's model for an item, else the first served)."""
    col = None
    if req.collection is not None:
        check_scope(request.state.key, req.collection)  # the collection comes in the body
        col = await open_collection(catalog, req.collection)
        model = await lease.for_collection(col, req.model)
    else:
        model = await lease.take(req.model)
    pipe = model.pipeline
    gen = require_generator(model.generator, model.encoder)  # before any media is decoded
    if req.n > s.max_generate_n:
        raise InputError(f"n {req.n} is over the limit of {s.max_generate_n}")
    if req.steps > s.max_generate_steps:
        raise InputError(f"steps {req.steps} is over the limit of {s.max_generate_steps}")
    v = await image_vector(req, gen, pipe, col, gone)
    if req.modification:
        terms = parse_modification(req.modification, weight=MODIFICATION_WEIGHT)
        if not terms:
            raise InputError("the modification has no terms")
        tv = await pipe.texts([t.text for t in terms], cancel=gone)
        try:
            v = compose(v, gen.image_vectors(tv), [t.weight for t in terms])
        except ValueError as e:
            raise InputError(str(e)) from None
    job = Draw(np.repeat(v[None], req.n, 0), req.steps, req.guidance, req.seed)
    pngs = await gen.generate(job, cancel=gone)
    return S.GenerateResponse(
        created=int(time.time()),
        data=[S.GeneratedImage(b64_json=base64.b64encode(p).decode()) for p in pngs],
    )


async def image_vector(req: S.GenerateRequest, gen: Generator, pipe: Pipeline, col,
                       gone: asyncio.Event) -> np.ndarray:  # fmt: skip
    """The image-space vector the request asks to draw."""
    if req.prompt is not None:
        if not req.prompt.strip():
            raise InputError("prompt is empty")
        return gen.image_vectors(await pipe.texts([req.prompt], cancel=gone))[0]
    if req.image is not None:
        return (await embed_query(pipe, S.ImageQuery(image=req.image), gone)).vector
    if req.vector is not None:
        return (await embed_query(pipe, S.VectorQuery(vector=req.vector), gone)).vector
    return (await embed_query(pipe, S.IdQuery(id=req.id), gone, col)).vector
