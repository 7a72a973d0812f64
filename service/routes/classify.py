"""Classification of one input: zero-shot against labels, or by a trained classifier."""

from __future__ import annotations

import asyncio

import numpy as np
from fastapi import APIRouter, Depends

from encoders import InputError
from fusion import DEFAULT_TEMPLATES, class_matrix
from fusion import scores as class_scores
from runtime import inputs as I
from runtime.pipeline import Pipeline
from runtime.registries import Models
from runtime.settings import Settings
from service import schemas as S
from service.contract import BATCHED, errors, operation_id
from service.deps import (
    LEASE,
    Lease,
    check_count,
    disconnect_watch,
    embed_query,
    get_settings,
    require,
)
from service.inputs import to_input

router = APIRouter(tags=["classification"], generate_unique_id_function=operation_id)


@router.post("/classify", response_model=S.ClassifyResponse, responses=errors(400, 404, *BATCHED))
async def classify(
    req: S.ClassifyRequest, settings: Settings = Depends(get_settings), _=require("read"),
    lease: Lease = LEASE, gone: asyncio.Event = Depends(disconnect_watch),
) -> S.ClassifyResponse:  # fmt: skip
    """Zero-shot: softmax over the labels for CLIP-style models, independent sigmoids for
    SigLIP-style ones, with the model's own temperature. With `classifier`: that trained
    classifier's labels, as calibrated probabilities that sum to 1. `model` picks a served
    model (default: the first)."""
    model = await lease.take(req.model)
    enc, pipe, models = model.encoder, model.pipeline, model.models
    if req.classifier is not None:
        return await _trained(req, models, pipe, gone)
    templates = req.templates or DEFAULT_TEMPLATES
    if any(t.count("{}") != 1 for t in templates):
        raise InputError("each template needs exactly one {} where the label goes")
    check_count(settings, len(req.labels) * len(templates), "prompts (labels x templates)")
    x = (await embed_query(pipe, req.input, gone)).vector
    prompts = [t.format(label) for label in req.labels for t in templates]
    pv = await pipe.texts(prompts, truncate=True, cancel=gone)
    sc = class_scores(x[None], class_matrix(pv, len(req.labels)), enc.loss, enc.logit_scale,
                      enc.logit_bias)[0]  # fmt: skip
    order = np.argsort(-sc, kind="stable")
    return S.ClassifyResponse(
        scores=[S.LabelScore(label=req.labels[i], score=float(sc[i])) for i in order],
        activation="sigmoid" if enc.loss == "sigmoid" else "softmax",
    )


async def _trained(req: S.ClassifyRequest, models: Models, pipe: Pipeline,
                   gone: asyncio.Event) -> S.ClassifyResponse:  # fmt: skip
    clf = await asyncio.to_thread(models.classifier, req.classifier)  # unknown: 404
    vectors = np.zeros((1, len(clf.modalities), clf.dim), np.float32)
    present = np.zeros((1, len(clf.modalities)), bool)
    for part, x in (await _parts(req, clf.modalities, pipe, gone)).items():
        slot = clf.modalities.index(part)
        vectors[0, slot], present[0, slot] = _unit(x), True
    p = clf.predict_proba(vectors, present)[0]
    order = np.argsort(-p, kind="stable")
    abstained = None if req.abstain is None else bool(p[order[0]] < req.abstain)
    return S.ClassifyResponse(
        scores=[S.LabelScore(label=clf.classes[i], score=float(p[i])) for i in order],
        activation="softmax", classifier=req.classifier, abstained=abstained,
    )  # fmt: skip


async def _parts(
    req: S.ClassifyRequest, modalities: tuple[str, ...], pipe: Pipeline, gone: asyncio.Event
) -> dict[str, np.ndarray]:
    """The input's vector per part the classifier reads: a classifier trained on a collection
    reads one `vector` (a fused input's fused vector); one trained on parts reads each part."""
    q = req.input
    if modalities == ("vector",):
        return {"vector": (await embed_query(pipe, q, gone)).vector}
    x = to_input(q, "input", by_kind=True)
    given = list(x.parts) if isinstance(x, I.Multi) else [x.modality]
    unread = [p for p in given if p not in modalities]
    if unread:
        kind = "a vector" if unread == ["vector"] else ", ".join(unread)
        raise InputError(
            f"classifier '{req.classifier}' reads {', '.join(modalities)}; the input has {kind}"
        )
    if isinstance(x, I.Multi):
        return (await pipe.embed([x], cancel=gone))[0].parts
    return {given[0]: (await embed_query(pipe, q, gone)).vector}


def _unit(x: np.ndarray) -> np.ndarray:
    """Classifiers learn from unit vectors, as collections and the towers give them."""
    x64 = np.asarray(x, np.float64)  # a float32 norm of large values overflows
    norm = float(np.linalg.norm(x64))
    if norm == 0:
        raise InputError("the input vector is zero: it has no direction to classify")
    return (x64 / norm).astype(np.float32)
