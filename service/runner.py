"""Run the service on loopback in a background thread: for benchmarks and load tests that need a
real socket, and for embedding the service in another program."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from runtime.settings import Settings
from service.app import create_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(
    settings: Settings, runtime=None, startup_timeout: float = 120.0, **uvicorn_options
) -> Iterator[str]:
    """Serve `settings` on 127.0.0.1 at a free port; yields the base URL; shuts down cleanly.
    `uvicorn_options` go to uvicorn.Config (e.g. loop="asyncio", http="h11")."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, runtime), host="127.0.0.1", port=port, log_level="warning",
        timeout_graceful_shutdown=10, **uvicorn_options,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.time() > deadline:
            raise RuntimeError("the service did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
