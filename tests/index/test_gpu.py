"""The GPU replica's rules, with a CPU copy standing in for faiss-gpu's cloner: it answers only
unfiltered searches and only while it is a copy of the current index at the current lsn, so its
results are the CPU's at every moment; writes leave the CPU answering until a background refresh
catches up; indexes the cloner refuses stay on the CPU. Without faiss-gpu, 'gpu' is refused with
a message that says what to install, and 'auto' searches on the CPU."""

from __future__ import annotations

import logging
import threading

import faiss
import numpy as np
import pytest

from index import Catalog, CollectionError
from index.gpu import GPU_MAX_K, gpu_count

DIM = 16


def unit(rng, n, dim=DIM):
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def same(a, b) -> None:
    assert [[(h.id, round(h.score, 5), h.metadata) for h in row] for row in a] == [
        [(h.id, round(h.score, 5), h.metadata) for h in row] for row in b
    ]


@pytest.mark.skipif(gpu_count() > 0, reason="faiss sees a GPU here")
def test_gpu_refused_without_faiss_gpu_and_auto_is_cpu(tmp_path):
    with pytest.raises(CollectionError) as e:
        Catalog(tmp_path, search_device="gpu")
    assert str(e.value) == (
        "search device 'gpu' is not available: this faiss is a CPU build "
        "(replace faiss-cpu with faiss-gpu: make gpu)"
    )
    with pytest.raises(CollectionError, match=r"^search device must be one of auto, cpu, gpu, "):
        Catalog(tmp_path, search_device="cuda")
    cat = Catalog(tmp_path, search_device="auto")
    col = cat.create("c", DIM)
    col.upsert(["a"], unit(np.random.default_rng(0), 1))
    assert col.gpu is None
    assert col.info()["search_device"] == "cpu"
    cat.close()


@pytest.mark.parametrize("factory", ["Flat", "IVF16,Flat"])
def test_replica_answers_unfiltered_searches_with_the_cpu_results(tmp_path, factory):
    rng = np.random.default_rng(1)
    x = unit(rng, 2000)
    meta = [{"even": i % 2 == 0} for i in range(2000)]
    ids = [f"i{i}" for i in range(2000)]
    cpu = Catalog(tmp_path / "cpu", auto_maintain=False, search_device="cpu")
    gpu = Catalog(tmp_path / "gpu", auto_maintain=False, gpu_clone=faiss.clone_index)
    a = cpu.create("c", DIM, index=factory)
    b = gpu.create("c", DIM, index=factory)
    a.upsert(ids, x, meta)
    b.upsert(ids, x, meta)
    b.wait()
    assert b.search_device == "gpu" and b.info()["search_device"] == "gpu"
    q = unit(rng, 20)
    for kw in ({}, {"nprobe": 2}, {"nprobe": 16}, {"exact_rerank": True}):
        before = b.gpu.searches
        same(b.search(q, k=10, **kw), a.search(q, k=10, **kw))
        assert b.gpu.searches == before + 1
    # a filter needs an IDSelector, which faiss-gpu does not take: the CPU answers
    before = b.gpu.searches
    same(b.search(q, k=10, filter={"even": True}), a.search(q, k=10, filter={"even": True}))
    assert b.gpu.searches == before
    # beyond faiss-gpu's k limit the CPU answers too
    same(b.search(q[:2], k=GPU_MAX_K + 1), a.search(q[:2], k=GPU_MAX_K + 1))
    assert b.gpu.searches == before
    cpu.close()
    gpu.close()


def test_cpu_answers_until_the_refresh_after_a_write_lands(tmp_path):
    gate = threading.Event()
    copies = []

    def slow_clone(index):
        gate.wait(10)
        copies.append(1)
        return faiss.clone_index(index)

    rng = np.random.default_rng(2)
    x = unit(rng, 500)
    cat = Catalog(tmp_path, auto_maintain=False, gpu_clone=slow_clone)
    col = cat.create("c", DIM, index="Flat")
    gate.set()
    col.upsert([f"i{i}" for i in range(500)], x)
    col.wait()
    assert col.search_device == "gpu"
    made = len(copies)
    gate.clear()
    col.upsert(["i1"], -x[:1])  # a replace; the refresher now waits at the gate (read lock held)
    assert col.search_device == "cpu"
    n = col.gpu.searches
    hits = col.search(np.stack([-x[0], x[1]]), k=3)
    assert hits[0][0].id == "i1" and hits[0][0].score == pytest.approx(1.0)
    assert "i1" not in {h.id for h in hits[1]}  # its old vector is gone
    assert col.gpu.searches == n  # the stale replica was not asked
    gate.set()
    col.wait()
    assert col.search_device == "gpu" and len(copies) == made + 1
    again = col.search(np.stack([-x[0], x[1]]), k=3)
    assert col.gpu.searches == n + 1
    same(again, hits)
    cat.close()


def test_index_the_cloner_refuses_stays_on_the_cpu(tmp_path, caplog):
    def refuse(index):
        raise RuntimeError("Error in ToGpuCloner: this index type is not implemented on the GPU")

    rng = np.random.default_rng(3)
    x = unit(rng, 300)
    cat = Catalog(tmp_path, auto_maintain=False, gpu_clone=refuse)
    col = cat.create("c", DIM, index="HNSW16,Flat")
    with caplog.at_level(logging.WARNING, logger="jointspace.index"):
        col.upsert([f"i{i}" for i in range(300)], x)
        col.wait()
        col.upsert(["j"], x[:1])
        col.wait()
    warned = [r.getMessage() for r in caplog.records if "cannot be copied" in r.getMessage()]
    assert warned == [
        "index 'HNSW16,Flat' cannot be copied to the GPU, searching it on the CPU: "
        "Error in ToGpuCloner: this index type is not implemented on the GPU"
    ]
    assert col.gpu.unsupported == {"HNSW16,Flat"} and col.search_device == "cpu"
    assert col.search(x[5], k=1)[0][0].id == "i5"
    cat.close()


def test_tombstoned_index_is_not_copied(tmp_path):
    rng = np.random.default_rng(4)
    x = unit(rng, 300)
    cat = Catalog(tmp_path, auto_maintain=False, gpu_clone=faiss.clone_index)
    col = cat.create("c", DIM, index="HNSW16,Flat")
    col.upsert([f"i{i}" for i in range(300)], x)
    col.wait()
    assert col.search_device == "gpu"  # a CPU copy of HNSW stands in; faiss-gpu has no HNSW
    col.delete(["i7"])
    col.wait()
    assert col.search_device == "cpu"  # tombstones need an IDSelector
    assert "i7" not in {h.id for h in col.search(x[7], k=5)[0]}
    col.rebuild()  # drops the tombstones
    col.wait()
    assert col.search_device == "gpu"
    assert "i7" not in {h.id for h in col.search(x[7], k=5)[0]}
    cat.close()
