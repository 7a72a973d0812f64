"""GPU replicas of a collection's FAISS index, for unfiltered searches.

The CPU index stays the one a collection writes to, snapshots and recovers. A `GpuReplica` holds a
copy of it on a GPU, made by faiss-gpu's cloner, and answers a search only while it is current: a
copy of the very index object the collection holds, taken at the collection's current lsn. Anything
else is answered on the CPU, so both give the same results at every lsn. faiss-gpu indexes take no
IDSelector (filtered searches and tombstoned indexes stay on the CPU), and neither they nor the
GPU resources they share are thread-safe, even for reads: every copy and search, of every
collection's replica, holds one process-wide mutex.

Knows nothing of SQLite, torch or HTTP.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import faiss
import numpy as np

from index.ann import pad_to_k
from index.errors import CollectionError

log = logging.getLogger("jointspace.index")

DEVICES = ("auto", "cpu", "gpu")
GPU_MAX_K = 2048  # faiss-gpu's limit on k (and on nprobe) for its k-selection kernels

CloneFn = Callable[[faiss.Index], faiss.Index]


def gpu_count() -> int:
    """GPUs this faiss build can use (0 for faiss-cpu)."""
    get = getattr(faiss, "get_num_gpus", None)
    if get is None:
        return 0
    try:
        return int(get())
    except Exception:  # a GPU build on a machine whose driver is missing or broken
        return 0


def resolve_device(device: str) -> str:
    """'auto', 'cpu' or 'gpu' -> where searches run: 'gpu' or 'cpu'."""
    if device not in DEVICES:
        raise CollectionError(f"search device must be one of {', '.join(DEVICES)}, not {device!r}")
    n = gpu_count()
    if device == "gpu" and n == 0:
        why = (
            "this faiss is a CPU build (replace faiss-cpu with faiss-gpu: make gpu)"
            if not hasattr(faiss, "StandardGpuResources")
            else "faiss sees no GPU"
        )
        raise CollectionError(f"search device 'gpu' is not available: {why}")
    return "gpu" if device == "gpu" or (device == "auto" and n > 0) else "cpu"


_resources = None
GPU_MUTEX = threading.Lock()  # one StandardGpuResources per process, used by one thread at a time


def to_gpu(index: faiss.Index) -> faiss.Index:
    """A float32 copy of `index` on GPU 0 (faiss-gpu's cloner; raises for types it cannot copy).
    Call with GPU_MUTEX held."""
    global _resources
    if _resources is None:
        _resources = faiss.StandardGpuResources()
    options = faiss.GpuClonerOptions()
    options.useFloat16 = False  # the same scores as the CPU index
    return faiss.index_cpu_to_gpu(_resources, 0, index, options)


class GpuReplica:
    """One device copy of one collection's index."""

    def __init__(self, clone: CloneFn = to_gpu) -> None:
        self._clone = clone
        self._mutex = GPU_MUTEX
        self._index: faiss.Index | None = None
        self._source: object | None = None  # the AnnIndex the copy was taken from
        self._lsn: int | None = None
        self.unsupported: set[str] = set()  # factory strings the cloner refused
        self.refreshes = 0
        self.searches = 0

    def supports(self, ann) -> bool:
        """Whether `ann` (an index.ann.AnnIndex) can be answered from a replica."""
        if ann.binary:  # binary indexes are searched on the CPU (a Hamming scan of bytes)
            return False
        return bool(ann.is_trained and not ann.dead and ann.factory not in self.unsupported)

    def current(self, ann, lsn: int) -> bool:
        return self._source is ann and self._lsn == lsn

    def refresh(self, ann, lsn: int) -> bool:
        """Copy `ann` as of `lsn` to the device. The caller holds the collection's read lock, so
        neither moves while the copy is taken. Returns whether a current replica exists."""
        if self.current(ann, lsn):
            return True
        self.drop()  # a stale copy answers nothing: free its device memory before copying again
        if not self.supports(ann):
            return False
        try:
            with self._mutex:
                copy = self._clone(ann.index)
        except Exception as e:
            log.warning(
                "index %r cannot be copied to the GPU, searching it on the CPU: %s",
                ann.factory,
                str(e).splitlines()[0] if str(e) else type(e).__name__,
            )
            self.unsupported.add(ann.factory)
            return False
        with self._mutex:
            self._index, self._source, self._lsn = copy, ann, lsn
        self.refreshes += 1
        return True

    def drop(self) -> None:
        with self._mutex:
            self._index, self._source, self._lsn = None, None, None

    def search(
        self, ann, lsn: int, queries: np.ndarray, k: int, nprobe: int
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(scores, labels) as ann.search would give them, or None when the replica cannot answer
        for `ann` at `lsn` (then the caller searches on the CPU)."""
        n = ann.ntotal
        if n == 0 or k > GPU_MAX_K or not self.current(ann, lsn):
            return None  # (checked before waiting for the mutex, which a refresh may hold)
        with self._mutex:
            if not self.current(ann, lsn):
                return None
            ivf = _ivf(self._index)
            if ivf is not None:
                ivf.nprobe = min(nprobe, ivf.nlist, GPU_MAX_K)
            scores, labels = self._index.search(
                np.ascontiguousarray(queries, np.float32), min(k, n)
            )
            self.searches += 1
        return pad_to_k(scores, labels, k, ann.metric)


def _ivf(index: faiss.Index):
    """The IVF part of an index (GPU or CPU), or None."""
    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexIDMap | faiss.IndexIDMap2):
        inner = faiss.downcast_index(inner.index)
    return inner if hasattr(inner, "nprobe") and hasattr(inner, "nlist") else None
