"""Collections and their items: create, list, inspect, drop; upsert, get and delete items."""

from __future__ import annotations

import asyncio

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request

from encoders import InputError
from index import check_towers
from index.children import stale_segments, stale_speech
from runtime.media import MediaStore
from runtime.pipeline import Embedded, float32_vector
from runtime.settings import Settings
from runtime.transcripts import check_speech_item, speech_rows, with_transcript
from runtime.videos import check_video_item, video_rows
from service import schemas as S
from service.access import Key, check_scope
from service.contract import BATCHED, errors, operation_id
from service.deps import (
    LEASE,
    Lease,
    audit,
    check_count,
    disconnect_watch,
    get_catalog,
    get_media,
    get_settings,
    media_urls,
    open_collection,
    require,
)
from service.inputs import to_input

router = APIRouter(tags=["collections"], generate_unique_id_function=operation_id)
Name = Path(pattern=S.NAME_PATTERN, description="The collection's name")
CATALOG, MEDIA = Depends(get_catalog), Depends(get_media)
ItemPath = Path(min_length=1, max_length=512, description="The item's id")


@router.post(
    "/collections", status_code=201, response_model=S.CollectionInfo,
    responses=errors(400, 404, 409, 413, 422, 503, 507),
)  # fmt: skip
async def create_collection(
    req: S.CollectionCreate, request: Request, catalog=CATALOG, key: Key = require("admin"),
    lease: Lease = LEASE,
) -> S.CollectionInfo:  # fmt: skip
    """Create an empty collection for one served model (`model`, default the first served): its
    dimension and name are stamped on it, and its items and searches are embedded by it for good.
    `text_fields` name the metadata keys the keyword index holds beside each item's text input;
    `quantization` makes the index hold int8 or binary codes."""
    check_scope(key, req.name)  # the name comes in the body, not the path
    encoder = (await lease.take(req.model)).encoder
    col = await asyncio.to_thread(
        catalog.create, req.name, encoder.dim, req.metric, encoder.name, req.index,
        text_fields=req.text_fields, quantization=req.quantization,
        model_digest=encoder.model_digest,
    )  # fmt: skip
    audit(request, req.name, 0)
    return S.CollectionInfo(**col.info())


@router.get("/collections", response_model=list[S.CollectionInfo], responses=errors(503))
async def list_collections(catalog=CATALOG, key: Key = require("read")) -> list[S.CollectionInfo]:
    """The collections this key may see."""
    names = [n for n in await asyncio.to_thread(catalog.names) if key.sees(n)]
    return [S.CollectionInfo(**(await open_collection(catalog, n)).info()) for n in names]


@router.get("/collections/{name}", response_model=S.CollectionInfo, responses=errors(404, 422, 503))
async def get_collection(name: str = Name, catalog=CATALOG, _=require("read")) -> S.CollectionInfo:
    return S.CollectionInfo(**(await open_collection(catalog, name)).info())


@router.delete(
    "/collections/{name}",
    response_model=S.CollectionDeleted,
    responses=errors(404, 422, 503, 507),
)
async def drop_collection(
    request: Request,
    name: str = Name,
    catalog=CATALOG,
    media: MediaStore = MEDIA,
    _=require("admin"),
) -> S.CollectionDeleted:
    """Drop the collection, its items and its media."""
    await asyncio.to_thread(catalog.drop, name)
    await asyncio.to_thread(media.drop, name)
    audit(request, name, 0)
    return S.CollectionDeleted(deleted=name)


