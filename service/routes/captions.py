"""Captions: `POST /caption` writes a sentence for each image, sound or fused input, by the
served model's captioner (generation/captioner.py) through its own batcher."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends

from encoders import InputError
from runtime.engine import Engine
from service import schemas as S
from service.contract import BATCHED, errors, operation_id
from service.deps import check_count, disconnect_watch, embed_items, get_engine, require

router = APIRouter(tags=["captions"], generate_unique_id_function=operation_id)


@router.post("/caption", response_model=S.CaptionResponse, responses=errors(*BATCHED))
async def create_caption(
    req: S.CaptionRequest, eng: Engine = Depends(get_engine), _=require("read"),
    gone: asyncio.Event = Depends(disconnect_watch),
) -> S.CaptionResponse:  # fmt: skip
    """One caption per item, written by a small language model from the item's joint-space
    vector (an audio item's vector is its clip's pooled vector; a multi item's is its fusion)."""
    s = eng.settings
    eng.require_captioner()  # before any media is decoded
    check_count(s, len(req.input), "inputs")
    if len(req.input) > s.caption_queue:
        raise InputError(f"{len(req.input)} inputs in one request, over the caption queue of "
                         f"{s.caption_queue}")  # fmt: skip
    if req.max_tokens > s.max_caption_tokens:
        raise InputError(f"max_tokens {req.max_tokens} is over the limit of {s.max_caption_tokens}")
    if req.beams > s.max_caption_beams:
        raise InputError(f"beams {req.beams} is over the limit of {s.max_caption_beams}")
    for i, x in enumerate(req.input):
        if isinstance(x, S.TextInput):
            raise InputError(f"input {i} is a text: there is nothing to caption")
    vecs, _ = await embed_items(eng, req.input, gone)
    out = await eng.caption(vecs, req.max_tokens, req.beams, cancel=gone)
    written = sum(n for _, n in out)
    prefix = eng.caption_prefix * len(out)
    return S.CaptionResponse(
        model=s.model,
        data=[S.CaptionData(index=i, caption=text) for i, (text, _) in enumerate(out)],
        usage=S.CaptionUsage(
            prompt_tokens=prefix, completion_tokens=written, total_tokens=prefix + written
        ),
    )
