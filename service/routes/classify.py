"""Zero-shot classification of one input against labels."""

from __future__ import annotations

import asyncio

import numpy as np
from fastapi import APIRouter, Depends

from encoders import InputError
from fusion import DEFAULT_TEMPLATES, class_matrix
from fusion import scores as class_scores
from service import schemas as S
from service.contract import BATCHED, errors, operation_id
from service.deps import check_count, disconnect_watch, embed_query, get_engine, require
from service.engine import Engine

router = APIRouter(tags=["classification"], generate_unique_id_function=operation_id)


@router.post("/classify", response_model=S.ClassifyResponse, responses=errors(*BATCHED))
async def classify(
    req: S.ClassifyRequest, eng: Engine = Depends(get_engine), _=require("read"),
    gone: asyncio.Event = Depends(disconnect_watch),
) -> S.ClassifyResponse:  # fmt: skip
    """Zero-shot: softmax over the labels for CLIP-style models, independent sigmoids for
    SigLIP-style ones, with the model's own temperature."""
    templates = req.templates or DEFAULT_TEMPLATES
    if any(t.count("{}") != 1 for t in templates):
        raise InputError("each template needs exactly one {} where the label goes")
    check_count(eng.settings, len(req.labels) * len(templates), "prompts (labels x templates)")
    x, _ = await embed_query(eng, req.input, gone)
    prompts = [t.format(label) for label in req.labels for t in templates]
    pv = (await eng.embed_texts(prompts, truncate=True, cancel=gone)).vectors
    enc = eng.encoder
    sc = class_scores(x[None], class_matrix(pv, len(req.labels)), enc.loss, enc.logit_scale,
                      enc.logit_bias)[0]  # fmt: skip
    order = np.argsort(-sc, kind="stable")
    return S.ClassifyResponse(
        scores=[S.LabelScore(label=req.labels[i], score=float(sc[i])) for i in order],
        activation="sigmoid" if enc.loss == "sigmoid" else "softmax",
    )
