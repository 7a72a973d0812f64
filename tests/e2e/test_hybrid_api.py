"""Keyword and hybrid search and quantized collections through the API: the request fields, the
hits' provenance, the sizes in GET /collections/{name}, and every refusal with its message."""

from __future__ import annotations

import pytest

ITEMS = [
    {"id": "boot", "text": "leather boot", "metadata": {"brand": "Acme", "sku": "SKU-4411",
                                                         "price": 90}},
    {"id": "shoe", "text": "red running shoe", "metadata": {"brand": "Zeta", "price": 40}},
    {"id": "hat", "text": "a red hat", "metadata": {"brand": "Acme", "price": 15}},
    {"id": "v", "vector": [1.0] + [0.0] * 23, "metadata": {"brand": "Nova", "price": 5}},
]  # fmt: skip


def err(res, status: int, type_: str, message: str) -> None:
    assert res.status_code == status, res.text
    assert res.json()["error"] == {"type": type_, "message": message, "code": status}


@pytest.fixture
def shop(client):
    r = client.post("/collections", json={"name": "shop", "text_fields": ["brand", "sku"]})
    assert r.status_code == 201 and r.json()["text_fields"] == ["brand", "sku"]
    assert client.put("/collections/shop/items", json={"items": ITEMS}).status_code == 200
    return client


def search(client, **body):
    r = client.post("/collections/shop/search", json=body)
    assert r.status_code == 200, r.text
    return r.json()["hits"]


def test_keyword_mode(shop):
    hits = search(shop, query={"text": "SKU-4411"}, mode="keyword")
    assert [h["id"] for h in hits] == ["boot"]
    assert hits[0]["found_by"] == ["keyword"] and hits[0]["bm25"] == hits[0]["score"] > 0
    assert hits[0]["vector_score"] is None
    hits = search(shop, query={"text": "acme"}, mode="keyword", filter={"price": {"$lt": 50}})
    assert [h["id"] for h in hits] == ["hat"]
    assert search(shop, query={"text": "nova"}, mode="keyword")[0]["id"] == "v"  # a field only


def test_hybrid_mode(shop):
    hits = search(shop, query={"text": "red SKU-4411"}, mode="hybrid", k=4,
                  hybrid={"fusion": "rrf", "alpha": 0.5, "k_each": 4})  # fmt: skip
    by_id = {h["id"]: h for h in hits}
    assert set(by_id) == {"boot", "shoe", "hat", "v"}
    assert by_id["boot"]["found_by"] == ["vector", "keyword"]
    assert by_id["v"]["found_by"] == ["vector"] and by_id["v"]["bm25"] is None
    vec = [h["id"] for h in search(shop, query={"text": "red SKU-4411"}, k=4)]
    kw = {h["id"]: h["bm25"] for h in search(shop, query={"text": "red SKU-4411"},
                                             mode="keyword", k=4)}  # fmt: skip
    k_rank = {i: 1 + sum(b > kw[i] for b in kw.values()) for i in kw}  # ties share a rank
    want = {i: 0.5 / (61 + vec.index(i)) + (0.5 / (60 + k_rank[i]) if i in kw else 0)
            for i in vec}  # fmt: skip
    assert {h["id"]: h["score"] for h in hits} == pytest.approx(want, abs=1e-12)
    assert {h["id"]: h["bm25"] for h in hits} == pytest.approx({**dict.fromkeys(vec), **kw})
    keyword_only = search(shop, query={"text": "red SKU-4411"}, mode="hybrid", k=4,
                          hybrid={"alpha": 0.0, "k_each": 4})  # fmt: skip
    assert [h["id"] for h in keyword_only][:1] == ["boot"]  # rarest word, two fields
    filtered = search(shop, query={"text": "red"}, mode="hybrid", filter={"brand": "Acme"})
    assert {h["id"] for h in filtered} == {"boot", "hat"}
    assert all(h["found_by"] == ["vector"] for h in search(shop, query={"text": "hat"}))


