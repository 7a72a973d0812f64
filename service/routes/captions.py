"""Captions: `POST /caption` writes a sentence for each image, sound, video (and each of its
segments) or fused input, by the served model's captioner (generation/captioner.py) through its
own batcher."""

from __future__ import annotations

import asyncio

import numpy as np
from fastapi import APIRouter, Depends

from encoders import InputError
from runtime.settings import Settings
from service import schemas as S
from service.contract import BATCHED, errors, operation_id
from service.deps import LEASE, Lease, check_count, disconnect_watch, get_settings, require
from service.inputs import to_input

router = APIRouter(tags=["captions"], generate_unique_id_function=operation_id)


@router.post(
    "/caption", response_model=S.CaptionResponse, response_model_exclude_none=True,
    responses=errors(404, *BATCHED),
)  # fmt: skip
async def create_caption(
    req: S.CaptionRequest, s: Settings = Depends(get_settings), _=require("read"),
    lease: Lease = LEASE, gone: asyncio.Event = Depends(disconnect_watch),
) -> S.CaptionResponse:  # fmt: skip
    """One caption per item, written by a small language model from the item's joint-space
    vector (an audio item's vector is its clip's pooled vector; a multi item's is its fusion),
    by the captioner of the served model `model` (default: the first); a video item's caption is
    the whole video's, with `segments`: a caption per segment (`start`, `end`, `caption`)."""
    slot = lease.runtime.served.resolve(req.model)
    model = await lease.take(req.model)
    pipe, captions = model.pipeline, model.captions
    captions.require()  # before any media is decoded
    check_count(s, len(req.input), "inputs")
    if len(req.input) > s.caption_queue:
        raise InputError(f"{len(req.input)} inputs in one request, over the caption queue of "
                         f"{s.caption_queue}")  # fmt: skip
    if req.max_tokens > s.max_caption_tokens:
        raise InputError(f"max_tokens {req.max_tokens} is over the limit of {s.max_caption_tokens}")
    if req.beams > s.max_caption_beams:
        raise InputError(f"beams {req.beams} is over the limit of {s.max_caption_beams}")
    inputs = [to_input(x, f"input {i}") for i, x in enumerate(req.input)]
    for i, x in enumerate(inputs):
        if x.modality == "text":
            raise InputError(f"input {i} is a text: there is nothing to caption")
    got = await pipe.embed(inputs, cancel=gone)
    # a video's segments are captioned beside it, in the same submission
    segs = [list(zip(r.segments, r.segment_vectors, strict=True)) if r.video is not None else []
            for r in got]  # fmt: skip
    vecs = np.stack([r.vector for r in got] + [v for ss in segs for _, v in ss])
    if len(vecs) > s.caption_queue:
        raise InputError(f"{len(vecs)} captions in one request (the inputs and their videos' "
                         f"segments), over the caption queue of {s.caption_queue}")  # fmt: skip
    out = await captions.caption(vecs, req.max_tokens, req.beams, cancel=gone)
    written = sum(n for _, n in out)
    prefix = captions.prefix * len(out)
    data, at = [], len(got)
    for i, (text, _) in enumerate(out[: len(got)]):
        moments = None
        if got[i].video is not None:
            moments = [S.SegmentCaption(start=a, end=b, caption=out[at + j][0])
                       for j, ((a, b), _) in enumerate(segs[i])]  # fmt: skip
            at += len(segs[i])
        data.append(S.CaptionData(index=i, caption=text, segments=moments))
    return S.CaptionResponse(
        model=slot.id,
        data=data,
        usage=S.CaptionUsage(
            prompt_tokens=prefix, completion_tokens=written, total_tokens=prefix + written
        ),
    )
