"""Collections and their items: create, list, inspect, drop; upsert, get and delete items."""

from __future__ import annotations

import asyncio

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request

from encoders import InputError
from runtime.engine import Engine
from runtime.videos import check_video_item, stale_segments, video_rows
from service import schemas as S
from service.access import Key, check_scope
from service.contract import BATCHED, errors, operation_id
from service.deps import (
    Fused,
    audit,
    check_count,
    cut_of,
    disconnect_watch,
    embed_parts,
    float32_vector,
    get_engine,
    media_urls,
    open_collection,
    require,
)
from service.http_util import decode_b64

router = APIRouter(tags=["collections"], generate_unique_id_function=operation_id)
Name = Path(pattern=S.NAME_PATTERN, description="The collection's name")
ItemPath = Path(min_length=1, max_length=512, description="The item's id")


@router.post(
    "/collections", status_code=201, response_model=S.CollectionInfo,
    responses=errors(400, 409, 413, 422, 503, 507),
)  # fmt: skip
async def create_collection(
    req: S.CollectionCreate, request: Request, eng: Engine = Depends(get_engine),
    key: Key = require("admin"),
) -> S.CollectionInfo:  # fmt: skip
    """Create an empty collection; the served model's dimension and spec are stamped on it."""
    check_scope(key, req.name)  # the name comes in the body, not the path
    col = await asyncio.to_thread(
        eng.catalog.create, req.name, eng.encoder.dim, req.metric, eng.encoder.name, req.index
    )
    audit(request, req.name, 0)
    return S.CollectionInfo(**col.info())


@router.get("/collections", response_model=list[S.CollectionInfo], responses=errors(503))
async def list_collections(
    eng: Engine = Depends(get_engine), key: Key = require("read")
) -> list[S.CollectionInfo]:
    """The collections this key may see."""
    names = [n for n in await asyncio.to_thread(eng.catalog.names) if key.sees(n)]
    return [S.CollectionInfo(**(await open_collection(eng, n)).info()) for n in names]


@router.get("/collections/{name}", response_model=S.CollectionInfo, responses=errors(404, 422, 503))
async def get_collection(
    name: str = Name, eng: Engine = Depends(get_engine), _=require("read")
) -> S.CollectionInfo:
    return S.CollectionInfo(**(await open_collection(eng, name)).info())


@router.delete(
    "/collections/{name}",
    response_model=S.CollectionDeleted,
    responses=errors(404, 422, 503, 507),
)
async def drop_collection(
    request: Request, name: str = Name, eng: Engine = Depends(get_engine), _=require("admin")
) -> S.CollectionDeleted:
    """Drop the collection, its items and its media."""
    await asyncio.to_thread(eng.catalog.drop, name)
    await asyncio.to_thread(eng.drop_media, name)
    audit(request, name, 0)
    return S.CollectionDeleted(deleted=name)


@router.put(
    "/collections/{name}/items", response_model=S.UpsertResponse,
    responses=errors(400, 404, 507, *BATCHED),
)  # fmt: skip
async def upsert_items(
    req: S.UpsertRequest, request: Request, name: str = Name, eng: Engine = Depends(get_engine),
    _=require("write"), gone: asyncio.Event = Depends(disconnect_watch),
) -> S.UpsertResponse:  # fmt: skip
    """Insert or replace items by id; each gives one of text, image, audio, video or vector, or
    several of text, image and audio fused into one vector (with optional `weights`). An audio
    item's vector is its clip's pooled vector. A video item is stored as one item per segment
    (`ID@0`, `ID@1`, ...; metadata `video_id`, `start`, `end`, `segment` beside the given
    metadata) and the whole video under its id (with `segments`, how many); replacing or deleting
    it replaces or deletes its segments."""
    col = await open_collection(eng, name)
    check_count(eng.settings, len(req.items), "items")
    vecs = np.zeros((len(req.items), col.dim), np.float32)
    texts, images, clips, videos, model_made = [], [], [], [], True
    fused: dict[int, Fused] = {}
    for i, it in enumerate(req.items):
        what = f"item '{it.id}'"
        if isinstance(it, S.MultiItem):
            fused[i] = await embed_parts(eng, it, gone, what, truncate=req.truncate)
            vecs[i] = fused[i].vector
        elif isinstance(it, S.TextItem):
            texts.append((i, it.text))
        elif isinstance(it, S.ImageItem):
            images.append((i, eng.decode(decode_b64(it.image, what), what)))
        elif isinstance(it, S.AudioItem):
            clips.append((i, await eng.decode_audio(decode_b64(it.audio, what), what)))
        elif isinstance(it, S.VideoItem):
            check_video_item(it.id, it.metadata, what)
            cut = cut_of(it.segments)
            videos.append((i, await eng.decode_video(decode_b64(it.video, what), what, cut.shots),
                           cut))  # fmt: skip
        else:
            vecs[i] = given_vector(it, col)
            model_made = False
    if texts:
        res = await eng.embed_texts([t for _, t in texts], truncate=req.truncate, cancel=gone)
        vecs[[i for i, _ in texts]] = res.vectors
    if images:
        vecs[[i for i, _ in images]] = await eng.embed_images([m for _, m in images], cancel=gone)
    if clips:
        res = await eng.embed_audio([c for _, c in clips], cancel=gone)
        vecs[[i for i, _ in clips]] = res.vectors
    rows = {}
    for i, clip, cut in videos:
        emb = (await eng.embed_videos([clip], cut, cancel=gone))[0]
        it = req.items[i]
        rows[i] = video_rows(it.id, it.metadata, clip.video.frames, clip.video.duration, emb)
    ids = [it.id for it in req.items]
    old = await asyncio.to_thread(col.get, ids)
    stale = stale_segments(old, {req.items[i].id: len(r.ids) - 1 for i, r in rows.items()})
    keep = [i for i in range(len(req.items)) if i not in rows]
    lsn = await asyncio.to_thread(
        col.upsert, [ids[i] for i in keep] + [x for r in rows.values() for x in r.ids],
        np.concatenate([vecs[keep], *[np.stack(r.vectors) for r in rows.values()]]),
        [req.items[i].metadata for i in keep] + [m for r in rows.values() for m in r.metadata],
        eng.encoder.name if model_made else None,
    )  # fmt: skip
    if stale:
        await asyncio.to_thread(col.delete, stale)
        lsn = getattr(col, "lsn", lsn)  # the delete's position (Milvus keeps none)
    await save_item_media(eng, name, req.items, images, clips, fused, videos, rows, stale)
    audit(request, name, len(req.items))
    return S.UpsertResponse(upserted=len(req.items), lsn=lsn)


