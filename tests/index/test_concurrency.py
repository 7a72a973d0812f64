"""Searches run while writes happen: nothing crashes, and once a delete is acknowledged no search
that starts afterwards returns the deleted id."""

from __future__ import annotations

import threading
import time

import faiss
import numpy as np
import pytest

from index import Catalog

DIM = 16


@pytest.mark.parametrize(
    "factory,replica", [("Flat", False), ("HNSW16,Flat", False), ("Flat", True)]
)
def test_search_during_writes(tmp_path, factory, replica):
    rng = np.random.default_rng(0)
    # background snapshots and rebuilds run too; with `replica`, a CPU copy stands in for a GPU
    # replica that background refreshes keep catching up with the writes
    extra = {"gpu_clone": faiss.clone_index} if replica else {}
    cat = Catalog(tmp_path, snapshot_every=300, **extra)
    col = cat.create("c", DIM, index=factory)
    base = rng.normal(size=(2000, DIM)).astype(np.float32)
    col.upsert([f"i{i}" for i in range(2000)], base)
    deleted: set[str] = set()
    lock = threading.Lock()
    errors: list[BaseException] = []
    stop = threading.Event()
    searches = [0]

    def writer() -> None:
        try:
            for r in range(60):
                new = rng.normal(size=(20, DIM)).astype(np.float32)
                col.upsert([f"n{r}-{j}" for j in range(20)], new)
                victims = [f"i{i}" for i in range(r * 30, r * 30 + 30)]
                col.delete(victims)
                with lock:
                    deleted.update(victims)  # acknowledged
        except BaseException as e:
            errors.append(e)
        finally:
            stop.set()

    def searcher(seed: int) -> None:
        local = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                with lock:
                    gone = set(deleted)  # deletes acknowledged before this search starts
                q = base[local.integers(0, 2000, size=4)]
                for hits in col.search(q, k=10):
                    assert len(hits) == 10
                    bad = {h.id for h in hits} & gone
                    assert not bad, f"deleted ids returned: {sorted(bad)[:5]}"
                searches[0] += 1
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=searcher, args=(s,)) for s in range(3)
    ]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors[0]
    assert searches[0] > 10
    col.wait()
    assert col.count == 2000 - 1800 + 1200
    if factory.startswith("HNSW"):  # 1800 tombstones triggered a background rebuild
        assert len(col._ann.dead) < 1800
    if replica:  # the refresher caught up once the writes stopped
        assert col.search_device == "gpu" and col.gpu.refreshes > 1
    assert time.time() - t0 < 120
    cat.close()
