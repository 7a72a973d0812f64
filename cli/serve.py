"""`jointspace serve`: run the HTTP service."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from cli.common import err, fail


class GracefulServer(uvicorn.Server):
    """uvicorn re-raises SIGTERM once it has shut down gracefully, so the process would die of the
    signal (exit -15); a finished graceful shutdown on SIGTERM exits 0 here instead."""

    def handle_exit(self, sig, frame) -> None:
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM:
            self._captured_signals.remove(sig)


def serve(
    model: Annotated[
        list[str] | None,
        typer.Option(
            help="Model spec (default: house); give it again to serve several (the first is "
            "the default)."
        ),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Default 127.0.0.1.")] = None,
    port: Annotated[int | None, typer.Option(help="Default 8000.")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Collections and media (default ./data).")
    ] = None,
    demo: Annotated[
        bool | None, typer.Option(help="Build the demo collection on first start.")
    ] = None,
    device: Annotated[str | None, typer.Option()] = None,
    index_device: Annotated[
        str | None, typer.Option(help="auto, cpu or gpu: where unfiltered searches run.")
    ] = None,
    index_backend: Annotated[
        str | None,
        typer.Option(help="faiss (default), milvus:PATH.db or milvus:http://HOST:19530."),
    ] = None,
) -> None:
    """Run the HTTP service. Every option can also come from JOINTSPACE_* environment variables."""
    from encoders.errors import ModelSpecError
    from encoders.spec import parse_spec
    from index import DataDirBusy, IndexUnavailable
    from index.backend import open_catalog
    from index.catalog import lock_data_dir
    from runtime.settings import Settings, SettingsError
    from runtime.speech import check_asr
    from service.app import create_app

    try:
        settings = Settings.load(
            model=model[0] if model else None, models=model or None, host=host, port=port,
            data_dir=data_dir, demo=demo, device=device, index_device=index_device,
            index_backend=index_backend,
        )  # fmt: skip
        for spec in settings.served:  # a bad spec is one line here, not a start-up traceback
            parse_spec(spec)
        application = create_app(settings)
        check_asr(settings)  # a recogniser that cannot be had: one line, not a traceback
        # Refused here in one line rather than in the app's start-up with a traceback; the lock
        # belongs to the process, so the engine's own catalog takes it again.
        collections = Path(settings.data_dir) / "collections"
        collections.mkdir(parents=True, exist_ok=True)
        if settings.index_backend == "faiss":
            lock_data_dir(collections)
        else:  # reachable, and (milvus-lite) not held by another process; the engine reopens it
            open_catalog(
                settings.index_backend, collections, token=settings.milvus_token or ""
            ).close()
    except (SettingsError, ModelSpecError, DataDirBusy, IndexUnavailable) as e:
        fail(e)
    shown = "localhost" if settings.host in ("127.0.0.1", "::1") else settings.host
    models = ", ".join(settings.served)
    err.print(f"jointspace: serving {models} at http://{shown}:{settings.port}/ "
              "(the page), /docs (the API)", markup=False, highlight=False)  # fmt: skip
    config = uvicorn.Config(
        application, host=settings.host, port=settings.port, log_level="info",
        timeout_graceful_shutdown=30,
    )  # fmt: skip
    GracefulServer(config).run()
