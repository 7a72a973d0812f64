"""The FAISS side of a collection: build an index from a factory string, add, remove, search.

Arrays in, arrays out; int64 labels are the collection's row labels. Index types that cannot
remove ids (HNSW, NSG) get tombstones: removed labels stay in the graph and are excluded from every
search by an IDSelector until a rebuild drops them. Knows nothing of SQLite, torch or HTTP.
"""

from __future__ import annotations

import math
import re

import faiss
import numpy as np

from index.errors import CollectionError

METRICS = {
    "cosine": faiss.METRIC_INNER_PRODUCT,
    "ip": faiss.METRIC_INNER_PRODUCT,
    "l2": faiss.METRIC_L2,
}
NO_REMOVE = ("HNSW", "NSG")
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
    if re.search(r"PQ\d+|SQ\d|LSH", factory):
        return 1_000
    return 0


def validate_factory(factory: str, dim: int, metric: str) -> None:
    try:
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
        self.removable = not any(t in factory for t in NO_REMOVE)
        if index is None:
            index = faiss.index_factory(dim, factory, METRICS[metric])
            hnsw = getattr(faiss.downcast_index(index), "hnsw", None)
            if hnsw is not None:  # FAISS's default of 40 gives poor graphs on clustered data
                hnsw.efConstruction = max(hnsw.efConstruction, 80)
            if not isinstance(index, faiss.IndexIVF) and "IVF" not in factory:
                index = faiss.IndexIDMap2(index)
        self.index = index
        self.dead: set[int] = set(int(x) for x in (dead if dead is not None else []))

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
                np.ascontiguousarray(vectors, dtype=np.float32),
                np.ascontiguousarray(labels, dtype=np.int64),
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
        """(scores, labels), each (nq, k); label -1 where fewer than k were found.

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
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if self.ntotal == 0:
            empty = np.zeros((len(q), 0))
            return pad_to_k(empty.astype(np.float32), empty.astype(np.int64), k, self.metric)
        scores, labels = self.index.search(q, min(k, self.ntotal), params=params)
        del keep
        return pad_to_k(scores, labels, k, self.metric)

    def _params(self, sel, nprobe: int, ef: int):
        inner = self.index.index if isinstance(self.index, faiss.IndexIDMap2) else self.index
        inner = faiss.downcast_index(inner)
        if isinstance(inner, faiss.IndexIVF):
            return faiss.SearchParametersIVF(sel=sel, nprobe=min(nprobe, inner.nlist))
        if isinstance(inner, faiss.IndexHNSW):
            return faiss.SearchParametersHNSW(sel=sel, efSearch=ef)
        return faiss.SearchParameters(sel=sel) if sel is not None else None

    def nbytes(self) -> int:
        return int(faiss.serialize_index(self.index).nbytes)


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
