"""Upkeep of a FAISS collection's derived index: snapshots (and the store's tombstones they make
unneeded), rebuilds (dropping tombstones, training IVF when due) swapped in without blocking
searches or writes until the swap, and the background thread that runs them after writes.

A mixin for index.collection.Collection, which provides `store`, `_ann`, `_applied`, `_count`,
`_dirty`, `_built_at`, the `_lock` and `_maint` locks, `_build`, `_target_factory` and the GPU
`_refresher`. Must not import index.collection (which builds on it), torch or anything of HTTP.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from index.ann import train_size, validate_factory
from index.snapshot import list_snapshots, write_snapshot

log = logging.getLogger("jointspace.index")


class Maintenance:
    def snapshot(self) -> Path | None:
        """Write a snapshot of the index now (None when nothing changed since the last one)."""
        with self._maint:
            with self._lock.read():
                if not self._dirty and list_snapshots(self.snapshot_dir):
                    return None
                index = self._ann.clone()
                dead = np.fromiter(self._ann.dead, dtype=np.int64, count=len(self._ann.dead))
                info = {
                    "name": self.name,
                    "lsn": self._applied,
                    "count": self._count,
                    "ntotal": int(index.ntotal),
                    "dim": self.dim,
                    "metric": self.metric,
                    "model": self.model,
                    "factory": self._ann.factory,
                    "built_at": self._built_at,
                }
                dirty = self._dirty
            path = write_snapshot(self.snapshot_dir, index, dead, info, keep=self.keep_snapshots)
            with self._lock.write():
                self._dirty -= dirty
            kept = list_snapshots(self.snapshot_dir)
            if len(kept) >= self.keep_snapshots:  # the oldest kept snapshot bounds replay
                oldest = int(kept[self.keep_snapshots - 1].name.split("-")[1])
                self.store.prune_tombstones(oldest)
            return path

    def rebuild(self, factory: str | None = None) -> None:
        """Rebuild the index (dropping tombstones, training IVF when due), without blocking
        searches or writes until the final swap."""
        if factory is not None:
            validate_factory(factory, self.dim, self.metric)
        with self._maint:
            new, view = self._build(factory or self._target_factory(self._count))
            with self._lock.write():
                new.remove(self.store.removed_since(view))
                _, rows = self.store.scan(self.dim, after_lsn=view)
                for labels, vecs in rows:
                    new.add(labels, vecs)
                self._ann = new
                self._dirty = max(self._dirty, 1)
            self._refresher.kick()

    def settle(self) -> None:
        """After a bulk load: wait for background work, rebuild when due (an IVF index trained
        on a sample once the collection is large enough), and snapshot, so that the next open
        replays nothing."""
        self.wait()
        if self._needs_rebuild():
            self.rebuild()
        self.snapshot()

    def _needs_rebuild(self) -> bool:
        ann, n = self._ann, self._count
        if len(ann.dead) > max(1000, 0.2 * max(ann.ntotal, 1)):
            return True
        target = self._target_factory(n)
        if target == ann.factory or n < train_size(target):
            return False
        return self.factory != "auto" or n >= 2 * max(self._built_at, 1)

    def _maybe_maintain(self) -> None:
        if not self.auto_maintain or (self._bg is not None and self._bg.is_alive()):
            return
        rebuild = self._needs_rebuild()
        if rebuild or self._dirty >= self.snapshot_every:
            self._bg = threading.Thread(target=self._maintain, args=(rebuild,), daemon=True)
            self._bg.start()

    def _maintain(self, rebuild: bool) -> None:
        try:
            if rebuild:
                self.rebuild()
            self.snapshot()
        except Exception:
            log.exception("background maintenance of collection '%s' failed", self.name)

    def wait(self) -> None:
        """Wait for background maintenance (snapshot, rebuild, GPU refresh) to finish."""
        if self._bg is not None:
            self._bg.join()
        self._refresher.wait()
