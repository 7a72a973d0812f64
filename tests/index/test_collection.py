"""Collection semantics: upsert replaces, delete removes, stamps are enforced, state survives a
reopen, tombstones and rebuilds keep results right for every index type."""

from __future__ import annotations

import numpy as np
import pytest

from index import Catalog, CollectionError, CollectionExists, CollectionNotFound
from tests.index.conftest import BACKENDS, open_backend

DIM = 16


def unit(rng, n, dim=DIM):
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_upsert_get_replace_delete(cat):
    rng = np.random.default_rng(0)
    col = cat.create("c", DIM, model="hf:/m")
    v = unit(rng, 3)
    col.upsert(["a", "b", "c"], v, [{"x": 1}, None, {"y": "z"}], model="hf:/m")
    assert col.count == 3
    a, missing, c = col.get(["a", "nope", "c"])
    assert missing is None
    np.testing.assert_array_equal(a.vector, v[0])
    assert (a.metadata, c.metadata) == ({"x": 1}, {"y": "z"})
    w = unit(rng, 1)
    col.upsert(["a"], w, [{"x": 2}])
    assert col.count == 3
    assert col.get(["a"])[0].metadata == {"x": 2}
    hit = col.search(w[0], k=1)[0][0]
    assert (hit.id, hit.metadata) == ("a", {"x": 2})
    assert hit.score == pytest.approx(1.0, abs=1e-6)
    assert col.delete(["a", "a", "zzz"]) == 1
    assert col.count == 2
    assert [h.id for h in col.search(w[0], k=3)[0]] == sorted(
        ["b", "c"], key=lambda i: -float(v[["a", "b", "c"].index(i)] @ w[0])
    )


def test_cosine_normalises_and_ip_does_not(cat):
    cos = cat.create("cos", 2)
    cos.upsert(["x"], np.array([[3.0, 4.0]], np.float32))
    np.testing.assert_allclose(cos.get(["x"])[0].vector, [0.6, 0.8], rtol=1e-6)
    ip = cat.create("ip", 2, metric="ip")
    ip.upsert(["x"], np.array([[3.0, 4.0]], np.float32))
    np.testing.assert_array_equal(ip.get(["x"])[0].vector, [3.0, 4.0])
    assert ip.search(np.array([1.0, 0.0]), k=1)[0][0].score == pytest.approx(3.0)


def test_l2_metric_orders_by_distance(cat):
    col = cat.create("l2", 2, metric="l2")
    col.upsert(["near", "far"], np.array([[1, 0], [5, 0]], np.float32))
    hits = col.search(np.array([0.0, 0.0]), k=2)[0]
    assert [(h.id, h.score) for h in hits] == [("near", 1.0), ("far", 25.0)]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda c: c.upsert(["a"], np.ones((1, 8), np.float32)),
            "vectors have dimension 8, collection 'c' holds 16-dimensional vectors",
        ),
        (
            lambda c: c.upsert(["a"], np.ones((1, DIM), np.float32), model="open_clip:RN50@openai"),
            "vectors from model 'open_clip:RN50@openai' cannot go into collection 'c', "
            "which holds vectors from 'hf:/m'",
        ),
        (
            lambda c: c.upsert(["a", "a"], np.ones((2, DIM), np.float32)),
            "id 'a' appears twice in one upsert",
        ),
        (
            lambda c: c.upsert([""], np.ones((1, DIM), np.float32)),
            "ids must be non-empty strings, got ''",
        ),
        (lambda c: c.upsert(["a", "b"], np.ones((1, DIM), np.float32)), "2 ids but 1 vectors"),
        (
            lambda c: c.upsert(["a"], np.zeros((1, DIM), np.float32)),
            "vectors contain a zero vector, which has no direction",
        ),
        (
            lambda c: c.upsert(["a"], np.full((1, DIM), np.nan, np.float32)),
            "vectors contain NaN or infinity",
        ),
        (
            lambda c: c.upsert(["a"], np.ones((1, DIM), np.float32), [["not", "a", "dict"]]),
            "metadata must be a JSON object, not list",
        ),
        (lambda c: c.search(np.ones(DIM), k=0), "k must be an integer from 1 to 10000, not 0"),
        (
            lambda c: c.search(np.ones(4)),
            "queries have dimension 4, collection 'c' holds 16-dimensional vectors",
        ),
    ],
)
def test_bad_input_is_refused(cat, call, message):
    col = cat.create("c", DIM, model="hf:/m")
    with pytest.raises(CollectionError) as e:
        call(col)
    assert str(e.value) == message
    assert col.count == 0


