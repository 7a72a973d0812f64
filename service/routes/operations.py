"""Operations: health (a real forward pass through each loaded model and an index probe),
Prometheus metrics, and the served models (`/models`, and `/v1/models` for OpenAI clients)."""

from __future__ import annotations

import asyncio

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from index.space import human
from runtime.container import Runtime
from service import schemas as S
from service.access import OPEN
from service.contract import errors, operation_id
from service.deps import get_runtime, open_collection, require
from service.errors import error_response

router = APIRouter(tags=["operations"], generate_unique_id_function=operation_id)


@router.get("/health", response_model=S.Health, responses=errors(503))
async def health(request: Request, rt: Runtime = Depends(get_runtime)) -> S.Health | Response:
    """A real forward pass through each loaded model and an index probe (503 when either
    fails); `degraded` (still 200, so that reads stay routed) with `ready: false` while writes
    cannot succeed. `models` tells which models are loaded and the memory each takes."""
    try:
        await _forward_passes(rt)
        names = await asyncio.to_thread(rt.catalog.names)
        for n in names[:1]:
            col = await open_collection(rt.catalog, n)
            if col.count:
                await asyncio.to_thread(col.search, np.ones(col.dim, np.float32), 1)
    except Exception as e:
        return error_response(503, "unhealthy", f"{type(e).__name__}: {e}")
    free, floor = await asyncio.to_thread(rt.catalog.space.status)
    request.app.state.metrics.free_bytes.set(free)
    reason = None
    if free < floor:
        reason = (f"the data directory has {human(free)} free, below its floor of {human(floor)}: "
                  "writes are refused until space is freed")  # fmt: skip
    failed = rt.catalog.failures()
    if failed:
        reason = "; ".join([*([reason] if reason else []), *failed.values()])
    return S.Health(status="degraded" if reason else "ok", ready=reason is None, reason=reason,
                    model=rt.settings.model, collections=len(names), free_bytes=free,
                    index_backend=rt.catalog.backend, models=_states(rt))  # fmt: skip


async def _forward_passes(rt: Runtime) -> None:
    """A text through each loaded model (held meanwhile: none is unloaded under the check)."""
    served = rt.served
    for slot, _ in served.loaded():
        parts = await served.acquire(slot)
        try:
            v = (await parts.pipeline.texts(["health check"]))[0]
        finally:
            await served.release(slot)
        if not np.isfinite(v).all():
            raise RuntimeError(f"model '{slot.id}' returned non-finite values")


def _states(rt: Runtime) -> list[S.ModelState]:
    return [S.ModelState(id=s.id, loaded=s.parts is not None, in_use=s.holders,
                         memory_bytes=s.parts.memory_bytes if s.parts is not None else None)
            for s in rt.served.slots.values()]  # fmt: skip


@router.get(
    "/metrics", response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                     "description": "Prometheus text format"}},
)  # fmt: skip
async def metrics(request: Request, rt: Runtime = Depends(get_runtime)) -> Response:
    m = request.app.state.metrics
    m.free_bytes.set((await asyncio.to_thread(rt.catalog.space.status))[0])
    for slot in rt.served.slots.values():
        m.model_loaded.labels(slot.id).set(int(slot.parts is not None))
        m.model_bytes.labels(slot.id).set(slot.parts.memory_bytes if slot.parts else 0)
        for modality, b in (slot.parts.batchers if slot.parts else {}).items():
            m.queue_depth.labels(slot.id, modality).set(b.depth)
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)


async def _models(rt: Runtime, request: Request) -> S.ModelList:
    """The served models the request's key may use, the default first (a model never loaded
    is loaded once to be described)."""
    key = getattr(request.state, "key", None) or OPEN
    out = []
    for slot in rt.served.slots.values():
        if not key.uses(slot.id):
            continue
        i = await rt.served.describe(slot)
        out.append(S.ModelInfo(
            id=slot.id, dim=i["dim"], modalities=i["modalities"], parts=i["parts"],
            base=i["base"], context_length=i["context_length"], loss=i["loss"],
            device=i["device"], dimensions=i["trained_dimensions"],
            default=slot is rt.served.default, loaded=slot.parts is not None,
            memory_bytes=slot.parts.memory_bytes if slot.parts is not None else None,
        ))  # fmt: skip
    return S.ModelList(data=out)


@router.get("/models", response_model=S.ModelList)
async def list_models(
    request: Request, rt: Runtime = Depends(get_runtime), _=require("read")
) -> S.ModelList:
    """The served models: each one's spec, dimension, modalities, parts, base, context length,
    loss and device, whether it is the default and loaded, and its memory."""
    return await _models(rt, request)


@router.get("/v1/models", response_model=S.ModelList)
async def list_models_openai(
    request: Request, rt: Runtime = Depends(get_runtime), _=require("read")
) -> S.ModelList:
    """The same list at the path OpenAI clients use."""
    return await _models(rt, request)
