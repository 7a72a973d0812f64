"""Deriving a collection's FAISS index from its item store: recovered from the newest valid
snapshot plus a replay of the rows written after it, or built afresh from every row (trained on a
sample when the factory needs training, Flat until there are enough rows to train).

Knows nothing of torch, the encoders, HTTP or the collection's locks (callers hold them).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from index.ann import AnnIndex, train_size
from index.errors import SnapshotError
from index.snapshot import list_snapshots, read_snapshot
from index.store import ItemStore

log = logging.getLogger("jointspace.index")

TRAIN_SAMPLE = 200_000


def build_index(store: ItemStore, dim: int, metric: str, factory: str,
                fallback: str = "Flat") -> tuple[AnnIndex, int, int]:  # fmt: skip
    """(index, lsn it reflects, rows in it): a fresh index over the store's current rows; falls
    back to `fallback` (Flat, or the flat index of the collection's quantization) until
    trainable."""
    view, rows = store.scan(dim)
    parts = list(rows)
    labels = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    vecs = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, dim), np.float32)
    if len(labels) < train_size(factory):
        factory = fallback
    ann = AnnIndex(factory, dim, metric)
    if not ann.is_trained:
        rng = np.random.default_rng(0)
        pick = rng.choice(len(vecs), size=min(len(vecs), TRAIN_SAMPLE), replace=False)
        ann.train(vecs[np.sort(pick)])
    ann.add(labels, vecs)
    return ann, view, len(labels)


def replay_snapshot(store: ItemStore, folder: Path, expect: dict,
                    errors: list[str]) -> tuple[AnnIndex, int, int, int] | None:  # fmt: skip
    """(index, lsn it reflects, rows when it was built, rows replayed) from the newest valid
    snapshot in `folder` plus the store's later writes; None when no snapshot is valid (each
    invalid one is logged and its message appended to `errors`)."""
    dim, metric = expect["dim"], expect["metric"]
    snaps = list_snapshots(folder)
    for path in snaps:
        try:
            snap = read_snapshot(path, expect)
        except SnapshotError as e:
            log.error("skipping snapshot: %s", e)
            errors.append(str(e))
            continue
        ann = AnnIndex(snap.manifest["factory"], dim, metric, snap.index, snap.dead)
        base = int(snap.manifest["lsn"])
        ann.remove(store.removed_since(base))
        view, rows = store.scan(dim, after_lsn=base)
        n_new = 0
        for labels, vecs in rows:
            ann.add(labels, vecs)
            n_new += len(labels)
        built_at = int(snap.manifest.get("built_at", snap.manifest["count"]))
        return ann, view, built_at, n_new
    if snaps:
        log.error("no valid snapshot in %s: rebuilding from the item store", folder)
    return None