def test_catalog_create_list_drop(cat):
    cat.create("b", 4)
    cat.create("a", 8, index="HNSW16,Flat")
    assert cat.names() == ["a", "b"]
    assert cat.create("a", 8, index="HNSW16,Flat", exist_ok=True) is cat.get("a")
    with pytest.raises(CollectionExists, match=r"^collection 'a' already exists$"):
        cat.create("a", 4)
    cat.drop("a")
    assert cat.names() == ["b"]
    with pytest.raises(CollectionNotFound) as e:
        cat.get("a")
    assert str(e.value) == "no collection named 'a'"
    with pytest.raises(CollectionError, match=r"bad collection name '\.\./x'"):
        cat.create("../x", 4)
    with pytest.raises(CollectionError) as e:
        cat.create("z", 4, index="IVF,Nope")
    assert str(e.value).startswith(
        "bad FAISS factory string 'IVF,Nope'"
        if isinstance(cat, Catalog)
        else "index 'IVF,Nope' has no Milvus equivalent: use auto, Flat, HNSW<M> (e.g. HNSW32), "
        "IVF<nlist>,Flat or IVF<nlist>,SQ8"
    )
    assert "z" not in cat.names()


def test_state_survives_reopen_with_and_without_snapshot(tmp_path):
    rng = np.random.default_rng(1)
    v = unit(rng, 200)
    cat = Catalog(tmp_path, auto_maintain=False)
    col = cat.create("c", DIM)
    col.upsert([f"i{i}" for i in range(100)], v[:100], [{"i": i} for i in range(100)])
    col.snapshot()
    col.upsert([f"i{i}" for i in range(100, 200)], v[100:])  # only in the log
    col.delete([f"i{i}" for i in range(0, 200, 10)])  # some from the snapshot, some from the log
    lsn = col.lsn
    cat2 = Catalog(tmp_path, auto_maintain=False)  # as after a crash: no close, no final snapshot
    col2 = cat2.get("c")
    assert (col2.count, col2.lsn, col2.recovery_errors) == (180, lsn, [])
    for i in (1, 55, 151, 199):
        assert col2.search(v[i], k=1)[0][0].id == f"i{i}"
    assert col2.get(["i10", "i110"]) == [None, None]
    assert col2.get(["i5"])[0].metadata == {"i": 5}


MILVUS_INDEX = {"Flat": "FLAT", "HNSW16,Flat": "HNSW(M=16)", "IVF8,Flat": "IVF_FLAT(nlist=8)"}


@pytest.mark.parametrize("factory", ["Flat", "HNSW16,Flat", "IVF8,Flat"])
def test_deletes_work_for_every_index_type(cat, factory):
    rng = np.random.default_rng(2)
    v = unit(rng, 500)
    col = cat.create("c", DIM, index=factory)
    col.upsert([f"i{i}" for i in range(500)], v)
    col.settle()  # FAISS trains the IVF index; Milvus seals the segment and builds its index
    faiss = isinstance(cat, Catalog)
    assert col.index_factory == (factory if faiss else MILVUS_INDEX[factory])
    col.delete([f"i{i}" for i in range(0, 500, 2)])
    for i in range(0, 500, 2):
        assert all(h.id != f"i{i}" for h in col.search(v[i], k=5)[0])
    for i in range(1, 500, 50):
        assert col.search(v[i], k=1)[0][0].id == f"i{i}"
    if faiss and factory.startswith("HNSW"):
        assert len(col._ann.dead) == 250  # tombstones until a rebuild
        col.rebuild()
        assert len(col._ann.dead) == 0 and col._ann.ntotal == 250