@router.put(
    "/collections/{name}/items", response_model=S.UpsertResponse,
    responses=errors(400, 404, 409, 507, *BATCHED),
)  # fmt: skip
async def upsert_items(
    req: S.UpsertRequest, request: Request, name: str = Name, catalog=CATALOG,
    settings: Settings = Depends(get_settings), lease: Lease = LEASE,
    media: MediaStore = MEDIA, _=require("write"), gone: asyncio.Event = Depends(disconnect_watch),
) -> S.UpsertResponse:  # fmt: skip
    """Insert or replace items by id; each gives one of text, image, audio, video or vector, or
    several of text, image and audio fused into one vector (with optional `weights`). An audio
    item's vector is its clip's pooled vector. A video item is stored as one item per segment
    (`ID@0`, `ID@1`, ...; metadata `video_id`, `start`, `end`, `segment` beside the given
    metadata) and the whole video under its id (with `segments`, how many); replacing or deleting
    it replaces or deletes its segments. An audio or video item with `"speech": true` also stores
    what is said in it: one item per stretch of speech (`ID@sN`, its text's vector; metadata
    `parent`, `start`, `end`, `transcript`), replaced and deleted with it. Items are embedded by
    the collection's own model."""
    col = await open_collection(catalog, name)
    pipe = (await lease.for_collection(col)).pipeline
    check_count(settings, len(req.items), "items")
    if any(not isinstance(it, S.VectorItem) for it in req.items):  # the model makes vectors
        check_towers(col, pipe.encoder.model_digest)
    inputs = []
    for it in req.items:
        what = f"item '{it.id}'"
        inputs.append(to_input(it, what))
        if getattr(it, "speech", False):
            check_speech_item(it.id, it.metadata, what)
        if inputs[-1].modality == "video":
            check_video_item(it.id, it.metadata, what)
        elif inputs[-1].modality == "vector":
            given_vector(it, col)
    out = await pipe.embed(inputs, truncate=req.truncate, cancel=gone)
    rows = {i: video_rows(it.id, it.metadata, r.clip.video.frames, r.clip.video.duration, r.video,
                          r.sound)
            for i, (it, r) in enumerate(zip(req.items, out, strict=True))
            if r.video is not None}  # fmt: skip
    meta, talk = transcript_rows(req.items, out, rows)
    ids = [it.id for it in req.items]
    old = await asyncio.to_thread(col.get, ids)
    stale = stale_segments(old, {ids[i]: len(out[i].segments) for i in rows},
                           {ids[i]: len(out[i].sound) for i in rows if out[i].sound})  # fmt: skip
    stale += stale_speech(old, {ids[i]: len(t.ids) for i, t in talk.items()})
    keep = [i for i in range(len(req.items)) if i not in rows]
    vecs = [out[i].vector[None] for i in keep] + [np.stack(r.vectors) for r in rows.values()]
    vecs += [np.stack(t.vectors) for t in talk.values() if t.ids]
    model_made = all(x.modality != "vector" for x in inputs)
    # the keyword index's text: a text or fused item's text (a video's rows have none of their
    # own), and a speech segment's transcript
    texts = [getattr(req.items[i], "text", None) for i in keep]
    texts += [None] * sum(len(r.ids) for r in rows.values())
    texts += [x for t in talk.values() for x in t.texts]
    # A new item's media go down before the one transaction that makes it (and the removal of
    # a shrunk video's stale segments) visible: a crash in between leaves only unreferenced
    # media, which the next start collects, and a refused write takes them back. A replaced
    # item's media are rewritten after the commit, so a refused write leaves it as it was.
    fresh = {i for i, o in enumerate(old) if o is None}
    try:
        with_media = await save_item_media(media, name, req.items, out, rows, fresh)
        lsn = await asyncio.to_thread(
            col.upsert,
            [ids[i] for i in keep] + [x for r in rows.values() for x in r.ids]
            + [x for t in talk.values() for x in t.ids],
            np.concatenate(vecs).astype(np.float32),
            [meta[i] for i in keep] + [m for r in rows.values() for m in r.metadata]
            + [m for t in talk.values() for m in t.metadata],
            pipe.encoder.name if model_made else None, stale, texts,
        )  # fmt: skip
    except Exception:  # refused or failed (not cancelled: the write may still land)
        taken = [ids[i] for i in fresh] + [s for i in fresh if i in rows for s, _ in rows[i].thumbs]
        await asyncio.to_thread(media.delete, name, taken)
        raise
    replaced = set(range(len(req.items))) - fresh
    with_media |= await save_item_media(media, name, req.items, out, rows, replaced)
    bare = [it.id for i, it in enumerate(req.items) if i not in with_media]
    await asyncio.to_thread(media.delete, name, bare + stale)  # a replaced item's old medium
    audit(request, name, len(req.items))
    return S.UpsertResponse(upserted=len(req.items), lsn=lsn)


