"""Dependencies shared by the route modules: the runtime's parts a route needs (settings,
catalog, media store; per request, the parts of the model it names or its collection holds,
through a `Lease`), authorization by role, collection and model, the client-disconnect watch,
and the helpers every route uses the same way (per-request item limits, a query through the
pipeline, media URLs). Plain functions; the routers import them, nothing here imports a router.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Depends, Request

from encoders import Encoder, InputError
from index import Collection
from runtime import inputs as I
from runtime.captions import Captions
from runtime.container import Runtime
from runtime.generator import Generator
from runtime.media import MediaStore
from runtime.models import ModelParts, Slot
from runtime.pipeline import Embedded, Pipeline
from runtime.registries import Models
from runtime.settings import Settings
from runtime.waiting import Cancel
from service.access import OPEN, Denied, Key, check_model_scope
from service.inputs import to_input


# The providers are coroutines: FastAPI runs a plain function dependency in its thread pool,
# a hop per dependency per request; a coroutine runs on the loop.
async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def get_settings(request: Request) -> Settings:
    return request.app.state.runtime.settings


# The default model's parts, for routes that serve one model; a route that takes `model`, or
# works on a collection, takes a Lease instead.
async def get_encoder(request: Request) -> Encoder:
    return request.app.state.runtime.encoder


async def get_catalog(request: Request) -> Any:
    return request.app.state.runtime.catalog


async def get_pipeline(request: Request) -> Pipeline:
    return request.app.state.runtime.pipeline


async def get_media(request: Request) -> MediaStore:
    return request.app.state.runtime.media


async def get_models(request: Request) -> Models:
    """The trained classifiers and fusion heads on disk, whichever model's (loaded or not)."""
    return request.app.state.runtime.served.registry


async def get_captions(request: Request) -> Captions:
    return request.app.state.runtime.captions


async def get_generator(request: Request) -> Generator | None:
    return request.app.state.runtime.generator


class Lease:
    """The models one request uses: each resolved by name (or by the collection that holds it),
    checked against the request's key, loaded when it is not, and held until the request ends,
    so that it is not unloaded under the request."""

    def __init__(self, request: Request) -> None:
        self.request, self.runtime = request, request.app.state.runtime
        self.held: list[Slot] = []

    async def take(self, name: str | None) -> ModelParts:
        """The parts of model `name` (the default for None); 404 for a model not served."""
        return await self._hold(self.runtime.served.resolve(name))

    async def for_collection(self, col: Collection, asked: str | None = None) -> ModelParts:
        """The parts of the model `col` holds: 409 when it is not served, 422 when the request
        names another model."""
        return await self._hold(self.check(col, asked))

    def check(self, col: Collection, asked: str | None = None) -> Slot:
        """The model `col` holds, refused as `for_collection` refuses it, without loading it
        (for the reads and writes that embed nothing)."""
        served = self.runtime.served
        slot = served.for_collection(col.name, getattr(col, "model", None), asked)
        self._scope(slot)
        return slot

    def _scope(self, slot: Slot) -> None:
        key: Key = getattr(self.request.state, "key", None) or OPEN
        check_model_scope(key, slot.id)

    async def _hold(self, slot: Slot) -> ModelParts:
        self._scope(slot)
        parts = await self.runtime.served.acquire(slot)
        self.held.append(slot)
        return parts

    async def release(self) -> None:
        held, self.held = self.held, []
        for slot in held:
            await self.runtime.served.release(slot)


async def lease_models(request: Request) -> AsyncIterator[Lease]:
    lease = Lease(request)
    try:
        yield lease
    finally:
        await lease.release()


LEASE = Depends(lease_models)


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


def check_count(settings: Settings, n: int, what: str) -> None:
    if n > settings.max_items:
        raise InputError(f"{n} {what} in one request, over the limit of {settings.max_items}")


async def open_collection(catalog: Any, name: str) -> Collection:
    """The collection, opened off the event loop (a first open recovers its index)."""
    return await asyncio.to_thread(catalog.get, name)


async def embed_query(pipe: Pipeline, q: Any, gone: asyncio.Event, col: Collection | None = None,
                      what: str = "query") -> Embedded:  # fmt: skip
    """One query's result through the pipeline (`ref` is the id to leave out of results for an
    id query); a given vector must have the collection's (or the model's) length."""
    x = to_input(q, what, by_kind=True)
    res = (await pipe.embed([x], cancel=gone, collection=col))[0]
    if isinstance(x, I.Vector):
        want = col.dim if col is not None else pipe.encoder.dim
        if res.vector.shape != (want,):
            where = f"collection '{col.name}' holds" if col is not None else "the model makes"
            raise InputError(f"{what} vector has {len(res.vector)} dimensions, {where} {want}")
    return res


def media_urls(request: Request, collection: str) -> Callable[[str], str | None]:
    """item id -> the URL of its medium, a thumbnail or a clip (signed when keys are configured),
    or None."""
    media: MediaStore = request.app.state.runtime.media
    signer = request.app.state.signer if request.app.state.keyring.enabled else None

    def url(item_id: str) -> str | None:
        name = media.find(collection, item_id)
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