def test_untrained_ivf_starts_flat_then_trains(faiss_cat):
    cat = faiss_cat
    rng = np.random.default_rng(3)
    col = cat.create("c", DIM, index="IVF16,Flat")
    col.upsert([f"i{i}" for i in range(100)], unit(rng, 100))
    col.rebuild()
    assert col.index_factory == "Flat"  # 100 < 39 * 16 training points
    col.upsert([f"j{i}" for i in range(700)], unit(rng, 700))
    assert col._needs_rebuild()
    col.rebuild()
    assert col.index_factory == "IVF16,Flat"
    assert col.count == 800


def test_settle_after_a_bulk_load_trains_the_index_and_snapshots(faiss_cat):
    cat = faiss_cat
    rng = np.random.default_rng(4)
    col = cat.create("bulk", DIM, index="IVF16,Flat")
    vecs = unit(rng, 800)
    col.upsert([f"i{i}" for i in range(800)], vecs)
    assert col.index_factory == "Flat" and not list(col.snapshot_dir.glob("*"))
    col.settle()
    assert col.index_factory == "IVF16,Flat"
    assert len(list(col.snapshot_dir.glob("*"))) == 1
    assert col.search(vecs[7:8], k=1, nprobe=16)[0][0].id == "i7"


def test_exact_rerank_recovers_what_pq_loses(faiss_cat):
    cat = faiss_cat
    rng = np.random.default_rng(4)
    v = unit(rng, 3000, 32)
    col = cat.create("pq", 32, index="IVF4,PQ4")
    col.upsert([f"i{i}" for i in range(3000)], v)
    col.rebuild()
    q = unit(rng, 50, 32)
    truth = np.argsort(-(q @ v.T), axis=1)[:, :5]
    rough = col.search(q, k=5)
    exact = col.search(q, k=5, exact_rerank=True)

    def recall(res):
        return np.mean(
            [
                len({h.id for h in r} & {f"i{j}" for j in t}) / 5
                for r, t in zip(res, truth, strict=True)
            ]
        )

    assert recall(exact) > recall(rough)
    assert all(h.score == pytest.approx(float(q[0] @ v[int(h.id[1:])]), abs=1e-5) for h in exact[0])


def test_auto_factory_grows_with_the_collection():
    from index.ann import auto_factory

    assert auto_factory(10) == "Flat"
    assert auto_factory(49_999) == "Flat"
    assert auto_factory(60_000) == "IVF1024,Flat"
    assert auto_factory(1_000_000) == "IVF4096,Flat"


def test_field_index_is_used_and_filter_cache_follows_writes(faiss_cat):
    cat = faiss_cat
    import sqlite3

    from index import compile_filter

    rng = np.random.default_rng(5)
    col = cat.create("c", DIM)
    v = unit(rng, 100)
    col.upsert([f"i{i}" for i in range(100)], v, [{"cat": i % 5} for i in range(100)])
    flt = {"cat": 3}
    assert len(col.search(v[3], k=100, filter=flt)[0]) == 20
    col.upsert(["i0"], v[:1], [{"cat": 3}])  # cached labels must not survive this write
    assert len(col.search(v[3], k=100, filter=flt)[0]) == 21
    col.index_field("cat")
    sql, params = compile_filter(flt)
    db = sqlite3.connect(col.store.path)
    plan = " ".join(
        r[-1] for r in db.execute(f"EXPLAIN QUERY PLAN SELECT label FROM items WHERE {sql}", params)
    )
    db.close()
    assert "USING INDEX meta_" in plan
    assert sorted(h.id for h in col.search(v[3], k=100, filter=flt)[0]) == sorted(
        ["i0"] + [f"i{i}" for i in range(3, 100, 5)]
    )


