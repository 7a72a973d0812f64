"""Quantized collections: the index holds int8 (SQ8) or binary codes, hits are rescored from the
stored float vectors; their sizes, snapshots, reopening, filters, rebuilds and refusals."""

from __future__ import annotations

import numpy as np
import pytest

from index import Catalog, CollectionError

N, DIM = 5000, 64


def data(n=N, dim=DIM, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def fill(cat, name, quantization, index="auto"):
    col = cat.create(name, DIM, quantization=quantization, index=index)
    v = data()
    col.upsert([f"i{j}" for j in range(N)], v, [{"n": j} for j in range(N)])
    return col, v


@pytest.mark.parametrize(
    "quantization, index, code",
    [("none", "Flat", 256), ("int8", "SQ8", 64), ("binary", "BFlat", 8)],
)
def test_codes_sizes_and_rescored_scores(faiss_cat, quantization, index, code):
    col, v = fill(faiss_cat, "q", quantization)
    info = col.info()
    assert (info["quantization"], info["index"], info["bytes_per_vector"]) == (
        quantization, index, code)  # fmt: skip
    assert info["store_vector_bytes"] == N * DIM * 4
    # the index written out: the codes plus 8 bytes of id per vector and a small header
    assert N * (code + 8) <= info["index_bytes"] < N * (code + 8) + 70_000
    hits = col.search(v[:50], k=5)
    for j, row in enumerate(hits):
        assert row[0].id == f"i{j}"  # every item finds itself first
        got = np.array([h.score for h in row])
        want = v[[int(h.id[1:]) for h in row]] @ v[j]
        np.testing.assert_allclose(got, want, atol=1e-6)  # exact float scores, best first
        assert list(got) == sorted(got, reverse=True)


@pytest.mark.parametrize("quantization", ["int8", "binary"])
def test_snapshot_reopen_and_filters(tmp_path, quantization):
    cat = Catalog(tmp_path / "d", auto_maintain=False)
    col, v = fill(cat, "q", quantization)
    col.delete([f"i{j}" for j in range(0, 100)])
    flt = {"n": {"$lt": 4600}}  # 4,500 matches: past the exact path, through the index's selector
    before = [[h.id for h in r] for r in col.search(v[100:120], k=10, filter=flt)]
    for row in col.search(v[:200], k=10, filter=flt):
        assert len(row) == 10 and all(100 <= h.metadata["n"] < 4600 for h in row)
    col.snapshot()
    col.upsert(["late"], v[:1], [{"n": -1}])  # replayed from the log on reopen
    cat.close()
    cat = Catalog(tmp_path / "d", auto_maintain=False)
    col = cat.get("q")
    assert col.recovery_errors == [] and col.quantization == quantization
    assert [[h.id for h in r] for r in col.search(v[100:120], k=10, filter=flt)] == before
    assert col.search(v[0], k=1)[0][0].id == "late"
    assert col.count == N - 100 + 1
    cat.close()


def test_int8_ivf_trains_on_rebuild(faiss_cat):
    col, v = fill(faiss_cat, "q", "int8", index="IVF16,Flat")
    assert col.index_factory == "SQ8"  # built while empty: the untrained fallback
    col.rebuild()
    assert col.index_factory == "IVF16,SQ8" and col.info()["bytes_per_vector"] == 64
    assert [h.id for h in col.search(v[7], k=1, nprobe=16)[0]] == ["i7"]


def test_rescore_is_at_least_k(faiss_cat):
    col, v = fill(faiss_cat, "q", "binary")
    assert [h.id for h in col.search(v[3], k=3, rescore=1)[0]][:1] == ["i3"]
    assert len(col.search(v[3], k=3, rescore=1)[0]) == 3
    with pytest.raises(CollectionError, match=r"^rescore must be a positive integer, not 0$"):
        col.search(v[3], k=3, rescore=0)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"quantization": "int4"}, "quantization must be one of none, int8, binary, not 'int4'"),
        ({"quantization": "int8", "metric": "ip"},
         "quantization int8 needs metric cosine (the codes are scaled for unit vectors), not 'ip'"),
        ({"quantization": "binary", "index": "HNSW32"},
         "quantization binary needs index auto or Flat (a binary flat index; FAISS's binary IVF "
         "takes no filter), not 'HNSW32'"),
        ({"quantization": "int8", "index": "IVF64,PQ8"},
         "quantization int8 needs index auto, Flat, IVF<n>,Flat or HNSW<n>, not 'IVF64,PQ8' "
         "(it replaces the float codec with SQ8)"),
    ],
)  # fmt: skip
def test_refusals(faiss_cat, kw, message):
    with pytest.raises(CollectionError) as e:
        faiss_cat.create("bad", DIM, **kw)
    assert str(e.value) == message