def transcript_rows(items: list, out: list[Embedded], rows: dict) -> tuple[list, dict]:
    """Each item's own metadata, with its transcript where it was taken with speech (a video's
    whole row in `rows` too), and per such item the rows of its speech segments."""
    meta = [it.metadata for it in items]
    talk = {}
    for i, (it, r) in enumerate(zip(items, out, strict=True)):
        if r.spoken is not None:
            talk[i] = speech_rows(it.id, it.metadata, r.spoken, i in rows)
            if i in rows:
                rows[i].metadata[0] = with_transcript(rows[i].metadata[0], r.transcript)
            meta[i] = with_transcript(it.metadata, r.transcript)
    return meta, talk


def given_vector(it: S.VectorItem, col) -> np.ndarray:
    if len(it.vector) != col.dim:
        raise InputError(
            f"item '{it.id}': vector has {len(it.vector)} dimensions, collection "
            f"'{col.name}' holds {col.dim}-dimensional vectors"
        )
    return float32_vector(it.vector, f"item '{it.id}': vector")


async def save_item_media(media: MediaStore, name: str, items: list, out: list[Embedded],
                          rows: dict, which: set[int]) -> set[int]:  # fmt: skip
    """The medium of each item in `which`: its picture (a fused item's picture, else its sound),
    its sound, a video's bytes and its segments' thumbnails; returns those that have one."""
    with_media = set()
    for i, (it, r) in enumerate(zip(items, out, strict=True)):
        if i not in which:
            continue
        if i in rows:
            await asyncio.to_thread(media.save_video, name, it.id, r.clip)
            for sid, thumb in rows[i].thumbs:
                await asyncio.to_thread(media.save_image, name, sid, thumb)
        elif r.image is not None:
            await asyncio.to_thread(media.save_image, name, it.id, r.image)
        elif r.clip is not None:
            await asyncio.to_thread(media.save_audio, name, it.id, r.clip)
        else:
            continue
        with_media.add(i)
    return with_media


@router.get(
    "/collections/{name}/items/{item_id}",
    response_model=S.ItemOut,
    responses=errors(404, 409, 422, 503),
)
async def get_item(
    request: Request, name: str = Name, item_id: str = ItemPath,
    include_vector: bool = Query(False, description="Return the stored vector too"),
    catalog=CATALOG, _=require("read"), lease: Lease = LEASE,
) -> S.ItemOut:  # fmt: skip
    col = await open_collection(catalog, name)
    lease.check(col)
    item = (await asyncio.to_thread(col.get, [item_id]))[0]
    if item is None:
        raise HTTPException(404, f"no item '{item_id}' in collection '{name}'")
    return S.ItemOut(
        id=item.id, metadata=item.metadata, media=media_urls(request, name)(item.id),
        vector=item.vector.tolist() if include_vector else None,
    )  # fmt: skip


@router.delete(
    "/collections/{name}/items/{item_id}", response_model=S.ItemsDeleted,
    responses=errors(404, 409, 422, 503, 507),
)  # fmt: skip
async def delete_item(
    request: Request, name: str = Name, item_id: str = ItemPath,
    catalog=CATALOG, media: MediaStore = MEDIA, _=require("write"), lease: Lease = LEASE,
) -> S.ItemsDeleted:  # fmt: skip
    """Delete one item; deleting a video deletes its segments too, and an item with speech its
    speech segments (`deleted` counts them)."""
    col = await open_collection(catalog, name)
    lease.check(col)
    item = (await asyncio.to_thread(col.get, [item_id]))[0]
    ids = [item_id, *stale_segments([item], {}), *stale_speech([item], {})]
    deleted = await asyncio.to_thread(col.delete, ids)
    if deleted == 0:
        raise HTTPException(404, f"no item '{item_id}' in collection '{name}'")
    await asyncio.to_thread(media.delete, name, ids)
    audit(request, name, deleted)
    return S.ItemsDeleted(deleted=deleted)
