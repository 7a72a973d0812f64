"""Dependencies shared by the route modules: the engine and settings, authorization by role and
collection, the client-disconnect watch, and the input helpers every route uses the same way
(base64 media, float32 vectors, per-request item limits, a query turned into a vector, media
URLs). Plain functions; the routers import them, nothing here imports a router.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import Depends, HTTPException, Request
from PIL import Image

from encoders import InputError
from fusion import fuse
from fusion.head import HeadError
from index import Collection
from runtime.engine import Cancel, Cut, Engine
from runtime.settings import Settings
from service import schemas as S
from service.access import OPEN, Denied, Key
from service.http_util import decode_b64

F32_MAX = float(np.finfo(np.float32).max)


async def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def require(role: str) -> Any:
    """A dependency that authenticates the bearer key and checks its role, its collection (the
    `name` path parameter, where the route has one) and its rate. Returns the key."""

    async def check(request: Request) -> Key:
        keyring = request.app.state.keyring
        metrics = request.app.state.metrics
        try:
            key = keyring.authenticate(request.headers.get("authorization"))
            keyring.authorize(key, role, request.path_params.get("name"))
        except Denied as e:
            count_refusal(request, e)
            raise
        metrics.by_key.labels(key.name).inc()
        request.state.key = key
        return key

    check.__name__ = f"require_{role}"
    check.role = role  # read by service/contract.py to declare 401/403 when keys are set
    return Depends(check)


def count_refusal(request: Request, e: Denied) -> None:
    """Count a 401/403/429 under the route's template (never the path: no names in labels)."""
    route = getattr(request.scope.get("route"), "path", "unmatched")
    request.app.state.metrics.refused.labels(route, str(e.status)).inc()


async def disconnect_watch(request: Request) -> AsyncIterator[Cancel]:
    """An event set when the client goes away, so queued work can be dropped; it carries the
    request's arrival time, where its queue-wait budget starts."""
    # Once the body is in hand (cached on the request; FastAPI has usually read it), the next
    # message the server delivers is http.disconnect: wait for it instead of polling.
    await request.body()
    gone = Cancel(getattr(request.state, "arrived", None))

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone.set()

    task = asyncio.create_task(watch())
    try:
        yield gone
    finally:
        task.cancel()


def cut_of(segs: S.VideoSegments | None) -> Cut:
    """A request's video segment options as the engine takes them (None: the defaults)."""
    if segs is None:
        return Cut()
    return Cut(interval=segs.interval, shots=segs.shots, start=segs.start, end=segs.end,
               pooling=segs.pooling)  # fmt: skip


