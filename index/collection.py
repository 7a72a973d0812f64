"""A durable vector collection: string ids, vectors, JSON metadata, filtered search.

The SQLite store (index/store.py) is the record: a write is acknowledged once its transaction is
fsynced there. The FAISS index is derived from it: recovered on open from the newest valid snapshot
plus a replay of what the store holds beyond that snapshot's lsn, or rebuilt from the store when no
snapshot is valid; snapshots and rebuilds are index/maintenance.py's. A readers-writer lock lets
searches run together while each write (store commit plus index update) runs alone, so a search
never sees a write half-applied. Where a GPU is in use, unfiltered searches go to a GPU replica of
the index (index/gpu.py) while it is current, refreshed in the background after writes
(index/refresher.py); small filtered sets and re-ranking are scored exactly (index/exact.py). Each
item's text sits in the store's FTS5 keyword index, written in the item's own transaction; what it
holds and the keyword and hybrid searches over it are index/text_search.py's. A quantized
collection's index holds int8 or binary codes and its hits are rescored from the stored float
vectors. Knows nothing of torch, the encoders or HTTP.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from index.ann import AnnIndex, auto_factory, flat_of, quantized
from index.checks import MAX_K, Checks, Hit, Item
from index.errors import CollectionError
from index.exact import exact_top_k, rescore
from index.filters import compile_filter
from index.gpu import CloneFn, GpuReplica, resolve_device, to_gpu
from index.maintenance import Maintenance
from index.recovery import build_index, replay_snapshot
from index.refresher import GpuRefresher
from index.rwlock import RWLock
from index.space import SpaceGuard
from index.store import ItemStore
from index.text_search import KeywordSearch

log = logging.getLogger("jointspace.index")

EXACT_BELOW = 4096  # filters matching at most this many items are scored exactly


class Collection(KeywordSearch, Maintenance, Checks):
    """Open with `Collection(path)`; create one through `index.Catalog`."""

    def __init__(
        self,
        path: Path,
        *,
        auto_maintain: bool = True,
        snapshot_every: int = 50_000,
        keep_snapshots: int = 2,
        search_device: str = "auto",
        gpu_clone: CloneFn | None = None,
        space: SpaceGuard | None = None,
    ) -> None:
        """`search_device`: 'auto' (a GPU when faiss-gpu sees one), 'cpu' or 'gpu'.
        `gpu_clone` replaces faiss-gpu's copy-to-device function (and implies a GPU).
        `space` refuses upserts while the data directory is below its free-space floor."""
        self.path = Path(path)
        self.space = space
        self.store = ItemStore(self.path / "items.sqlite")
        cfg = self.store.config
        if "dim" not in cfg:
            raise CollectionError(f"{self.path}: not a collection (no configuration)")
        self.name: str = cfg["name"]
        self.dim: int = int(cfg["dim"])
        self.metric: str = cfg["metric"]
        self.model: str | None = cfg.get("model")
        self.model_digest: str | None = cfg.get("model_digest")
        self.factory: str = cfg.get("factory", "auto")
        self.text_fields: list[str] = list(cfg.get("text_fields", []))
        self.quantization: str = cfg.get("quantization", "none")
        self.auto_maintain = auto_maintain
        self.snapshot_every = snapshot_every
        self.keep_snapshots = keep_snapshots
        self.recovery_errors: list[str] = []
        self._lock = RWLock()
        self._maint = threading.Lock()  # one snapshot or rebuild at a time
        self._bg: threading.Thread | None = None
        self._closed = False
        self._count = self.store.count()
        self._dirty = 0  # items written since the last snapshot
        self._built_at = 0  # count when the index was last built
        self._ann, self._applied = self._recover()
        self._filter_cache: dict[tuple, np.ndarray] = {}  # (sql, params) -> labels, at _applied
        self._filter_cache_lsn = -1
        self._size_cache: tuple = (None, -1, 0)  # (index, lsn, its size written out)
        use_gpu = gpu_clone is not None or resolve_device(search_device) == "gpu"
        self.gpu: GpuReplica | None = GpuReplica(gpu_clone or to_gpu) if use_gpu else None
        self._refresher = GpuRefresher(self.gpu, self._state, self._lock, self.name)
        self._refresher.kick()

    # -- recovery -----------------------------------------------------------------------------
    @property
    def snapshot_dir(self) -> Path:
        return self.path / "snapshots"

    def _recover(self) -> tuple[AnnIndex, int]:
        expect = {"dim": self.dim, "metric": self.metric, "name": self.name}
        found = replay_snapshot(self.store, self.snapshot_dir, expect, self.recovery_errors)
        if found is not None:
            ann, view, self._built_at, self._dirty = found
            return ann, view
        ann, view = self._build(self._target_factory(self._count))
        self._dirty = self._count
        return ann, view

    def _target_factory(self, n: int) -> str:
        base = auto_factory(n) if self.factory == "auto" else self.factory
        if self.quantization == "binary":
            return "BFlat"
        return quantized(base, self.quantization)

    def _build(self, factory: str) -> tuple[AnnIndex, int]:
        """A fresh index over the store's current rows; falls back to the flat index of the
        collection's quantization until trainable."""
        ann, view, self._built_at = build_index(
            self.store, self.dim, self.metric, factory, flat_of(self.quantization)
        )
        return ann, view

    # -- writes -------------------------------------------------------------------------------
    def upsert(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        metadata: Sequence[dict | None] | None = None,
        model: str | None = None,
        remove: Sequence[str] = (),
        texts: Sequence[str | None] | None = None,
    ) -> int:
        """Insert or replace items, and delete the items `remove` names (a video's segments that
        its new version no longer has), all in one transaction; returns the write's lsn once it
        is durable. `texts` (one per id, None for none) are the items' text inputs; with the
        metadata fields named in `text_fields` they go into the keyword index in that same
        transaction."""
        self._check_open()
        if self.space is not None:
            self.space.check(f"writing to collection '{self.name}'")
        ids = self._check_ids(ids)
        remove = self._check_removals(ids, remove)
        vecs = self._check_vectors(vectors, len(ids), "vectors")
        self._check_model(model)
        metas = self._check_metadata(metadata, len(ids))
        bodies = self._texts(texts, metadata, len(ids))
        if not ids and not remove:
            return self.store.lsn
        with self._lock.write():
            res = self.store.upsert(ids, vecs, metas, remove, bodies)
            self._apply(lambda: (self._ann.remove(res.removed), self._ann.add(res.added, vecs)))
            self._applied = res.lsn
            self._count += len(res.added) - len(res.removed)
            self._dirty += len(ids) + len(remove)
        self._refresher.kick()
        self._maybe_maintain()
        return res.lsn

    def delete(self, ids: Sequence[str]) -> int:
        """Delete items by id; returns how many existed. Durable when it returns."""
        self._check_open()
        ids = self._check_ids(ids, allow_duplicates=True)
        if not ids:
            return 0
        with self._lock.write():
            res = self.store.delete(ids)
            self._apply(lambda: self._ann.remove(res.removed))
            self._applied = res.lsn
            self._count -= len(res.removed)
            self._dirty += len(res.removed)
        self._refresher.kick()
        self._maybe_maintain()
        return len(res.removed)

    def _apply(self, fn) -> None:
        """Apply a committed write to the index; if that fails, rebuild it from the store."""
        try:
            fn()
        except Exception:
            log.exception("index update failed after a durable write; rebuilding from the store")
            self._ann, self._applied = self._build(self._target_factory(self.store.count()))
            raise

    # -- reads --------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return self._count

    @property
    def lsn(self) -> int:
        return self._applied

    @property
    def index_factory(self) -> str:
        return self._ann.factory

    def ids(self) -> Iterator[str]:
        """Every item's id (for collecting media no item refers to any more)."""
        self._check_open()
        return self.store.ids()

    def get(self, ids: Sequence[str]) -> list[Item | None]:
        ids = self._check_ids(ids, allow_duplicates=True)
        with self._lock.read():
            found = self.store.get(ids)
        return [Item(i, found[i][1].copy(), found[i][2]) if i in found else None for i in ids]

    def search(
        self,
        queries: np.ndarray,
        k: int = 10,
        filter: dict | None = None,
        *,
        exact_rerank: bool = False,
        rescore: int | None = None,
        nprobe: int = 32,
        ef: int = 64,
    ) -> list[list[Hit]]:
        """Top-k hits per query row, best first. A filter is applied inside the search, so a
        filtered search still returns k hits whenever k matching items exist. `rescore`: how
        many candidates the index returns to be scored again from the stored float vectors
        (default 4 x k on a quantized collection, none else; `exact_rerank` asks for
        max(4 x k, k + 32) on any collection)."""
        self._check_open()
        self._check_k(k)
        q = self._check_queries(queries)
        where = compile_filter(filter) if filter else None
        with self._lock.read():
            return self._vector(q, k, where, self._rescore_n(k, exact_rerank, rescore), nprobe, ef)

    def _rescore_n(self, k: int, exact_rerank: bool, rescore: int | None) -> int:
        if rescore is not None:
            if isinstance(rescore, bool) or not isinstance(rescore, int) or rescore < 1:
                raise CollectionError(f"rescore must be a positive integer, not {rescore!r}")
            return min(max(rescore, k), MAX_K)
        if self.quantization != "none":
            return min(4 * k, MAX_K)
        return min(max(4 * k, k + 32), MAX_K) if exact_rerank else 0

    def _vector(self, q: np.ndarray, k: int, where, n_rescore: int, nprobe: int,
                ef: int) -> list[list[Hit]]:  # fmt: skip
        """The search itself; the caller holds the read lock."""
        allowed = self._matching(*where) if where else None
        n_cand = len(allowed) if allowed is not None else self._count
        if allowed is not None and len(allowed) <= EXACT_BELOW:
            scores, labels = self._exact(q, k, allowed)
        else:
            fetch = n_rescore or k
            res = None
            if allowed is None and self.gpu is not None:
                res = self.gpu.search(self._ann, self._applied, q, fetch, nprobe)
            if res is None:
                res = self._ann.search(q, fetch, allowed, nprobe=nprobe, ef=ef)
            scores, labels = res
            if n_rescore:
                scores, labels = rescore(self.store, self.dim, self.metric, q, labels, k)
            short = (labels[:, : min(k, n_cand)] < 0).any(axis=1)
            if short.any():  # the ANN index found too few: score those queries exactly
                s2, l2 = self._exact(q[short], k, allowed)
                scores, labels = scores[:, :k].copy(), labels[:, :k].copy()
                scores[short], labels[short] = s2, l2
        found = self.store.describe(np.unique(labels[labels >= 0]))
        out = []
        for srow, lrow in zip(scores, labels, strict=True):
            hits = []
            for s, lab in zip(srow[:k], lrow[:k], strict=True):
                if lab >= 0 and int(lab) in found:
                    i, meta = found[int(lab)]
                    hits.append(Hit(i, float(s), meta))
            out.append(hits)
        return out

    def _matching(self, sql: str, params: list) -> np.ndarray:
        """Labels passing a filter; repeated filters are served from a cache valid until the next
        write (callers hold the read lock, so the lsn cannot move underneath)."""
        key = (sql, tuple(params))
        if self._filter_cache_lsn != self._applied:
            self._filter_cache, self._filter_cache_lsn = {}, self._applied
        hit = self._filter_cache.get(key)
        if hit is None:
            hit = self.store.matching(sql, params)
            if len(self._filter_cache) >= 64:
                self._filter_cache.pop(next(iter(self._filter_cache)))
            self._filter_cache[key] = hit
        return hit

    def labelled(self, key: str) -> tuple[np.ndarray, list]:
        """(vectors, values) of the items whose metadata `key` (dotted for nested objects) holds
        a string, number or boolean: training data for a classifier."""
        from index.filters import _path

        with self._lock.read():
            return self.store.labelled(_path(key), self.dim)

    def index_field(self, key: str) -> None:
        """Index one metadata key (e.g. "category" or "dims.w") so that filters on it read an
        index instead of every item's metadata. Safe to call again."""
        compile_filter({key: {"$exists": True}})  # validates the key
        with self._lock.write():
            self.store.create_field_index(key)

    # -- GPU replica --------------------------------------------------------------------------
    def _state(self) -> tuple[AnnIndex, int]:
        """What the replica copies: the index and the lsn it has applied."""
        return self._ann, self._applied

    def _exact(self, q: np.ndarray, k: int, allowed: np.ndarray | None):
        return exact_top_k(self.store, self.dim, self.metric, q, k, allowed)

    @property
    def search_device(self) -> str:
        """Where an unfiltered search runs right now: 'gpu' while the replica is current."""
        g = self.gpu
        return "gpu" if g is not None and g.current(self._ann, self._applied) else "cpu"

    def close(self) -> None:
        """Finish background work, snapshot what changed, close the store."""
        if self._closed:
            return
        self.wait()
        if self._dirty:
            try:
                self.snapshot()
            except Exception as e:  # the log is durable: the next open replays what this missed
                log.error("collection '%s': shutdown snapshot failed, the log replay will cover "
                          "it: %s: %s", self.name, type(e).__name__, e)  # fmt: skip
        self._closed = True
        self._refresher.close()
        self.store.close()

    def info(self) -> dict:
        return {
            "name": self.name,
            "dim": self.dim,
            "metric": self.metric,
            "model": self.model,
            "index": self._ann.factory,
            "factory_setting": self.factory,
            "count": self._count,
            "lsn": self._applied,
            "search_device": self.search_device,
            "text_fields": self.text_fields,
            "quantization": self.quantization,
            **self._sizes(),
        }

    def _sizes(self) -> dict:
        """Memory figures: the index's codes per vector and its whole size (codes, ids, graph
        links; what a snapshot writes), and the float vectors the store keeps beside it."""
        ann, lsn = self._ann, self._applied
        if self._size_cache[:2] != (ann, lsn):  # writing the index out is not free: once a view
            self._size_cache = (ann, lsn, ann.nbytes())
        return {
            "bytes_per_vector": ann.code_bytes(),
            "index_bytes": self._size_cache[2],
            "store_vector_bytes": 4 * self.dim * self._count,
        }
