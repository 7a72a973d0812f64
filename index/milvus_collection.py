"""One collection on Milvus: the same operations, checks and messages as a FAISS collection.

Each jointspace collection is a Milvus collection of three fields: `id` (VARCHAR primary key),
`vector` (FLOAT_VECTOR) and `meta` (JSON, encoded by index/milvus_filters.py so that filters stay
type-strict). Its settings (name, dimension, metric, model stamp, index setting) are a collection
property. Milvus owns durability and search; nothing is cached here, so several services can share
one Milvus and see each other's writes. Knows nothing of torch, the encoders or HTTP; pymilvus is
imported only by index/milvus.py, which hands in a connected client.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from index.checks import MAX_K, MAX_META_BYTES, Checks, Hit, Item
from index.errors import CollectionError, IndexUnavailable, Unsupported
from index.milvus_filters import decode, encode, ids_expr, to_expr
from index.space import SpaceGuard

log = logging.getLogger("jointspace.index")

METRIC = {"cosine": "COSINE", "ip": "IP", "l2": "L2"}
ROW_BYTES_PER_CALL = 16 << 20  # one upsert call stays far below gRPC's 64 MiB message limit
IDS_PER_CALL = 1000
EXACT_BELOW = 4096  # a filter matching at most this many items can be scored exactly
NO_KEYWORDS = (
    "keyword and hybrid search need the FAISS backend (index_backend=faiss): collections on "
    "Milvus have no keyword index"
)
INDEX_CHOICES = "auto, Flat, HNSW<M> (e.g. HNSW32), IVF<nlist>,Flat or IVF<nlist>,SQ8"


def milvus_index(factory: str) -> tuple[str, dict[str, int], str]:
    """The engine's index type, its build parameters and a label for `info()`, for one of the
    collection `index` settings; CollectionError for one Milvus has no equivalent for."""
    if factory == "auto":
        return "AUTOINDEX", {}, "AUTOINDEX"
    if factory == "Flat":
        return "FLAT", {}, "FLAT"
    if m := re.fullmatch(r"HNSW(\d+)(,Flat)?", factory):
        return "HNSW", {"M": int(m[1]), "efConstruction": 80}, f"HNSW(M={m[1]})"
    if m := re.fullmatch(r"IVF(\d+),(Flat|SQ8)", factory):
        kind = "IVF_FLAT" if m[2] == "Flat" else "IVF_SQ8"
        return kind, {"nlist": int(m[1])}, f"{kind}(nlist={m[1]})"
    raise CollectionError(f"index {factory!r} has no Milvus equivalent: use {INDEX_CHOICES}")


def engine_call(fn):
    """Milvus failures (server unreachable, restarting, refusing) become IndexUnavailable."""

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        from pymilvus.exceptions import MilvusException

        try:
            return fn(self, *args, **kwargs)
        except MilvusException as e:
            raise IndexUnavailable(f"Milvus at {self.where} failed: {e.message}") from e

    return wrapper


class MilvusCollection(Checks):
    """Open through index.milvus.MilvusCatalog."""

    def __init__(
        self, client: Any, engine_name: str, config: dict, where: str,
        space: SpaceGuard | None = None,
    ) -> None:  # fmt: skip
        self.client, self.engine_name, self.where, self.space = client, engine_name, where, space
        self.name: str = config["name"]
        self.dim: int = int(config["dim"])
        self.metric: str = config["metric"]
        self.model: str | None = config.get("model")
        self.model_digest: str | None = config.get("model_digest")
        self.factory: str = config.get("factory", "auto")
        self.index_type, _, self.index_factory = milvus_index(self.factory)
        self._closed = False

    # -- writes -------------------------------------------------------------------------------
    @engine_call
    def upsert(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        metadata: Sequence[dict | None] | None = None,
        model: str | None = None,
        remove: Sequence[str] = (),
        texts: Sequence[str | None] | None = None,
    ) -> None:
        """Insert or replace items, and delete the items `remove` names. Milvus has no
        transaction over several calls: the removals go first, then the items (a batch over
        16 MiB in several calls), so a crash part way leaves a video's whole item claiming at
        least the segments that are stored, and a retry of the same write (which removes and
        writes the same ids again) repairs it. `texts` are not kept: this backend has no keyword
        index."""
        self._check_open()
        if self.space is not None:
            self.space.check(f"writing to collection '{self.name}'")
        ids = self._check_ids(ids)
        remove = self._check_removals(ids, remove)
        ids_expr(ids)  # an id Milvus could not address later is refused now
        vecs = self._check_vectors(vectors, len(ids), "vectors")
        self._check_model(model)
        raw = self._check_metadata(metadata, len(ids))
        metas = list(metadata) if metadata is not None else [None] * len(ids)
        if remove:
            self.delete(remove)
        rows, size = [], 0
        for i, v, m, r in zip(ids, vecs, metas, raw, strict=True):
            stored = None if m is None else encode(m)
            near_cap = r is not None and len(r) > MAX_META_BYTES - 8192
            if near_cap and len(json.dumps(stored, separators=(",", ":"))) > MAX_META_BYTES:
                raise CollectionError(
                    f"metadata of '{i}' is over {MAX_META_BYTES} bytes as Milvus stores it "
                    "(booleans and nulls take a few bytes more there)"
                )
            rows.append({"id": i, "vector": v.tolist(), "meta": stored})
            size += 8 * self.dim + len(i) + (len(r) if r else 0)
            if size >= ROW_BYTES_PER_CALL:
                self.client.upsert(self.engine_name, rows)
                rows, size = [], 0
        if rows:
            self.client.upsert(self.engine_name, rows)

    @engine_call
    def delete(self, ids: Sequence[str]) -> int:
        """Delete items by id; returns how many existed."""
        self._check_open()
        ids = list(dict.fromkeys(self._check_ids(ids, allow_duplicates=True)))
        gone = 0
        for at in range(0, len(ids), IDS_PER_CALL):
            present = [r["id"] for r in self._rows(ids[at : at + IDS_PER_CALL], ["id"])]
            if present:
                self.client.delete(self.engine_name, filter=ids_expr(present))
            gone += len(present)
        return gone

    # -- reads --------------------------------------------------------------------------------
    @property
    @engine_call
    def count(self) -> int:
        rows = self.client.query(self.engine_name, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    @engine_call
    def ids(self) -> list[str]:
        """Every item's id (for collecting media no item refers to any more)."""
        self._check_open()
        it = self.client.query_iterator(self.engine_name, batch_size=IDS_PER_CALL,
                                        filter="", output_fields=["id"])  # fmt: skip
        out: list[str] = []
        try:
            while batch := it.next():
                out += [r["id"] for r in batch]
        finally:
            it.close()
        return out

    @engine_call
    def get(self, ids: Sequence[str]) -> list[Item | None]:
        ids = self._check_ids(ids, allow_duplicates=True)
        unique = list(dict.fromkeys(ids))
        found: dict[str, Item] = {}
        for at in range(0, len(unique), IDS_PER_CALL):
            for r in self._rows(unique[at : at + IDS_PER_CALL], ["vector", "meta"]):
                vec = np.asarray(r["vector"], dtype=np.float32)
                found[r["id"]] = Item(r["id"], vec, _meta(r.get("meta")))
        return [found.get(i) for i in ids]

    @engine_call
    def labelled(self, key: str) -> tuple[np.ndarray, list]:
        """(vectors, values) of the items whose metadata `key` holds a string, number or
        boolean: training data for a classifier."""
        path = to_expr({key: {"$exists": True}})
        it = self.client.query_iterator(
            self.engine_name, batch_size=1000, filter=path, output_fields=["vector", "meta"]
        )
        vecs, values = [], []
        try:
            while rows := it.next():
                for r in rows:
                    value = _meta(r["meta"])
                    for part in key.split("."):
                        value = value.get(part) if isinstance(value, dict) else None
                    if isinstance(value, (str, int, float, bool)):
                        vecs.append(r["vector"])
                        values.append(value)
        finally:
            it.close()
        return np.asarray(vecs, np.float32).reshape(len(vecs), self.dim), values

    def _rows(self, ids: list[str], fields: list[str]) -> list[dict]:
        return self.client.query(
            self.engine_name, filter=ids_expr(ids), output_fields=fields, limit=len(ids)
        )

    @engine_call
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
        """Top-k hits per query row, best first. As on the FAISS backend, a filter matching at
        most EXACT_BELOW items is scored exactly (a graph index walking a selective filter can
        miss matches); a broader one runs inside Milvus's search, which returns k hits whenever
        k matching items exist. `rescore`: that many candidates (at least k) are scored again
        from their float vectors."""
        self._check_open()
        self._check_k(k)
        q = self._check_queries(queries)
        expr = to_expr(filter) if filter else ""
        if expr:
            exact = self._exact(q, k, expr)
            if exact is not None:
                return exact
        fetch = min(max(4 * k, k + 32), MAX_K) if exact_rerank else k
        if rescore is not None:
            if isinstance(rescore, bool) or not isinstance(rescore, int) or rescore < 1:
                raise CollectionError(f"rescore must be a positive integer, not {rescore!r}")
            fetch, exact_rerank = min(max(rescore, k), MAX_K), True
        params = {"metric_type": METRIC[self.metric], "params": {}}
        if self.index_type in ("HNSW", "AUTOINDEX"):
            params["params"]["ef"] = max(ef, fetch)
        elif self.index_type.startswith("IVF"):
            params["params"]["nprobe"] = nprobe
        fields = ["meta", "vector"] if exact_rerank else ["meta"]
        res = self.client.search(
            self.engine_name, data=q.tolist(), filter=expr, limit=fetch,
            output_fields=fields, search_params=params,
        )  # fmt: skip
        out = []
        for qi, rows in enumerate(res):
            hits = [Hit(r["id"], r["distance"], _meta(r["entity"].get("meta"))) for r in rows]
            if exact_rerank and hits:
                vecs = np.asarray([r["entity"]["vector"] for r in rows], dtype=np.float32)
                hits = self._ranked(q[qi], [h.id for h in hits], vecs, [h.metadata for h in hits])
            out.append(hits[:k])
        return out

    def _exact(self, q: np.ndarray, k: int, expr: str) -> list[list[Hit]] | None:
        """Exact top-k over the items matching `expr` when at most EXACT_BELOW do, else None."""
        n = self.client.query(self.engine_name, filter=expr, output_fields=["count(*)"])
        n_match = int(n[0]["count(*)"])
        if n_match > EXACT_BELOW:
            return None
        rows = self.client.query(
            self.engine_name, filter=expr, output_fields=["vector", "meta"], limit=max(n_match, 1)
        )
        vecs = np.asarray([r["vector"] for r in rows], dtype=np.float32).reshape(-1, self.dim)
        ids, metas = [r["id"] for r in rows], [_meta(r.get("meta")) for r in rows]
        return [self._ranked(row, ids, vecs, metas)[:k] for row in q]

    def _ranked(self, q: np.ndarray, ids: list[str], vecs: np.ndarray, metas: list) -> list[Hit]:
        """Hits ordered by their exact scores."""
        exact = self._scores(q, vecs)
        order = np.argsort(exact if self.metric == "l2" else -exact, kind="stable")
        return [Hit(ids[j], float(exact[j]), metas[j]) for j in order]

    def _scores(self, q: np.ndarray, vecs: np.ndarray) -> np.ndarray:
        if self.metric == "l2":
            return ((vecs - q) ** 2).sum(1)
        return vecs @ q

    def keyword_search(self, text: str, k: int = 10, filter: dict | None = None) -> list[Hit]:
        raise Unsupported(NO_KEYWORDS)

    def hybrid_search(self, query: np.ndarray, text: str, k: int = 10,
                      filter: dict | None = None, **_: Any) -> list:  # fmt: skip
        raise Unsupported(NO_KEYWORDS)

    # -- maintenance --------------------------------------------------------------------------
    @engine_call
    def snapshot(self) -> None:
        """Ask Milvus to persist what it holds in memory (a flush); there is no snapshot file."""
        self.client.flush(self.engine_name)

    def settle(self) -> None:
        """After a bulk load: flush, so that Milvus seals the segments and builds their index."""
        self.snapshot()

    def wait(self) -> None:
        """Nothing runs in the background here: Milvus does its own maintenance."""

    def close(self) -> None:
        self._closed = True

    def info(self) -> dict:
        return {
            "name": self.name,
            "dim": self.dim,
            "metric": self.metric,
            "model": self.model,
            "index": self.index_factory,
            "factory_setting": self.factory,
            "count": self.count,
            "lsn": None,
            "search_device": "milvus",
            "text_fields": [],
            "quantization": "none",
            "bytes_per_vector": 4 * self.dim,
            "index_bytes": None,
            "store_vector_bytes": None,
        }


def _meta(stored: Any) -> dict | None:
    return None if stored is None else decode(stored)