def test_cosine_normalisation_survives_huge_finite_values(tmp_path):
    """A float32 norm of values near float32's maximum overflows; the direction must survive."""
    import warnings

    from index import Catalog

    cat = Catalog(tmp_path)
    col = cat.create("big", dim=4)
    big = np.array([[3e38, 0, 0, 0], [0, 3e38, 3e38, 0]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        col.upsert(["a", "b"], big)
        hits = col.search(np.array([1e38, 0, 0, 0], np.float32), k=2)[0]
    assert [h.id for h in hits] == ["a", "b"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(col.get(["b"])[0].vector, [0, 2**-0.5, 2**-0.5, 0], atol=1e-6)
    cat.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_state_survives_close_and_reopen(tmp_path, backend):
    rng = np.random.default_rng(6)
    v = unit(rng, 50)
    cat = open_backend(backend, tmp_path)
    col = cat.create("c", DIM, metric="ip", model="hf:/m", index="Flat")
    col.upsert([f"i{i}" for i in range(50)], v, [{"i": i, "ok": i % 2 == 0} for i in range(50)])
    col.delete(["i3", "i4"])
    cat.close()
    cat = open_backend(backend, tmp_path)
    col = cat.get("c")
    assert (col.count, col.dim, col.metric, col.model, col.factory) == (
        48,
        DIM,
        "ip",
        "hf:/m",
        "Flat",
    )
    assert col.get(["i3", "i5"])[0] is None
    assert col.get(["i5"])[0].metadata == {"i": 5, "ok": False}
    assert [h.id for h in col.search(v[7], k=1, filter={"ok": False})[0]] == ["i7"]
    cat.close()


def test_both_backends_give_the_same_exact_results(tmp_path):
    """The same items and queries on FAISS and Milvus, exact (Flat) search: the same top-k ids
    in the same order and the same scores, with and without filters."""
    rng = np.random.default_rng(7)
    v = unit(rng, 2000)
    metas = [{"n": i, "color": ["red", "blue"][i % 2], "big": i % 3 == 0} for i in range(2000)]
    q = unit(rng, 20)
    results = {}
    for backend in BACKENDS:
        cat = open_backend(backend, tmp_path / backend)
        col = cat.create("same", DIM, index="Flat")
        col.upsert([f"i{i}" for i in range(2000)], v, metas)
        results[backend] = [
            col.search(q, k=10, filter=flt)
            for flt in (None, {"color": "red"}, {"$or": [{"big": True}, {"n": {"$lt": 100}}]})
        ]
        cat.close()
    for got_f, got_m in zip(results["faiss"], results["milvus"], strict=True):
        for hits_f, hits_m in zip(got_f, got_m, strict=True):
            assert [h.id for h in hits_f] == [h.id for h in hits_m]
            np.testing.assert_allclose(
                [h.score for h in hits_f], [h.score for h in hits_m], atol=1e-5
            )


def test_odd_ids_and_large_metadata_round_trip(cat):
    rng = np.random.default_rng(8)
    ids = ['a"b', "back\\slash", "é" * 512, "line\nbreak", "$dollar"]
    v = unit(rng, len(ids))
    big = {"text": "x" * 60_000, "flag": True, "none": None, "s": "$x"}
    col = cat.create("odd", DIM)
    col.upsert(ids, v, [big] + [{"i": i} for i in range(1, len(ids))])
    assert [it.id for it in col.get(ids)] == ids
    assert col.get(ids[:1])[0].metadata == big
    assert [h.id for h in col.search(v[2], k=1, filter={"i": 2})[0]] == ["é" * 512]
    assert col.delete([*ids[1:3], "nope"]) == 2
    assert col.count == 3


def test_milvus_refuses_metadata_over_the_cap_as_it_stores_it(tmp_path):
    cat = open_backend("milvus", tmp_path)
    col = cat.create("c", DIM)
    meta = {"flags": [True] * 13_000}  # 65,011 bytes as JSON, 78,011 with "$true" for true
    with pytest.raises(CollectionError) as e:
        col.upsert(["a"], unit(np.random.default_rng(9), 1), [meta])
    assert str(e.value) == (
        "metadata of 'a' is over 65536 bytes as Milvus stores it (booleans and nulls take a few "
        "bytes more there)"
    )
    assert col.count == 0
    cat.close()


def test_a_broad_filter_runs_inside_the_engine_search(cat):
    """Over 4096 matches: the filter goes into the index search itself (FAISS IDSelector, Milvus
    filtered search); on Flat, the same ids as brute force."""
    rng = np.random.default_rng(10)
    v = unit(rng, 6000)
    col = cat.create("broad", DIM, index="Flat")
    col.upsert([f"i{i}" for i in range(6000)], v, [{"g": i % 6} for i in range(6000)])
    q = unit(rng, 3)
    keep = np.array([i for i in range(6000) if i % 6 != 0])
    for row, hits in zip(q, col.search(q, k=10, filter={"g": {"$ne": 0}}), strict=True):
        want = keep[np.argsort(-(v[keep] @ row), kind="stable")[:10]]
        assert [h.id for h in hits] == [f"i{j}" for j in want]


def test_upsert_with_removals_is_one_write(cat):
    """A video shrinking from 4 segments to 2: the whole item, its segments and the removal of
    the two it no longer has go in one upsert (on FAISS one transaction, one lsn)."""
    rng = np.random.default_rng(3)
    col = cat.create("v", DIM)
    old = ["vid", "vid@0", "vid@1", "vid@2", "vid@3"]
    first = col.upsert(old, unit(rng, 5), [{"segments": 4}] + [None] * 4)
    new = unit(rng, 3)
    lsn = col.upsert(["vid", "vid@0", "vid@1"], new, [{"segments": 2}, None, None],
                     remove=["vid@2", "vid@3", "vid@3", "never-there"])  # fmt: skip
    if first is not None:  # FAISS keeps a log position; Milvus none
        assert lsn == first + 1
    assert col.count == 3
    assert col.get(["vid@2", "vid@3"]) == [None, None]
    assert col.get(["vid"])[0].metadata == {"segments": 2}
    assert {h.id for h in col.search(new[1], k=5)[0]} == {"vid", "vid@0", "vid@1"}
    with pytest.raises(CollectionError) as e:
        col.upsert(["vid"], new[:1], remove=["vid"])
    assert str(e.value) == "id 'vid' is both written and removed in one upsert"
    col.upsert([], np.zeros((0, DIM), np.float32), remove=["vid@1"])
    assert col.count == 2 and col.get(["vid@1"]) == [None]


def test_milvus_removals_go_first_so_a_retry_repairs_a_crash(tmp_path, monkeypatch):
    """Milvus has no transaction over calls: a write that dies after its removals and before
    its items leaves the old whole item claiming more segments than are stored, never fewer,
    and the same write again repairs it."""
    pytest.importorskip("milvus_lite")
    cat = open_backend("milvus", tmp_path)
    col = cat.create("v", DIM)
    rng = np.random.default_rng(4)
    col.upsert(["vid", "vid@0", "vid@1", "vid@2"], unit(rng, 4), [{"segments": 3}] + [None] * 3)
    new = unit(rng, 2)
    write = dict(ids=["vid", "vid@0"], vectors=new, metadata=[{"segments": 1}, None],
                 remove=["vid@1", "vid@2"])  # fmt: skip
    real = col.client.upsert

    def crash(*a, **kw):
        raise KeyboardInterrupt("killed between the removals and the items")

    monkeypatch.setattr(col.client, "upsert", crash)
    with pytest.raises(KeyboardInterrupt):
        col.upsert(**write)
    assert col.get(["vid"])[0].metadata == {"segments": 3}
    assert col.get(["vid@1", "vid@2"]) == [None, None]
    monkeypatch.setattr(col.client, "upsert", real)
    col.upsert(**write)
    assert col.count == 2 and col.get(["vid"])[0].metadata == {"segments": 1}
    np.testing.assert_allclose(col.get(["vid@0"])[0].vector, new[1], atol=1e-6)
    cat.close()
