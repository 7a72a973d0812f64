"""The app factory: `create_app(settings)` wires the settings, the runtime's parts (runtime/), the
keys, metrics, the error handlers, the middleware (timing, the door, the body cap) and the routers
(service/routes/). No route lives here; all model and index work happens in the runtime and the
library packages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from runtime.container import Runtime
from runtime.settings import Settings, SettingsError
from service import errors
from service.access import Keyring, KeysFileError, MediaSigner
from service.admission import Door
from service.audit import AuditLog
from service.contract import build_openapi, operation_id
from service.http_util import BodyLimit, Timed
from service.metrics import Metrics
from service.routes import ROUTERS

log = logging.getLogger("jointspace.service")
DESCRIPTION = (
    "Multimodal embeddings, cross-modal search, composed queries, zero-shot classification. "
    'Every error is JSON: {"error": {"type", "message", "code"}}.'
)


def load_keyring(settings: Settings) -> Keyring:
    """The keys of the settings and the keys file; a bad file stops start-up (SettingsError)."""
    try:
        return Keyring.from_lists(settings.api_keys, settings.read_only_keys, settings.keys_file)
    except KeysFileError as e:
        raise SettingsError(str(e)) from None


def _reload_keys(keyring: Keyring) -> None:
    try:
        keyring.reload()
        log.warning("keys file %s reloaded: %d keys", keyring.file, len(keyring.keys))
    except KeysFileError as e:
        log.error("keys file not reloaded, the old keys stay in force: %s", e)


@contextlib.contextmanager
def _reload_on_sighup(keyring: Keyring):
    """SIGHUP re-reads the keys file (rotation without a restart), where signals can be had."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, _reload_keys, keyring)
        installed = True
    except (RuntimeError, ValueError, NotImplementedError):  # not the main thread (tests)
        installed = False
    try:
        yield
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGHUP)


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    settings = settings or Settings.load()
    metrics = Metrics()
    keyring = load_keyring(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or await asyncio.to_thread(Runtime, settings)
        rt.observe(metrics.batch, metrics.shed_jobs, metrics.wait, metrics.video,
                   metrics.generated.inc)  # fmt: skip
        rt.speech.on_seconds = metrics.speech_seconds.inc
        await rt.start()
        app.state.runtime = rt
        if settings.demo:  # built by the default model (which it loads, when models are lazy)
            from service.demo import ensure_demo

            default = rt.served.default
            await rt.served.acquire(default)
            try:
                await asyncio.to_thread(ensure_demo, rt)
            finally:
                await rt.served.release(default)
        with _reload_on_sighup(keyring):
            try:
                yield
            finally:  # uvicorn has stopped accepting and finished in-flight requests by now
                await rt.stop()

    app = FastAPI(
        title="jointspace", version="0.2.0", description=DESCRIPTION, lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )  # fmt: skip
    app.state.settings, app.state.metrics, app.state.keyring = settings, metrics, keyring
    app.state.signer = MediaSigner(settings.media_secret, settings.media_url_ttl)
    app.state.audit = AuditLog(Path(settings.data_dir) / "audit.jsonl")
    errors.install(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
            allow_headers=["authorization", "content-type"],
        )  # fmt: skip
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(
        Door, limit=settings.max_concurrent_requests, wait_s=settings.max_queue_wait_ms / 2000,
        on_refuse=metrics.door_refused.inc, on_change=metrics.in_progress.set,
    )  # fmt: skip
    app.add_middleware(Timed, report=metrics.record)
    for router in ROUTERS:
        app.include_router(router)
    app.openapi = lambda: build_openapi(app)
    return app
