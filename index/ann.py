"""The FAISS side of a collection: build an index from a factory string, add, remove, search.

Arrays in, arrays out; int64 labels are the collection's row labels. Index types that cannot
remove ids (HNSW, NSG) get tombstones: removed labels stay in the graph and are excluded from every
search by an IDSelector until a rebuild drops them.

Quantized collections hold compact codes: `int8` swaps the index's float codec for FAISS's 8-bit
scalar quantizer (`SQ8`, `IVF<n>,SQ8`, `HNSW<n>,SQ8`; outside IVF its range is fixed by
index/codes.py, so it needs no training), `binary` is a FAISS binary index (`BFlat`: one sign bit
per dimension, Hamming distances). Their scores are approximate: the collection rescores the
candidates from the stored float vectors. Knows nothing of SQLite, torch or HTTP.
"""

from __future__ import annotations

import math
import re

import faiss
import numpy as np

from index.codes import int8_limit, to_ubinary
from index.errors import CollectionError

METRICS = {
    "cosine": faiss.METRIC_INNER_PRODUCT,
    "ip": faiss.METRIC_INNER_PRODUCT,
    "l2": faiss.METRIC_L2,
}
NO_REMOVE = ("HNSW", "NSG")
QUANTIZATIONS = ("none", "int8", "binary")
BITMAP_MAX_LABEL = 1 << 27  # a 16 MiB bitmap; past that a hashed IDSelectorBatch


def auto_factory(n: int) -> str:
    """Exact search while it is cheap; IVF with about 4*sqrt(n) lists beyond 50k vectors."""
    if n < 50_000:
        return "Flat"
    nlist = 2 ** round(math.log2(4 * math.sqrt(n)))
    return f"IVF{nlist},Flat"


def train_size(factory: str) -> int:
    """Vectors an index needs before it can be trained (0: needs no training)."""
    m = re.search(r"IVF(\d+)", factory)
    if m:
        return 39 * int(m.group(1))  # FAISS warns below 39 points per centroid
    if re.search(r"PQ\d+|LSH", factory):
        return 1_000
    return 0


def quantized(factory: str, quantization: str) -> str:
    """The factory string an index of `quantization` is built from, for a float factory string
    (Flat, IVF<n>,Flat or HNSW<n>[,Flat]); CollectionError for one that has its own codec."""
    if quantization == "none":
        return factory
    if quantization == "binary":
        if factory != "Flat":
            raise CollectionError(
                f"quantization binary needs index auto or Flat (a binary flat index; FAISS's "
                f"binary IVF takes no filter), not {factory!r}"
            )
        return "BFlat"
    if factory == "Flat":
        return "SQ8"
    if m := re.fullmatch(r"(IVF\d+|HNSW\d+)(,Flat)?", factory):
        return f"{m[1]},SQ8"
    raise CollectionError(
        f"quantization int8 needs index auto, Flat, IVF<n>,Flat or HNSW<n>, not {factory!r} "
        "(it replaces the float codec with SQ8)"
    )


def flat_of(quantization: str) -> str:
    """The index a collection of `quantization` uses until its target can be trained."""
    return {"none": "Flat", "int8": "SQ8", "binary": "BFlat"}[quantization]


def is_binary(factory: str) -> bool:
    return factory.startswith("B")


def validate_factory(factory: str, dim: int, metric: str) -> None:
    try:
        if is_binary(factory):
            faiss.index_binary_factory(8 * math.ceil(dim / 8), factory)
            return
        faiss.index_factory(dim, factory, METRICS[metric])
    except Exception as e:
        raise CollectionError(
            f"bad FAISS factory string {factory!r}: {str(e).splitlines()[0]}"
        ) from None


