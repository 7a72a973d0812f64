"""The FastAPI application: `create_app(settings)` wires the engine, the collections, limits,
keys, metrics and the web page into HTTP. All model and index work happens in the engine and the
library packages; handlers only translate.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import ValidationError

from encoders import InputError, JointspaceError, UnsupportedModality
from fusion import DEFAULT_TEMPLATES, class_matrix, compose, parse_modification
from fusion import scores as class_scores
from index import CollectionError, CollectionExists, CollectionNotFound
from index.catalog import NAME_RE as COLLECTION_NAME
from service import schemas as S
from service.batcher import Overloaded
from service.engine import Engine, ModelError, media_name
from service.http_util import BodyLimit, KeyCheck, Timed, decode_b64, error_response
from service.settings import Settings

log = logging.getLogger("jointspace.service")
STATIC = Path(__file__).with_name("static")
MEDIA_NAME = re.compile(r"^[0-9a-f]{20}\.png$")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "jointspace_requests_total", "HTTP requests", ["method", "route", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "jointspace_request_seconds", "HTTP request latency", ["route"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )  # fmt: skip
        self.batch_size = Histogram(
            "jointspace_batch_size", "Inputs per forward pass", ["modality"],
            registry=self.registry, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
        )  # fmt: skip
        self.batch_seconds = Histogram(
            "jointspace_batch_seconds", "Forward pass time", ["modality"], registry=self.registry
        )
        self.queue_depth = Gauge(
            "jointspace_queue_depth",
            "Jobs waiting for a batch",
            ["modality"],
            registry=self.registry,
        )

    def batch(self, modality: str, n: int, seconds: float) -> None:
        self.batch_size.labels(modality).observe(n)
        self.batch_seconds.labels(modality).observe(seconds)


F32_MAX = float(np.finfo(np.float32).max)


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    settings = settings or Settings.load()
    metrics = Metrics()
    keys = KeyCheck(settings.api_keys, settings.read_only_keys)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        eng = engine or await asyncio.to_thread(Engine, settings, None, metrics.batch)
        await eng.start()
        app.state.engine = eng
        if settings.demo:
            from service.demo import ensure_demo

            await asyncio.to_thread(ensure_demo, eng)
        try:
            yield
        finally:  # uvicorn has stopped accepting and finished in-flight requests by now
            await eng.stop()

    app = FastAPI(
        title="jointspace",
        version="0.1.0",
        description="Multimodal embeddings, cross-modal search, composed queries, zero-shot "
        'classification. Errors are JSON: {"error": {"type", "message", "code"}}.',
        lifespan=lifespan,
        responses={
            422: {"model": S.ErrorResponse, "description": "Invalid input"},
            429: {"model": S.ErrorResponse, "description": "Queue full; see Retry-After"},
        },
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
            allow_headers=["authorization", "content-type"],
        )  # fmt: skip
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)

    def record(method: str, path: str, status: int, seconds: float) -> None:
        metrics.requests.labels(method, path, str(status)).inc()
        metrics.latency.labels(path).observe(seconds)

    app.add_middleware(Timed, report=record)

    # -- errors: one JSON shape for everything ---------------------------------------------------
    @app.exception_handler(HTTPException)
    async def http_error(_: Request, e: HTTPException):
        kind = {401: "unauthorized", 403: "forbidden", 404: "not_found"}.get(e.status_code, "error")
        return error_response(e.status_code, kind, str(e.detail), e.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(x) for x in first["loc"] if x != "body")
        return error_response(
            422, "invalid_request", f"{where}: {first['msg']}" if where else first["msg"]
        )

    # Library errors -> (status, type). Starlette picks the most specific class by MRO.
    plain = {
        InputError: (422, "invalid_input"),
        UnsupportedModality: (400, "unsupported_modality"),
        CollectionNotFound: (404, "not_found"),
        CollectionExists: (409, "conflict"),
        CollectionError: (400, "invalid_request"),
        JointspaceError: (400, "invalid_request"),
    }

    def plain_handler(status: int, kind: str):
        async def handler(_: Request, e: Exception):
            return error_response(status, kind, str(e))

        return handler

    for exc, (status, kind) in plain.items():
        app.add_exception_handler(exc, plain_handler(status, kind))

    @app.exception_handler(Overloaded)
    async def overloaded(_: Request, e: Overloaded):
        retry = str(max(1, round(e.retry_after)))
        return error_response(429, "overloaded", str(e), {"Retry-After": retry})

    @app.exception_handler(TimeoutError)
    async def timeout(_: Request, e: TimeoutError):
        return error_response(503, "timeout", str(e) or "timed out", {"Retry-After": "1"})

    @app.exception_handler(ModelError)
    async def model_error(_: Request, e: ModelError):
        log.error("model call failed: %s", e)
        return error_response(500, "model_error", str(e))

    # -- dependencies (async: FastAPI runs plain functions in a worker thread) --------------------
    async def get_engine(request: Request) -> Engine:
        return request.app.state.engine

    async def reader(request: Request) -> str:
        return keys.access(request)

    async def writer(request: Request) -> str:
        if keys.access(request) != "write":
            raise HTTPException(403, "this key is read-only")
        return "write"

    async def disconnect_watch(request: Request) -> AsyncIterator[asyncio.Event]:
        """An event set when the client goes away, so queued work can be dropped."""
        # Once the body is in hand (cached on the request; FastAPI has usually read it), the next
        # message the server delivers is http.disconnect: wait for it instead of polling.
        await request.body()
        gone = asyncio.Event()

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            gone.set()

        task = asyncio.create_task(watch())
        try:
            yield gone
        finally:
            task.cancel()

    def float32_vector(values: list[float], what: str) -> np.ndarray:
        v = np.asarray(values, dtype=np.float64)
        if not np.isfinite(v).all() or (np.abs(v) > F32_MAX).any():
            raise InputError(f"{what} has values that are not finite float32 numbers")
        return v.astype(np.float32)

    def check_count(n: int, what: str) -> None:
        if n > settings.max_items:
            raise InputError(f"{n} {what} in one request, over the limit of {settings.max_items}")

    async def embed_query(eng: Engine, q: S.Query, gone, col=None) -> tuple[np.ndarray, str | None]:
        given = [k for k in ("text", "image", "vector", "id") if getattr(q, k) is not None]
        if len(given) != 1:
            raise InputError("a query needs exactly one of text, image, vector or id")
        if q.text is not None:
            return (await eng.embed_texts([q.text], cancel=gone)).vectors[0], None
        if q.image is not None:
            img = eng.decode(decode_b64(q.image, "query image"), "query image")
            return (await eng.embed_images([img], cancel=gone))[0], None
        if q.vector is not None:
            v = float32_vector(q.vector, "query vector")
            if v.shape != (eng.encoder.dim,) and col is None:
                raise InputError(f"vector has {len(v)} dimensions, the model has {eng.encoder.dim}")
            return v, None
        if col is None:
            raise InputError("an id query needs a collection")
        item = (await asyncio.to_thread(col.get, [q.id]))[0]
        if item is None:
            raise HTTPException(404, f"no item '{q.id}' in collection '{col.name}'")
        return item.vector, q.id

    def media_url(eng: Engine, collection: str, item_id: str) -> str | None:
        name = media_name(item_id)
        return (
            f"/media/{collection}/{name}" if (eng.media_dir / collection / name).is_file() else None
        )

    # -- embeddings --------------------------------------------------------------------------
    @app.post("/v1/embeddings", response_model=S.EmbeddingsResponse, tags=["embeddings"])
    async def openai_embeddings(
        req: S.EmbeddingsRequest, eng: Engine = Depends(get_engine), _=Depends(reader),
        gone=Depends(disconnect_watch),
    ):  # fmt: skip
        """OpenAI-compatible: `input` is a text or a list of texts and `{"type": "image"}` items."""
        served = {eng.encoder.name, settings.model}
        if req.model is not None and req.model not in served:
            raise HTTPException(
                404, f"model '{req.model}' is not served here (serving {settings.model})"
            )
        inputs = [req.input] if isinstance(req.input, str) else list(req.input)
        if not inputs:
            raise InputError("input is empty")
        check_count(len(inputs), "inputs")
        texts, images = [], []
        for i, x in enumerate(inputs):
            if isinstance(x, str):
                texts.append((i, x))
            elif isinstance(x, S.TextInput):
                texts.append((i, x.text))
            else:
                images.append((i, eng.decode(decode_b64(x.image, f"input {i}"), f"input {i}")))
        if req.dimensions is not None and req.dimensions > eng.encoder.dim:
            raise InputError(
                f"dimensions {req.dimensions} is more than the model's {eng.encoder.dim}"
            )
        vecs = np.zeros((len(inputs), eng.encoder.dim), np.float32)
        tokens = 0
        if texts:
            res = await eng.embed_texts([t for _, t in texts], truncate=req.truncate, cancel=gone)
            vecs[[i for i, _ in texts]] = res.vectors
            tokens = sum(res.n_tokens)
        if images:
            vecs[[i for i, _ in images]] = await eng.embed_images(
                [im for _, im in images], cancel=gone
            )
        if req.dimensions is not None:
            vecs = vecs[:, : req.dimensions]
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True).clip(1e-12)
        data = []
        for i, v in enumerate(vecs):
            emb: Any = (
                base64.b64encode(v.astype("<f4").tobytes()).decode()
                if req.encoding_format == "base64"
                else v.tolist()
            )
            data.append(S.EmbeddingData(index=i, embedding=emb))
        return S.EmbeddingsResponse(
            data=data,
            model=settings.model,
            usage=S.Usage(prompt_tokens=tokens, total_tokens=tokens),
        )

    @app.post(
        "/embed", response_model=S.EmbedResponse, tags=["embeddings"],
        openapi_extra={"requestBody": {"content": {
            "application/json": {"schema": S.EmbedRequest.model_json_schema()},
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "texts": {"type": "array", "items": {"type": "string"}},
                "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                "truncate": {"type": "boolean"}}}},
        }, "required": True}},
    )  # fmt: skip
    async def embed(request: Request, eng: Engine = Depends(get_engine), _=Depends(reader),
                    gone=Depends(disconnect_watch)):  # fmt: skip
        """Native form: JSON `{"texts": [...], "images": [base64...]}` or a multipart upload with
        `texts` fields and `files`. Texts come first in the answer, then images, in order."""
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            form = await request.form(max_files=settings.max_items, max_fields=settings.max_items)
            texts = [str(v) for v in form.getlist("texts")]
            truncate = str(form.get("truncate", "false")).lower() in ("1", "true", "yes")
            files = [f for f in form.getlist("files") if hasattr(f, "read")]
            blobs = [(f.filename or f"file {i}", await f.read()) for i, f in enumerate(files)]
        else:
            try:
                req = S.EmbedRequest.model_validate_json(await request.body())
            except ValidationError as e:
                raise RequestValidationError(e.errors()) from None
            texts, truncate = req.texts, req.truncate
            blobs = [(f"image {i}", decode_b64(b, f"image {i}")) for i, b in enumerate(req.images)]
        if not texts and not blobs:
            raise InputError("nothing to embed: give texts or images")
        check_count(len(texts) + len(blobs), "inputs")
        images = [eng.decode(data, name) for name, data in blobs]
        out: list[S.Embedding] = []
        if texts:
            res = await eng.embed_texts(texts, truncate=truncate, cancel=gone)
            rows = zip(res.vectors, res.truncated, res.n_tokens, strict=True)
            out += [S.Embedding(modality="text", vector=v.tolist(), truncated=t, n_tokens=n)
                    for v, t, n in rows]  # fmt: skip
        if images:
            vecs = await eng.embed_images(images, cancel=gone)
            out += [S.Embedding(modality="image", vector=v.tolist()) for v in vecs]
        return S.EmbedResponse(model=settings.model, dim=eng.encoder.dim, embeddings=out)

    # -- collections ------------------------------------------------------------------------------
    def info(col) -> S.CollectionInfo:
        return S.CollectionInfo(**col.info())

    async def open_col(eng: Engine, name: str):
        """The collection, opened off the event loop (a first open recovers its index)."""
        return await asyncio.to_thread(eng.catalog.get, name)

    @app.post(
        "/collections", status_code=201, response_model=S.CollectionInfo, tags=["collections"]
    )
    async def create_collection(req: S.CollectionCreate, eng: Engine = Depends(get_engine),
                                _=Depends(writer)):  # fmt: skip
        col = await asyncio.to_thread(
            eng.catalog.create, req.name, eng.encoder.dim, req.metric, eng.encoder.name, req.index
        )
        return info(col)

    @app.get("/collections", response_model=list[S.CollectionInfo], tags=["collections"])
    async def list_collections(eng: Engine = Depends(get_engine), _=Depends(reader)):
        names = await asyncio.to_thread(eng.catalog.names)
        return [info(await open_col(eng, n)) for n in names]

    @app.get("/collections/{name}", response_model=S.CollectionInfo, tags=["collections"])
    async def get_collection(name: str, eng: Engine = Depends(get_engine), _=Depends(reader)):
        return info(await open_col(eng, name))

    @app.delete("/collections/{name}", tags=["collections"])
    async def drop_collection(name: str, eng: Engine = Depends(get_engine), _=Depends(writer)):
        await asyncio.to_thread(eng.catalog.drop, name)
        await asyncio.to_thread(eng.drop_media, name)
        return {"deleted": name}

    @app.put("/collections/{name}/items", response_model=S.UpsertResponse, tags=["collections"])
    async def upsert_items(name: str, req: S.UpsertRequest, eng: Engine = Depends(get_engine),
                           _=Depends(writer), gone=Depends(disconnect_watch)):  # fmt: skip
        """Insert or replace items by id; each gives exactly one of text, image or vector."""
        col = await open_col(eng, name)
        check_count(len(req.items), "items")
        vecs = np.zeros((len(req.items), col.dim), np.float32)
        texts, images, model_made = [], [], True
        for i, it in enumerate(req.items):
            given = [k for k in ("text", "image", "vector") if getattr(it, k) is not None]
            if len(given) != 1:
                raise InputError(f"item '{it.id}' needs exactly one of text, image or vector")
            if it.text is not None:
                texts.append((i, it.text))
            elif it.image is not None:
                what = f"item '{it.id}'"
                images.append((i, eng.decode(decode_b64(it.image, what), what)))
            else:
                if len(it.vector) != col.dim:
                    raise CollectionError(
                        f"item '{it.id}': vector has {len(it.vector)} dimensions, collection "
                        f"'{name}' holds {col.dim}-dimensional vectors"
                    )
                vecs[i] = float32_vector(it.vector, f"item '{it.id}': vector")
                model_made = False
        if texts:
            res = await eng.embed_texts([t for _, t in texts], truncate=req.truncate, cancel=gone)
            vecs[[i for i, _ in texts]] = res.vectors
        if images:
            vecs[[i for i, _ in images]] = await eng.embed_images(
                [im for _, im in images], cancel=gone
            )
        lsn = await asyncio.to_thread(
            col.upsert, [it.id for it in req.items], vecs, [it.metadata for it in req.items],
            eng.encoder.name if model_made else None,
        )  # fmt: skip
        for i, im in images:
            await asyncio.to_thread(eng.save_media, name, req.items[i].id, im)
        return S.UpsertResponse(upserted=len(req.items), lsn=lsn)

    @app.get("/collections/{name}/items/{item_id}", response_model=S.ItemOut, tags=["collections"])
    async def get_item(name: str, item_id: str, include_vector: bool = False,
                       eng: Engine = Depends(get_engine), _=Depends(reader)):  # fmt: skip
        col = await open_col(eng, name)
        item = (await asyncio.to_thread(col.get, [item_id]))[0]
        if item is None:
            raise HTTPException(404, f"no item '{item_id}' in collection '{name}'")
        return S.ItemOut(
            id=item.id, metadata=item.metadata, media=media_url(eng, name, item.id),
            vector=item.vector.tolist() if include_vector else None,
        )  # fmt: skip

    @app.delete("/collections/{name}/items/{item_id}", tags=["collections"])
    async def delete_item(name: str, item_id: str, eng: Engine = Depends(get_engine),
                          _=Depends(writer)):  # fmt: skip
        col = await open_col(eng, name)
        if await asyncio.to_thread(col.delete, [item_id]) == 0:
            raise HTTPException(404, f"no item '{item_id}' in collection '{name}'")
        return {"deleted": 1}

    @app.post("/collections/{name}/search", response_model=S.SearchResponse, tags=["search"])
    async def search(name: str, req: S.SearchRequest, eng: Engine = Depends(get_engine),
                     _=Depends(reader), gone=Depends(disconnect_watch)):  # fmt: skip
        """Query by text, image, vector or an item's id; optionally moved by weighted text terms
        or a modification phrase ("in blue instead of red"). An id query leaves that item out."""
        col = await open_col(eng, name)
        q, exclude = await embed_query(eng, req.query, gone, col)
        terms = list(req.terms)
        if req.modification:
            terms += [
                S.TermIn(text=t.text, weight=t.weight) for t in parse_modification(req.modification)
            ]
        if terms:
            tv = (await eng.embed_texts([t.text for t in terms], cancel=gone)).vectors
            try:
                q = compose(q, tv, [t.weight for t in terms])
            except ValueError as e:
                raise InputError(str(e)) from None
        k = req.k + (1 if exclude else 0)
        hits = (
            await asyncio.to_thread(col.search, q, k, req.filter, exact_rerank=req.exact_rerank)
        )[0]
        out = [S.Hit(id=h.id, score=h.score, metadata=h.metadata, media=media_url(eng, name, h.id))
               for h in hits if h.id != exclude][: req.k]  # fmt: skip
        return S.SearchResponse(hits=out, terms=terms)

    # -- classification ---------------------------------------------------------------------------
    @app.post("/classify", response_model=S.ClassifyResponse, tags=["classification"])
    async def classify(req: S.ClassifyRequest, eng: Engine = Depends(get_engine), _=Depends(reader),
                       gone=Depends(disconnect_watch)):  # fmt: skip
        """Zero-shot: softmax over the labels for CLIP-style models, independent sigmoids for
        SigLIP-style ones, with the model's own temperature."""
        if req.input.id is not None:
            raise InputError("classify takes text, image or vector input, not an id")
        templates = req.templates or DEFAULT_TEMPLATES
        if any(t.count("{}") != 1 for t in templates):
            raise InputError("each template needs exactly one {} where the label goes")
        check_count(len(req.labels) * len(templates), "prompts (labels x templates)")
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

    # -- operations -------------------------------------------------------------------------------
    @app.get("/health", tags=["operations"])
    async def health(eng: Engine = Depends(get_engine)):
        """A real forward pass and an index probe; 503 when either fails."""
        try:
            v = (await eng.embed_texts(["health check"])).vectors[0]
            if not np.isfinite(v).all():
                raise RuntimeError("model returned non-finite values")
            names = await asyncio.to_thread(eng.catalog.names)
            for n in names[:1]:
                col = await open_col(eng, n)
                if col.count:
                    await asyncio.to_thread(col.search, np.ones(col.dim, np.float32), 1)
        except Exception as e:
            return error_response(503, "unhealthy", f"{type(e).__name__}: {e}")
        return {"status": "ok", "model": settings.model, "collections": len(names)}

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def prometheus(eng: Engine = Depends(get_engine)):
        for modality, b in eng.batchers.items():
            metrics.queue_depth.labels(modality).set(b.depth)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/models", tags=["operations"])
    async def models(eng: Engine = Depends(get_engine), _=Depends(reader)):
        i = eng.encoder.info()
        m = S.ModelInfo(
            id=settings.model, dim=i["dim"], modalities=i["modalities"],
            context_length=i["context_length"], loss=i["loss"], device=i["device"],
        )  # fmt: skip
        return {"object": "list", "data": [m]}

    @app.get("/v1/models", include_in_schema=False)
    async def openai_models(eng: Engine = Depends(get_engine), _=Depends(reader)):
        return await models(eng, _)

    # -- the web page ------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse((STATIC / "index.html").read_text())

    @app.get("/media/{collection}/{file}", include_in_schema=False)
    async def media(collection: str, file: str, eng: Engine = Depends(get_engine)):
        if not MEDIA_NAME.match(file) or not COLLECTION_NAME.match(collection):
            raise HTTPException(404, "no such media")
        path = eng.media_dir / collection / file
        if not path.is_file():
            raise HTTPException(404, "no such media")
        return FileResponse(path, media_type="image/png")

    return app
