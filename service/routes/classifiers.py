"""Trained classifiers: learn one from a collection's items and a metadata label (a background
job), see its state and validation figures, list and delete them."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Path, Request

from fusion.classifier import ClassifierError, Examples, check_examples, fit
from index import check_towers
from runtime.registries import Models
from service import schemas as S
from service.access import check_scope
from service.contract import errors, operation_id
from service.deps import LEASE, Lease, audit, get_catalog, get_models, open_collection, require

log = logging.getLogger("jointspace.classifiers")
MODELS = Depends(get_models)
router = APIRouter(tags=["classifiers"], generate_unique_id_function=operation_id)
Name = Path(alias="classifier", pattern=S.NAME_PATTERN, description="The classifier's name")


def _status(models: Models, name: str) -> S.ClassifierStatus:
    return S.ClassifierStatus(**models.classifiers.status(name))  # unknown: 404


@router.post(
    "/classifiers", status_code=202, response_model=S.ClassifierStatus,
    responses=errors(400, 404, 409, 422, 503),
)  # fmt: skip
async def create_classifier(
    req: S.ClassifierCreate, request: Request, catalog=Depends(get_catalog),
    key=require("admin"), lease: Lease = LEASE,
) -> S.ClassifierStatus:  # fmt: skip
    """Train a classifier in the background on the collection's items, labelled by a metadata
    field (80% to train, 20% to calibrate and report); poll GET /classifiers/{name}. It is the
    classifier of the collection's model."""
    check_scope(key, req.collection)
    col = await open_collection(catalog, req.collection)
    models = (await lease.for_collection(col)).models
    if req.name in models.classifiers.names():
        raise HTTPException(409, f"classifier '{req.name}' already exists: delete it first")
    if col.model is not None and col.model != models.model:
        raise ClassifierError(
            f"collection '{req.collection}' holds vectors from '{col.model}', but the service "
            f"serves '{models.model}': a classifier must read the vectors it will be given"
        )
    check_towers(col, request.app.state.runtime.encoder.model_digest)
    vectors, values = await asyncio.to_thread(col.labelled, req.label_field)
    if not len(vectors):
        raise ClassifierError(
            f"no item of collection '{req.collection}' has a label in '{req.label_field}'"
        )
    classes = sorted({str(v) for v in values})
    labels = [classes.index(str(v)) for v in values]
    ex = Examples(vectors[:, None, :], np.ones((len(vectors), 1), bool), np.array(labels, int),
                  classes, ("vector",))  # fmt: skip
    check_examples(ex)
    source = f"collection '{req.collection}', label field '{req.label_field}'"
    status = models.classifiers.set_status(
        req.name, status="training", model=models.model, fusion=req.fusion, source=source,
        error=None,
    )  # fmt: skip
    models.training[req.name] = asyncio.create_task(_train(models, req, ex, source))
    audit(request, req.collection, len(vectors))
    return S.ClassifierStatus(**status)


async def _train(models: Models, req: S.ClassifierCreate, ex: Examples, source: str) -> None:
    try:
        clf = await asyncio.to_thread(fit, ex, req.fusion, epochs=req.epochs)
        await asyncio.to_thread(models.classifiers.save, req.name, clf, models.model,
                                source=source)  # fmt: skip
    except Exception as e:  # the job's outcome is its status; the service goes on
        log.exception("training classifier '%s' failed", req.name)
        models.classifiers.set_status(req.name, status="failed", error=f"{type(e).__name__}: {e}")
    finally:
        models.training.pop(req.name, None)


@router.get("/classifiers", response_model=list[S.ClassifierStatus])
async def list_classifiers(models: Models = MODELS, _=require("read")) -> list[S.ClassifierStatus]:
    return [_status(models, n) for n in models.classifiers.names()]


@router.get(
    "/classifiers/{classifier}", response_model=S.ClassifierStatus, responses=errors(404, 422)
)
async def get_classifier(
    name: str = Name, models: Models = MODELS, _=require("read")
) -> S.ClassifierStatus:
    """training, ready (with the validation figures) or failed (with why)."""
    return _status(models, name)


@router.delete(
    "/classifiers/{classifier}", response_model=S.ClassifierStatus, responses=errors(404, 409, 422)
)
async def delete_classifier(
    request: Request, name: str = Name, models: Models = MODELS, _=require("admin")
) -> S.ClassifierStatus:
    status = _status(models, name)
    if name in models.training:
        raise HTTPException(409, f"classifier '{name}' is training: wait for it to finish")
    await asyncio.to_thread(models.classifiers.delete, name)
    audit(request, name, 0)
    return status
