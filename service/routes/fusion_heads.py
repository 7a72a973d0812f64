"""Fusion heads: list the trained ones (`jointspace fit-fusion-head` trains them) with their
validation figures, see one, delete one. A multi-part input names one as its `head`."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Path, Request

from runtime.registries import Models
from service import schemas as S
from service.contract import errors, operation_id
from service.deps import audit, get_models, require

MODELS = Depends(get_models)
router = APIRouter(tags=["fusion heads"], generate_unique_id_function=operation_id)
Name = Path(alias="head", pattern=S.NAME_PATTERN, description="The fusion head's name")


def _status(models: Models, name: str) -> S.FusionHeadStatus:
    return S.FusionHeadStatus(**models.heads.status(name))  # unknown: 404


@router.get("/fusion-heads", response_model=list[S.FusionHeadStatus])
async def list_fusion_heads(models: Models = MODELS, _=require("read")) -> list[S.FusionHeadStatus]:
    return [_status(models, n) for n in models.heads.names()]


@router.get("/fusion-heads/{head}", response_model=S.FusionHeadStatus, responses=errors(404, 422))
async def get_fusion_head(
    name: str = Name, models: Models = MODELS, _=require("read")
) -> S.FusionHeadStatus:
    """The parts it fuses, the model it was trained on and its validation figures."""
    return _status(models, name)


@router.delete("/fusion-heads/{head}", response_model=S.FusionHeadStatus,
               responses=errors(404, 422))  # fmt: skip
async def delete_fusion_head(
    request: Request, name: str = Name, models: Models = MODELS, _=require("admin")
) -> S.FusionHeadStatus:
    """Inputs that name it are refused (404) from then on."""
    status = _status(models, name)
    await asyncio.to_thread(models.heads.delete, name)
    audit(request, name, 0)
    return status