def test_refusals(shop, png):
    url = "/collections/shop/search"
    err(shop.post(url, json={"query": {"text": '"SKU'}, "mode": "keyword"}), 422,
        "invalid_input", "keyword query '\"SKU' is not valid FTS5 query syntax (unterminated "
        'string): leave out the operators to match plain words, or quote a word with '
        'punctuation ("SKU-4411")')  # fmt: skip
    err(
        shop.post(url, json={"query": {"image": png()}, "mode": "hybrid"}),
        422,
        "invalid_input",
        "mode hybrid needs a text query: its keyword side matches words",
    )
    err(
        shop.post(url, json={"query": {"text": "x"}, "hybrid": {"alpha": 1}}),
        422,
        "invalid_input",
        'hybrid options are for "mode": "hybrid"',
    )
    err(
        shop.post(url, json={"query": {"text": "x"}, "mode": "keyword", "group_by": "brand"}),
        422,
        "invalid_input",
        "group_by works with mode vector only, not keyword",
    )
    err(
        shop.post(url, json={"query": {"text": "x"}, "mode": "keyword", "modification": "in blue"}),
        422,
        "invalid_input",
        "terms and modification move the query vector: not for mode keyword",
    )
    err(
        shop.post(url, json={"query": {"text": "x"}, "mode": "fuzzy"}),
        422,
        "invalid_request",
        "mode: Input should be 'vector', 'keyword' or 'hybrid'",
    )
    err(shop.post(url, json={"query": {"text": "x"}, "mode": "hybrid",
                             "hybrid": {"alpha": 1.5}}), 422, "invalid_request",
        "hybrid.alpha: Input should be less than or equal to 1")  # fmt: skip
    err(shop.post(url, json={"query": {"text": "x"}, "mode": "hybrid",
                             "hybrid": {"fusion": "max"}}), 422, "invalid_request",
        "hybrid.fusion: Input should be 'weighted' or 'rrf'")  # fmt: skip


@pytest.mark.parametrize("quantization, code", [("none", 96), ("int8", 24), ("binary", 3)])
def test_quantized_collections(client, quantization, code):
    r = client.post("/collections", json={"name": "q", "quantization": quantization})
    assert r.status_code == 201
    assert client.put("/collections/q/items", json={"items": ITEMS}).status_code == 200
    info = client.get("/collections/q").json()
    assert (info["quantization"], info["bytes_per_vector"]) == (quantization, code)
    assert info["store_vector_bytes"] == 4 * 24 * 4 and info["index_bytes"] > 4 * code
    r = client.post("/collections/q/search", json={"query": {"vector": [1.0] + [0.0] * 23},
                                                   "k": 2, "rescore": 4})  # fmt: skip
    hits = r.json()["hits"]
    assert hits[0]["id"] == "v" and hits[0]["score"] == pytest.approx(1.0, abs=1e-6)


def test_quantization_refusals(client):
    err(client.post("/collections", json={"name": "q", "quantization": "int8", "metric": "l2"}),
        400, "invalid_request", "quantization int8 needs metric cosine (the codes are scaled for "
        "unit vectors), not 'l2'")  # fmt: skip
    err(
        client.post("/collections", json={"name": "q", "quantization": "pq"}),
        422,
        "invalid_request",
        "quantization: Input should be 'none', 'int8' or 'binary'",
    )


def test_milvus_backend_refuses_keywords(make_client, tiny_clip_dir, tmp_path):
    spec = f"milvus:{tmp_path / 'milvus.db'}"
    with make_client(f"hf:{tiny_clip_dir}", index_backend=spec) as c:
        err(
            c.post("/collections", json={"name": "m", "text_fields": ["brand"]}),
            422,
            "unsupported",
            "text_fields needs the FAISS backend (index_backend=faiss)",
        )
        assert c.post("/collections", json={"name": "m"}).status_code == 201
        err(c.post("/collections/m/search", json={"query": {"text": "x"}, "mode": "keyword"}),
            422, "unsupported", "keyword and hybrid search need the FAISS backend "
            "(index_backend=faiss): collections on Milvus have no keyword index")  # fmt: skip
