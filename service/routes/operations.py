"""Operations: health (a real forward pass and an index probe), Prometheus metrics, and the
served model (`/models`, and `/v1/models` for OpenAI clients)."""

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
from service.contract import errors, operation_id
from service.deps import get_runtime, open_collection, require
from service.errors import error_response

router = APIRouter(tags=["operations"], generate_unique_id_function=operation_id)


@router.get("/health", response_model=S.Health, responses=errors(503))
async def health(request: Request, rt: Runtime = Depends(get_runtime)) -> S.Health | Response:
    """A real forward pass and an index probe (503 when either fails); `degraded` (still 200,
    so that reads stay routed) with `ready: false` while writes cannot succeed."""
    try:
        v = (await rt.pipeline.texts(["health check"]))[0]
        if not np.isfinite(v).all():
            raise RuntimeError("model returned non-finite values")
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
                    index_backend=rt.catalog.backend)  # fmt: skip


@router.get(
    "/metrics", response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                     "description": "Prometheus text format"}},
)  # fmt: skip
async def metrics(request: Request, rt: Runtime = Depends(get_runtime)) -> Response:
    m = request.app.state.metrics
    m.free_bytes.set((await asyncio.to_thread(rt.catalog.space.status))[0])
    for modality, b in rt.batchers.items():
        m.queue_depth.labels(modality).set(b.depth)
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)


def _models(rt: Runtime) -> S.ModelList:
    i = rt.encoder.info()
    m = S.ModelInfo(
        id=rt.settings.model, dim=i["dim"], modalities=i["modalities"], parts=i["parts"],
        base=rt.encoder.base, context_length=i["context_length"], loss=i["loss"],
        device=i["device"], dimensions=i["trained_dimensions"],
    )  # fmt: skip
    return S.ModelList(data=[m])


@router.get("/models", response_model=S.ModelList)
async def list_models(rt: Runtime = Depends(get_runtime), _=require("read")) -> S.ModelList:
    """The served model: its spec, dimension, modalities, parts, base, context length, loss and
    device."""
    return _models(rt)


@router.get("/v1/models", response_model=S.ModelList)
async def list_models_openai(rt: Runtime = Depends(get_runtime), _=require("read")) -> S.ModelList:
    """The same list at the path OpenAI clients use."""
    return _models(rt)