def given_vector(it: S.VectorItem, col) -> np.ndarray:
    if len(it.vector) != col.dim:
        raise InputError(
            f"item '{it.id}': vector has {len(it.vector)} dimensions, collection "
            f"'{col.name}' holds {col.dim}-dimensional vectors"
        )
    return float32_vector(it.vector, f"item '{it.id}': vector")


async def save_item_media(
    eng: Engine, name: str, items: list, images: list, clips: list, fused: dict, videos: list,
    rows: dict, stale: list[str],
) -> None:  # fmt: skip
    """Each item's medium: its picture, its sound, a video's bytes and its segments'
    thumbnails; the old media of items that now have none, and of dropped segments, go."""
    for i, f in fused.items():  # a fused item's picture is its medium, else its sound
        if f.image is not None:
            images.append((i, f.image))
        elif f.clip is not None:
            clips.append((i, f.clip))
    for i, im in images:
        await asyncio.to_thread(eng.save_media, name, items[i].id, im)
    for i, clip in clips:
        await asyncio.to_thread(eng.save_audio_media, name, items[i].id, clip)
    for i, clip, _ in videos:
        await asyncio.to_thread(eng.save_video_media, name, items[i].id, clip)
        for sid, thumb in rows[i].thumbs:
            await asyncio.to_thread(eng.save_media, name, sid, thumb)
    with_media = {i for i, _ in images} | {i for i, _ in clips} | set(rows)
    bare = [it.id for i, it in enumerate(items) if i not in with_media]
    await asyncio.to_thread(eng.delete_media, name, bare + stale)  # a replaced item's old medium


@router.get(
    "/collections/{name}/items/{item_id}",
    response_model=S.ItemOut,
    responses=errors(404, 422, 503),
)
async def get_item(
    request: Request, name: str = Name, item_id: str = ItemPath,
    include_vector: bool = Query(False, description="Return the stored vector too"),
    eng: Engine = Depends(get_engine), _=require("read"),
) -> S.ItemOut:  # fmt: skip
    col = await open_collection(eng, name)
    item = (await asyncio.to_thread(col.get, [item_id]))[0]
    if item is None:
        raise HTTPException(404, f"no item '{item_id}' in collection '{name}'")
    return S.ItemOut(
        id=item.id, metadata=item.metadata, media=media_urls(request, name)(item.id),
        vector=item.vector.tolist() if include_vector else None,
    )  # fmt: skip


@router.delete(
    "/collections/{name}/items/{item_id}", response_model=S.ItemsDeleted,
    responses=errors(404, 422, 503, 507),
)  # fmt: skip
async def delete_item(
    request: Request, name: str = Name, item_id: str = ItemPath,
    eng: Engine = Depends(get_engine), _=require("write"),
) -> S.ItemsDeleted:  # fmt: skip
    """Delete one item; deleting a video deletes its segments too (`deleted` counts them)."""
    col = await open_collection(eng, name)
    item = (await asyncio.to_thread(col.get, [item_id]))[0]
    ids = [item_id, *stale_segments([item], {})]
    deleted = await asyncio.to_thread(col.delete, ids)
    if deleted == 0:
        raise HTTPException(404, f"no item '{item_id}' in collection '{name}'")
    await asyncio.to_thread(eng.delete_media, name, ids)
    audit(request, name, deleted)
    return S.ItemsDeleted(deleted=deleted)