class AnnIndex:
    """One FAISS index plus the labels it still holds but must never return."""

    def __init__(
        self,
        factory: str,
        dim: int,
        metric: str,
        index: faiss.Index | None = None,
        dead: np.ndarray | None = None,
    ) -> None:
        self.factory, self.dim, self.metric = factory, dim, metric
        self.binary = is_binary(factory)
        self.removable = not any(t in factory for t in NO_REMOVE)
        if index is None:
            index = self._new(factory, dim, metric)
        self.index = index
        self.dead: set[int] = set(int(x) for x in (dead if dead is not None else []))

    @staticmethod
    def _new(factory: str, dim: int, metric: str):
        if is_binary(factory):
            return faiss.IndexBinaryIDMap2(
                faiss.index_binary_factory(8 * math.ceil(dim / 8), factory)
            )
        index = faiss.index_factory(dim, factory, METRICS[metric])
        hnsw = getattr(faiss.downcast_index(index), "hnsw", None)
        if hnsw is not None:  # FAISS's default of 40 gives poor graphs on clustered data
            hnsw.efConstruction = max(hnsw.efConstruction, 80)
        if "SQ8" in factory and "IVF" not in factory:  # the fixed range of index/codes.py
            limit = int8_limit(dim)
            index.train(np.array([[-limit] * dim, [limit] * dim], dtype=np.float32))
        if not isinstance(index, faiss.IndexIVF) and "IVF" not in factory:
            index = faiss.IndexIDMap2(index)
        return index

    def _codes(self, vectors: np.ndarray) -> np.ndarray:
        """What the index takes: float32 rows, or packed sign bits for a binary index."""
        if self.binary:
            return np.ascontiguousarray(to_ubinary(vectors))
        return np.ascontiguousarray(vectors, dtype=np.float32)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def is_trained(self) -> bool:
        return bool(self.index.is_trained)

    def train(self, vectors: np.ndarray) -> None:
        self.index.train(np.ascontiguousarray(vectors, dtype=np.float32))

    def add(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        if len(labels):
            self.index.add_with_ids(
                self._codes(vectors), np.ascontiguousarray(labels, dtype=np.int64)
            )

    def remove(self, labels: np.ndarray) -> None:
        if not len(labels):
            return
        if self.removable:
            self.index.remove_ids(np.ascontiguousarray(labels, dtype=np.int64))
        else:
            self.dead.update(int(x) for x in labels)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        allowed: np.ndarray | None = None,
        nprobe: int = 32,
        ef: int = 64,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, labels), each (nq, k); label -1 where fewer than k were found. A binary
        index's scores are Hamming distances (smaller is nearer).

        `allowed`: only these labels may be returned (a metadata filter). Tombstoned labels are
        never returned.
        """
        keep: list = []  # FAISS holds raw pointers: the selector's buffers must outlive the search
        sel = None
        if allowed is not None:
            sel = _selector(allowed, keep)
        elif self.dead:
            dead = np.fromiter(self.dead, dtype=np.int64, count=len(self.dead))
            sel = faiss.IDSelectorNot(_selector(dead, keep))
        params = self._params(sel, nprobe, ef)
        q = self._codes(queries)
        metric = "l2" if self.binary else self.metric  # (for the padding's worst score)
        if self.ntotal == 0:
            empty = np.zeros((len(q), 0))
            return pad_to_k(empty.astype(np.float32), empty.astype(np.int64), k, metric)
        scores, labels = self.index.search(q, min(k, self.ntotal), params=params)
        del keep
        return pad_to_k(scores.astype(np.float32), labels, k, metric)

    def _params(self, sel, nprobe: int, ef: int):
        if self.binary:
            return faiss.SearchParameters(sel=sel) if sel is not None else None
        inner = self.index.index if isinstance(self.index, faiss.IndexIDMap2) else self.index
        inner = faiss.downcast_index(inner)
        if isinstance(inner, faiss.IndexIVF):
            return faiss.SearchParametersIVF(sel=sel, nprobe=min(nprobe, inner.nlist))
        if isinstance(inner, faiss.IndexHNSW):
            return faiss.SearchParametersHNSW(sel=sel, efSearch=ef)
        return faiss.SearchParameters(sel=sel) if sel is not None else None

    def nbytes(self) -> int:
        """The index's size written out (codes, ids, graph links, quantizer)."""
        if self.binary:
            return int(faiss.serialize_index_binary(self.index).nbytes)
        return int(faiss.serialize_index(self.index).nbytes)

    def code_bytes(self) -> int:
        """Bytes of one vector's code in the index: 4 per dimension for float, 1 for int8,
        1 per 8 dimensions for binary (an IVF list number and the id come on top)."""
        inner = self.index
        if isinstance(inner, faiss.IndexIDMap2 | faiss.IndexBinaryIDMap2):
            inner = inner.index
        if not self.binary:
            inner = faiss.downcast_index(inner)
            storage = getattr(inner, "storage", None)  # HNSW: the codes sit in its storage
            inner = faiss.downcast_index(storage) if storage is not None else inner
        return int(inner.code_size)

    def clone(self):
        """A copy of the FAISS index (for a snapshot taken outside the write lock)."""
        if self.binary:  # (FAISS's clone_binary_index refuses the id map)
            return faiss.deserialize_index_binary(faiss.serialize_index_binary(self.index))
        return faiss.clone_index(self.index)


def _selector(labels: np.ndarray, keep: list):
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    if len(labels) and labels.min() >= 0 and labels.max() < BITMAP_MAX_LABEL:
        bits = np.zeros(int(labels.max()) + 1, dtype=bool)
        bits[labels] = True
        bitmap = np.packbits(bits, bitorder="little")
        sel = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
        keep += [bitmap, sel]
        return sel
    sel = faiss.IDSelectorBatch(len(labels), faiss.swig_ptr(labels))
    keep += [labels, sel]
    return sel


def worst_score(metric: str) -> float:
    return np.inf if metric == "l2" else -np.inf


def pad_to_k(
    scores: np.ndarray, labels: np.ndarray, k: int, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """(nq, k') results padded to k columns with the worst score and label -1."""
    pad = k - scores.shape[1]
    if pad <= 0:
        return scores, labels
    return (
        np.pad(scores, ((0, 0), (0, pad)), constant_values=worst_score(metric)),
        np.pad(labels, ((0, 0), (0, pad)), constant_values=-1),
    )
