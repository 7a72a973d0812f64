"""Many collections in one data directory: create, open, list, drop.

Each collection is a subdirectory holding its SQLite store and its snapshots. Creation is atomic
(built under a temporary name, then renamed). One process at a time owns a data directory: a
Catalog holds a POSIX lock on `<root>/.lock` (released by the kernel when the process dies), so a
second service or a `job ingest` on the same directory is refused instead of writing behind the
first one's back. Knows nothing of torch or HTTP.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from index.checks import new_config
from index.collection import Collection
from index.errors import (
    CollectionError,
    CollectionExists,
    CollectionNotFound,
    DataDirBusy,
    StorageFailed,
)
from index.gpu import resolve_device
from index.space import SpaceGuard, full_error, is_disk_full, is_io_error
from index.store import ItemStore

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Catalog:
    backend = "faiss"  # for /health; a MilvusCatalog names its server or file

    def __init__(
        self, root: str | os.PathLike, min_free: str | int = 0, **collection_options
    ) -> None:
        """`collection_options` go to every Collection opened (e.g. search_device='gpu', which
        is checked here, so that a missing GPU is reported before any collection opens).
        `min_free` is the free-space floor ("256MiB", "5%") below which creates and upserts are
        refused with StorageFull."""
        if collection_options.get("gpu_clone") is None:
            resolve_device(collection_options.get("search_device", "auto"))
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_fd = lock_data_dir(self.root)
        self.space = SpaceGuard(self.root, min_free)
        collection_options["space"] = self.space
        self._options = collection_options
        self._open: dict[str, Collection] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _check_name(name: str) -> str:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise CollectionError(
                f"bad collection name {name!r}: use 1-64 letters, digits, '_', '-' or '.', "
                "starting with a letter or digit"
            )
        return name

    def names(self) -> list[str]:
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and (p / "items.sqlite").is_file()
        )

    def create(
        self,
        name: str,
        dim: int,
        metric: str = "cosine",
        model: str | None = None,
        index: str = "auto",
        exist_ok: bool = False,
        text_fields: Sequence[str] = (),
        quantization: str = "none",
        model_digest: str | None = None,
    ) -> Collection:
        """A new collection; with exist_ok, the existing one if its settings match.
        `text_fields`: metadata keys whose values the keyword index holds beside each item's
        text; `quantization`: none, int8 or binary codes in the index; `model_digest`: the
        towers stamp of the model whose vectors it holds (index.checks.check_towers)."""
        self._check_name(name)
        config = new_config(name, dim, metric, model, index, text_fields, quantization,
                            model_digest)  # fmt: skip
        with self._lock:
            if (self.root / name / "items.sqlite").is_file():
                col = self._get_locked(name)
                same = (col.dim, col.metric, col.model, col.factory, col.text_fields,
                        col.quantization) == (dim, metric, model, index, config["text_fields"],
                                              quantization)  # fmt: skip
                if exist_ok and same:
                    return col
                raise CollectionExists(f"collection '{name}' already exists")
            self.space.check(f"creating collection '{name}'")
            tmp = self.root / f".creating-{name}-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                tmp.mkdir()
                ItemStore(tmp / "items.sqlite", config).close()
                os.rename(tmp, self.root / name)
            except (OSError, sqlite3.Error) as e:
                shutil.rmtree(tmp, ignore_errors=True)
                if is_disk_full(e):
                    raise full_error(self.root, f"creating collection '{name}'") from e
                if is_io_error(e):
                    raise StorageFailed(
                        f"creating collection '{name}' failed: an I/O error in {self.root} "
                        f"({type(e).__name__}: {e}); nothing was created"
                    ) from e
                raise
            return self._get_locked(name)

    def get(self, name: str) -> Collection:
        self._check_name(name)
        with self._lock:
            return self._get_locked(name)

    def _get_locked(self, name: str) -> Collection:
        col = self._open.get(name)
        if col is None:
            path = self.root / name
            if not (path / "items.sqlite").is_file():
                raise CollectionNotFound(f"no collection named '{name}'")
            col = self._open[name] = Collection(path, **self._options)
        return col

    def drop(self, name: str) -> None:
        self._check_name(name)
        with self._lock:
            path = self.root / name
            if not (path / "items.sqlite").is_file():
                raise CollectionNotFound(f"no collection named '{name}'")
            col = self._open.pop(name, None)
            if col is not None:
                col.wait()
                col.store.close()
                col._closed = True
            trash = self.root / f".dropping-{name}-{os.getpid()}"
            os.rename(path, trash)
            shutil.rmtree(trash)

    def failures(self) -> dict[str, str]:
        """Open collections that turned read-only after an I/O error, and why."""
        with self._lock:
            return {n: c.store.failed for n, c in self._open.items() if c.store.failed}

    def close(self) -> None:
        with self._lock:
            for col in self._open.values():
                col.close()
            self._open.clear()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None


def lock_data_dir(root: Path) -> int:
    """An exclusive lock on `root` for this process, or DataDirBusy naming the holder. POSIX
    record locks belong to the process, so one process may open several Catalogs on one root."""
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DataDirBusy(
            f"{root} is in use by another process (pid {holder}): one process at a time owns a "
            "data directory's collections; stop it, or send the items through its API"
        ) from None
    try:  # the holder's pid, for the message above; a full disk must not stop an open
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass
    return fd