def float32_vector(values: list[float], what: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if not np.isfinite(v).all() or (np.abs(v) > F32_MAX).any():
        raise InputError(f"{what} has values that are not finite float32 numbers")
    return v.astype(np.float32)


def check_count(settings: Settings, n: int, what: str) -> None:
    if n > settings.max_items:
        raise InputError(f"{n} {what} in one request, over the limit of {settings.max_items}")


async def open_collection(eng: Engine, name: str) -> Collection:
    """The collection, opened off the event loop (a first open recovers its index)."""
    return await asyncio.to_thread(eng.catalog.get, name)


@dataclass
class Fused:
    """A fused input: each part's vector, the fused vector, and what the parts cost."""

    parts: dict[str, np.ndarray]
    vector: np.ndarray
    n_tokens: int = 0
    image: Image.Image | None = None  # kept as the item's thumbnail
    clip: Any = None  # kept as the item's playable media when there is no image


async def embed_parts(eng: Engine, q: S._Parts, gone: asyncio.Event, what: str,
                      truncate: bool = False) -> Fused:  # fmt: skip
    """Each part through its tower (and its batcher), then fusion.fuse with the weights, or the
    named fusion head (looked up and checked first: a refused head costs no embedding)."""
    head = await asyncio.to_thread(eng.fusion_head, q.head) if q.head else None
    vecs, out = {}, Fused({}, np.zeros(0, np.float32))
    if head is not None:
        try:
            head.check_parts(q.parts())
        except HeadError as e:
            raise InputError(f"{what}: {e}") from None
    if q.text is not None:
        res = await eng.embed_texts([q.text], truncate=truncate, cancel=gone)
        vecs["text"], out.n_tokens = res.vectors[0], sum(res.n_tokens)
    if q.image is not None:
        out.image = eng.decode(decode_b64(q.image, f"{what} image"), f"{what} image")
        vecs["image"] = (await eng.embed_images([out.image], cancel=gone))[0]
    if q.audio is not None:
        out.clip = await eng.decode_audio(decode_b64(q.audio, f"{what} audio"), f"{what} audio")
        vecs["audio"] = (await eng.embed_audio([out.clip], cancel=gone)).vectors[0]
    try:
        out.parts, out.vector = vecs, head.fuse(vecs) if head else fuse(vecs, q.weights)
    except (ValueError, HeadError) as e:
        raise InputError(f"{what}: {e}") from None
    return out


async def embed_items(eng: Engine, inputs: list, gone: asyncio.Event,
                      truncate: bool = False) -> tuple[np.ndarray, int]:  # fmt: skip
    """The vectors (n, dim) of /v1/embeddings-style inputs (texts, image, audio, video and multi
    items; media batched per modality, each error naming its input) and the text tokens they
    cost. A video's vector is its whole-video vector."""
    texts, images, clips, videos, fused = [], [], [], [], {}
    for i, x in enumerate(inputs):
        what = f"input {i}"
        if isinstance(x, S.MultiInput):
            fused[i] = await embed_parts(eng, x, gone, what, truncate=truncate)
        elif isinstance(x, str):
            texts.append((i, x))
        elif isinstance(x, S.TextInput):
            texts.append((i, x.text))
        elif isinstance(x, S.AudioInput):
            clips.append((i, await eng.decode_audio(decode_b64(x.audio, what), what)))
        elif isinstance(x, S.VideoInput):
            videos.append((i, await eng.decode_video(decode_b64(x.video, what), what)))
        else:
            images.append((i, eng.decode(decode_b64(x.image, what), what)))
    vecs = np.zeros((len(inputs), eng.encoder.dim), np.float32)
    tokens = sum(f.n_tokens for f in fused.values())
    for i, f in fused.items():
        vecs[i] = f.vector
    if texts:
        res = await eng.embed_texts([t for _, t in texts], truncate=truncate, cancel=gone)
        vecs[[i for i, _ in texts]] = res.vectors
        tokens += sum(res.n_tokens)
    if images:
        vecs[[i for i, _ in images]] = await eng.embed_images([m for _, m in images], cancel=gone)
    if clips:
        res = await eng.embed_audio([c for _, c in clips], cancel=gone)
        vecs[[i for i, _ in clips]] = res.vectors
    if videos:
        res = await eng.embed_videos([v for _, v in videos], cancel=gone)
        vecs[[i for i, _ in videos]] = np.stack([r.vector for r in res])
    return vecs, tokens


async def embed_query(
    eng: Engine,
    q: S.TextQuery | S.ImageQuery | S.AudioQuery | S.VectorQuery | S.IdQuery | S.MultiQuery,
    gone: asyncio.Event,
    col: Collection | None = None,
) -> tuple[np.ndarray, str | None]:  # fmt: skip
    """The query's vector, and the id to leave out of results for an id query."""
    if isinstance(q, S.MultiQuery):
        return (await embed_parts(eng, q, gone, "query")).vector, None
    if isinstance(q, S.TextQuery):
        return (await eng.embed_texts([q.text], cancel=gone)).vectors[0], None
    if isinstance(q, S.ImageQuery):
        img = eng.decode(decode_b64(q.image, "query image"), "query image")
        return (await eng.embed_images([img], cancel=gone))[0], None
    if isinstance(q, S.AudioQuery):
        clip = await eng.decode_audio(decode_b64(q.audio, "query audio"), "query audio")
        return (await eng.embed_audio([clip], cancel=gone)).vectors[0], None
    if isinstance(q, S.VectorQuery):
        v = float32_vector(q.vector, "query vector")
        want = col.dim if col is not None else eng.encoder.dim
        if v.shape != (want,):
            where = f"collection '{col.name}' holds" if col is not None else "the model makes"
            raise InputError(f"query vector has {len(v)} dimensions, {where} {want}")
        return v, None
    assert col is not None  # an IdQuery is only accepted by a collection's search
    item = (await asyncio.to_thread(col.get, [q.id]))[0]
    if item is None:
        raise HTTPException(404, f"no item '{q.id}' in collection '{col.name}'")
    return item.vector, q.id


def media_urls(request: Request, collection: str) -> Callable[[str], str | None]:
    """item id -> the URL of its medium, a thumbnail or a clip (signed when keys are configured),
    or None."""
    eng: Engine = request.app.state.engine
    signer = request.app.state.signer if request.app.state.keyring.enabled else None

    def url(item_id: str) -> str | None:
        name = eng.find_media(collection, item_id)
        if name is None:
            return None
        path = f"/media/{collection}/{name}"
        return signer.sign(path) if signer is not None else path

    return url


def audit(request: Request, collection: str | None, items: int) -> None:
    """Append this write to the audit log, under the name of the key that made it."""
    key: Key = getattr(request.state, "key", None) or OPEN
    route = f"{request.method} {getattr(request.scope.get('route'), 'path', request.url.path)}"
    request.app.state.audit.write(key.name, route, collection, items)
