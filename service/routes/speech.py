"""Speech: `POST /transcribe` answers what is said in an audio clip or a video's sound track, with
the time of each stretch of speech, by the service's speech recogniser (runtime/speech.py) through
its own batcher."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends

from service import schemas as S
from service.contract import BATCHED, errors, operation_id
from service.deps import LEASE, Lease, disconnect_watch, require
from service.inputs import to_input

router = APIRouter(tags=["speech"], generate_unique_id_function=operation_id)


@router.post("/transcribe", response_model=S.TranscribeResponse, responses=errors(*BATCHED))
async def transcribe(
    req: S.TranscribeRequest, _=require("read"), lease: Lease = LEASE,
    gone: asyncio.Event = Depends(disconnect_watch),
) -> S.TranscribeResponse:  # fmt: skip
    """`{"input": {"audio": ...}}` or `{"input": {"video": ...}}`: the text said and its segments
    (`start`, `end` in seconds, `text`); a clip without speech has none (and an empty text). The
    default model's pipeline decodes the input (held, and loaded first where models are lazy)."""
    pipe = (await lease.take(None)).pipeline
    pipe.require_speech()  # before any decoding
    said = await pipe.transcribe(to_input(req.input, "input"), cancel=gone)
    segments = [S.TranscriptSegment(start=s.start, end=s.end, text=s.text) for s in said.segments]
    return S.TranscribeResponse(text=said.text, segments=segments,
                                duration=round(said.seconds, 3))  # fmt: skip
