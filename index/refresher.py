"""Keeping a collection's GPU replica current in the background after writes.

Owns one refresher thread per collection: a write asks for a refresh (`kick`); the thread copies
the index to the replica under the collection's read lock, and runs again while writes keep
arriving, so a burst of writes costs one copy at a time and searches never wait for it. The
replica itself (when a copy is current, which indexes it takes) is index/gpu.py's GpuReplica.
Knows nothing of torch, the encoders or HTTP.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from index.ann import AnnIndex
from index.gpu import GpuReplica
from index.rwlock import RWLock

log = logging.getLogger("jointspace.index")


class GpuRefresher:
    """Refreshes `replica` (None: no GPU, every call is a no-op) from `source()`, which returns
    the collection's (index, applied lsn) and is read under `lock`'s read side."""

    def __init__(self, replica: GpuReplica | None, source: Callable[[], tuple[AnnIndex, int]],
                 lock: RWLock, name: str) -> None:  # fmt: skip
        self.replica, self._source, self._lock, self._name = replica, source, lock, name
        self._flag = threading.Lock()
        self._wanted = self._running = self._closed = False
        self._thread: threading.Thread | None = None

    def kick(self) -> None:
        """Ask for the replica to catch up with the index; one refresher thread at a time, which
        runs again while writes keep arriving."""
        if self.replica is None:
            return
        with self._flag:
            self._wanted = True
            if self._running:
                return
            self._running = True
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._flag:
                if not self._wanted or self._closed:
                    self._running = False
                    return
                self._wanted = False
            try:
                with self._lock.read():
                    self.replica.refresh(*self._source())
            except Exception:
                log.exception("refreshing the GPU replica of '%s' failed", self._name)

    def wait(self) -> None:
        """Until no refresh is running."""
        while True:
            with self._flag:
                thread = self._thread if self._running else None
            if thread is None:
                return
            thread.join()

    def close(self) -> None:
        """No refresh from now on; the replica's device memory is released."""
        with self._flag:
            self._closed = True
        if self.replica is not None:
            self.replica.drop()
