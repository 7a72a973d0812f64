"""Filtered search returns exactly what a brute-force numpy filter + search returns."""

from __future__ import annotations

import numpy as np
import pytest

from index import CollectionError, compile_filter
from index.milvus_filters import to_expr
from tests.index.conftest import BACKENDS, open_backend

N, DIM, K = 3000, 32, 10
COLORS = ["red", "blue", "green", None]


def make_meta(i: int, rng) -> dict:
    m = {"n": i, "price": float(rng.uniform(0, 100)) if i % 7 else int(rng.integers(0, 100))}
    color = COLORS[i % 4]
    if color is not None:
        m["color"] = color
    if i % 5 == 0:
        m["in_stock"] = bool(i % 10 == 0)
    if i % 3 == 0:
        m["dims"] = {"w": int(i % 50), "h": 10}
    if i % 11 == 0:
        m["code"] = "1"  # a string that looks like a number
    if i % 13 == 0:
        m["note"] = None
    return m


CASES = [
    ({"color": "red"}, lambda m: m.get("color") == "red"),
    ({"color": {"$eq": "blue"}}, lambda m: m.get("color") == "blue"),
    ({"color": {"$ne": "red"}}, lambda m: m.get("color") != "red"),
    ({"color": {"$in": ["red", "green"]}}, lambda m: m.get("color") in ("red", "green")),
    ({"color": {"$nin": ["red", "green"]}}, lambda m: m.get("color") not in ("red", "green")),
    ({"price": {"$gte": 20, "$lt": 30}}, lambda m: 20 <= m["price"] < 30),
    ({"price": {"$gt": 99.5}}, lambda m: m["price"] > 99.5),
    ({"price": {"$lte": 1}}, lambda m: m["price"] <= 1),
    ({"in_stock": True}, lambda m: m.get("in_stock") is True),
    ({"in_stock": False}, lambda m: m.get("in_stock") is False),
    ({"in_stock": {"$exists": True}}, lambda m: "in_stock" in m),
    ({"in_stock": {"$exists": False}}, lambda m: "in_stock" not in m),
    ({"note": None}, lambda m: "note" in m and m["note"] is None),
    ({"code": 1}, lambda m: False),  # "1" is a string: type-strict equality
    ({"code": "1"}, lambda m: m.get("code") == "1"),
    ({"n": 1}, lambda m: m["n"] == 1),
    ({"dims.w": {"$lt": 5}}, lambda m: "dims" in m and m["dims"]["w"] < 5),
    (
        {"$or": [{"color": "red"}, {"price": {"$lt": 10}}]},
        lambda m: m.get("color") == "red" or m["price"] < 10,
    ),
    (
        {"$and": [{"color": "blue"}, {"$not": {"in_stock": True}}]},
        lambda m: m.get("color") == "blue" and m.get("in_stock") is not True,
    ),
    (
        {"$not": {"color": {"$in": ["red", "blue"]}}},
        lambda m: m.get("color") not in ("red", "blue"),
    ),
    (
        {"color": "red", "price": {"$gte": 50}},
        lambda m: m.get("color") == "red" and m["price"] >= 50,
    ),
    ({"color": "purple"}, lambda m: False),
]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(N, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    metas = [make_meta(i, rng) for i in range(N)]
    queries = rng.normal(size=(5, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return vecs, metas, queries


INDEXES = ["Flat", "HNSW16,Flat", "IVF16,Flat"]


@pytest.fixture(scope="module", params=[(b, f) for b in BACKENDS for f in INDEXES], ids="-".join)
def collection(request, tmp_path_factory, data):
    vecs, metas, _ = data
    backend, factory = request.param
    cat = open_backend(backend, tmp_path_factory.mktemp("flt"))
    col = cat.create("items", DIM, index=factory)
    col.upsert([f"id{i}" for i in range(N)], vecs, metas)
    col.settle()  # FAISS trains the IVF index; Milvus seals the segment and builds its index
    yield col
    cat.close()


def brute_force(vecs, metas, queries, pred, k):
    keep = np.array([i for i, m in enumerate(metas) if pred(m)], dtype=np.int64)
    out = []
    for q in queries:
        if not len(keep):
            out.append([])
            continue
        s = vecs[keep] @ q
        order = np.argsort(-s, kind="stable")[:k]
        out.append([f"id{keep[j]}" for j in order])
    return out, len(keep)


@pytest.mark.parametrize(("flt", "pred"), CASES, ids=[str(c[0]) for c in CASES])
def test_filter_matches_brute_force(collection, data, flt, pred):
    vecs, metas, queries = data
    want, n_match = brute_force(vecs, metas, queries, pred, K)
    got = collection.search(queries, k=K, filter=flt)
    for g, w in zip(got, want, strict=True):
        assert len(g) == min(K, n_match)
        assert all(pred(h.metadata) for h in g)
        # every backend scores a filter matching at most 4096 items (all here) exactly
        assert [h.id for h in g] == w  # the same ids in the same order


def test_index_types_are_what_was_asked(collection):
    assert collection.index_factory in (*INDEXES, "FLAT", "HNSW(M=16)", "IVF_FLAT(nlist=16)")


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        ({"$xor": []}, "unknown filter operator '$xor'"),
        ({"a": {"$regex": "x"}}, "unknown filter operator '$regex' for 'a'"),
        ({"a": {"$in": []}}, "$in for 'a' needs a non-empty list"),
        ({"a": {"$gt": "5"}}, "$gt for 'a' needs a number, not '5'"),
        ({"a": {"$exists": 1}}, "$exists for 'a' needs true or false"),
        ({"$or": {}}, "$or needs a non-empty list of filters"),
        ({"a..b": 1}, "bad filter key 'a..b'"),
        ({"a": [1, 2]}, "filter values must be strings, numbers, booleans or null, not [1, 2]"),
        ([1], "a filter is a JSON object, not list"),
    ],
)
def test_bad_filters(flt, message):
    for compile_for_backend in (compile_filter, to_expr):
        with pytest.raises(CollectionError) as e:
            compile_for_backend(flt)
        assert str(e.value) == message
