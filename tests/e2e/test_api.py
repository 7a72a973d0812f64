"""Every endpoint of the real app, in process: exact status codes, shapes and values."""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np
import pytest

from encoders import load_encoder
from fusion import compose
from index.gpu import gpu_count


def err(res, status: int, type_: str, message: str | None = None) -> None:
    assert res.status_code == status, res.text
    body = res.json()["error"]
    assert (body["type"], body["code"]) == (type_, status)
    if message is not None:
        assert body["message"] == message


@pytest.fixture(scope="module")
def enc(tiny_clip_dir):
    return load_encoder(f"hf:{tiny_clip_dir}", device="cpu")


def test_health_models_and_page(client, enc, tiny_clip_dir):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body.pop("free_bytes") > 0
    weights = sum(t.numel() * t.element_size() for t in [*enc.model.parameters(),
                                                         *enc.model.buffers()])  # fmt: skip
    state = {"id": f"hf:{tiny_clip_dir}", "loaded": True, "memory_bytes": weights, "in_use": 0}
    assert body == {"status": "ok", "ready": True, "reason": None, "model": f"hf:{tiny_clip_dir}",
                    "collections": 0, "index_backend": "faiss", "models": [state]}  # fmt: skip
    m = client.get("/models").json()["data"][0]
    assert (m["id"], m["dim"], m["loss"], m["modalities"]) == (
        f"hf:{tiny_clip_dir}",
        24,
        "softmax",
        ["image", "text"],
    )
    page = client.get("/")
    assert page.status_code == 200 and "<title>jointspace</title>" in page.text


def test_openai_embeddings(client, enc, png, tiny_clip_dir):
    r = client.post("/v1/embeddings", json={"input": ["a red dress", "a cat"]})
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list" and body["model"] == f"hf:{tiny_clip_dir}"
    got = np.array([d["embedding"] for d in body["data"]], np.float32)
    np.testing.assert_allclose(got, enc.embed_text(["a red dress", "a cat"]), atol=1e-6)
    assert body["usage"] == {"prompt_tokens": 9, "total_tokens": 9}  # 4 + 1 words, BOS/EOS each

    r = client.post("/v1/embeddings", json={"input": "a cat", "encoding_format": "base64",
                                            "dimensions": 8})  # fmt: skip
    v = np.frombuffer(base64.b64decode(r.json()["data"][0]["embedding"]), "<f4")
    want = enc.embed_text(["a cat"])[0][:8]
    np.testing.assert_allclose(v, want / np.linalg.norm(want), atol=1e-6)

    img = {"type": "image", "image": png()}
    r = client.post("/v1/embeddings", json={"input": ["a cat", img]})
    assert [d["index"] for d in r.json()["data"]] == [0, 1]
    from encoders import decode_image

    raw = base64.b64decode(png().split(",", 1)[1])
    np.testing.assert_allclose(
        r.json()["data"][1]["embedding"], enc.embed_images([decode_image(raw)])[0], atol=1e-6
    )


def test_openai_errors(client):
    err(client.post("/v1/embeddings", json={"input": "x", "model": "gpt-9"}), 404, "not_found")
    err(client.post("/v1/embeddings", json={"input": []}), 422, "invalid_input", "input is empty")
    err(
        client.post("/v1/embeddings", json={"input": [""]}), 422, "invalid_input", "text 0 is empty"
    )
    err(client.post("/v1/embeddings", json={"input": "x", "dimensions": 99}), 422, "invalid_input",
        "dimensions 99 is more than the model's 24")  # fmt: skip
    err(client.post("/v1/embeddings", json={"inputs": "x"}), 422, "invalid_request",
        "input: Field required")  # fmt: skip


def test_official_openai_client_matches_embed(client):
    from openai import OpenAI

    oa = OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=client)
    res = oa.embeddings.create(model=client.app.state.runtime.settings.model, input=["a blue bag"])
    native = client.post("/embed", json={"texts": ["a blue bag"]}).json()
    np.testing.assert_allclose(res.data[0].embedding, native["embeddings"][0]["vector"], atol=1e-6)


def test_embed_json_multipart_and_truncation(client, png):
    r = client.post("/embed", json={"texts": ["a cat"], "images": [png()]})
    assert r.status_code == 200
    e = r.json()["embeddings"]
    assert [x["modality"] for x in e] == ["text", "image"] and len(e[0]["vector"]) == 24
    raw = base64.b64decode(png((0, 0, 200)).split(",", 1)[1])
    r = client.post("/embed", data={"texts": ["a dog", "a cat"]},
                    files=[("files", ("blue.png", raw, "image/png"))])  # fmt: skip
    assert [x["modality"] for x in r.json()["embeddings"]] == ["text", "text", "image"]
    long = "cat " * 40
    err(client.post("/embed", json={"texts": [long]}), 422, "invalid_input",
        "text 0 is longer than the model's 16-token context: shorten it or pass truncate=true")  # fmt: skip
    r = client.post("/embed", json={"texts": [long], "truncate": True})
    assert r.json()["embeddings"][0]["truncated"] is True
    err(
        client.post("/embed", json={}),
        422,
        "invalid_input",
        "nothing to embed: give texts, images, audios, videos or multi",
    )


def test_image_limits_and_no_url_fetching(client):
    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
            + chunk(b"IEND", b""))  # fmt: skip
    r = client.post("/embed", json={"images": [base64.b64encode(bomb).decode()]})
    err(r, 422, "invalid_input", "image 0: 20000x20000 is 400.0 megapixels, over the limit of 40")
    r = client.post("/embed", json={"images": ["https://example.com/cat.jpg"]})
    err(
        r,
        422,
        "invalid_input",
        "image 0: URLs are not fetched; send the bytes as base64 or a data: URL",
    )
    err(
        client.post("/embed", json={"images": ["%%%"]}),
        422,
        "invalid_input",
        "image 0: not valid base64",
    )


def test_request_limits(make_client, tiny_clip_dir):
    with make_client(f"hf:{tiny_clip_dir}", max_body_bytes=2048, max_items=3) as c:
        err(c.post("/embed", json={"texts": ["x" * 3000]}), 413, "payload_too_large",
            "request body over 2048 bytes")  # fmt: skip

        def chunks():  # no Content-Length: the cap applies while the body streams in
            for _ in range(10):
                yield b" " * 500

        r = c.post("/embed", content=chunks(), headers={"content-type": "application/json"})
        err(r, 413, "payload_too_large")
        err(c.post("/embed", json={"texts": ["a", "b", "c", "d"]}), 422, "invalid_input",
            "4 inputs in one request, over the limit of 3")  # fmt: skip


@pytest.mark.parametrize("backend", ["faiss", "milvus"])
def test_collections_crud_and_search(make_client, tiny_clip_dir, tmp_path, backend, enc, png):
    """The same requests and answers on either index backend."""
    spec = "faiss" if backend == "faiss" else f"milvus:{tmp_path / 'milvus.db'}"
    with make_client(f"hf:{tiny_clip_dir}", index_backend=spec) as client:
        _crud_and_search(client, backend, spec, png)


def _crud_and_search(client, backend, spec, png):
    health = client.get("/health").json()
    assert health["index_backend"] == ("faiss" if backend == "faiss" else f"milvus-lite:{spec[7:]}")
    r = client.post("/collections", json={"name": "shop"})
    assert r.status_code == 201
    assert r.json()["dim"] == 24 and r.json()["count"] == 0
    if backend == "faiss":
        assert r.json()["index"] == "Flat" and r.json()["lsn"] == 0
        assert r.json()["search_device"] in (("cpu", "gpu") if gpu_count() else ("cpu",))
    else:
        assert (r.json()["index"], r.json()["lsn"], r.json()["search_device"]) == (
            "AUTOINDEX",
            None,
            "milvus",
        )
    err(client.post("/collections", json={"name": "shop"}), 409, "conflict",
        "collection 'shop' already exists")  # fmt: skip
    items = [
        {"id": "t1", "text": "a red dress", "metadata": {"colour": "red"}},
        {"id": "t2", "text": "a blue dress", "metadata": {"colour": "blue"}},
        {"id": "i1", "image": png((0, 0, 255)), "metadata": {"colour": "blue"}},
        {"id": "v1", "vector": [1.0] + [0.0] * 23},
    ]
    r = client.put("/collections/shop/items", json={"items": items})
    assert r.status_code == 200 and r.json()["upserted"] == 4
    assert (r.json()["lsn"] is None) == (backend == "milvus")
    assert client.get("/collections/shop").json()["count"] == 4
    assert [c["name"] for c in client.get("/collections").json()] == ["shop"]

    item = client.get("/collections/shop/items/i1", params={"include_vector": True}).json()
    assert item["metadata"] == {"colour": "blue"}
    assert item["media"].startswith("/media/shop/") and client.get(item["media"]).status_code == 200
    np.testing.assert_allclose(np.linalg.norm(item["vector"]), 1.0, atol=1e-5)

    r = client.post("/collections/shop/search", json={"query": {"text": "a red dress"}, "k": 2})
    assert r.json()["hits"][0]["id"] == "t1"
    assert r.json()["hits"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    r = client.post("/collections/shop/search",
                    json={"query": {"text": "a red dress"}, "k": 4, "filter": {"colour": "blue"}})  # fmt: skip
    assert sorted(h["id"] for h in r.json()["hits"]) == ["i1", "t2"]
    r = client.post("/collections/shop/search", json={"query": {"id": "t1"}, "k": 3})
    assert [h["id"] for h in r.json()["hits"]] != [] and "t1" not in [
        h["id"] for h in r.json()["hits"]
    ]

    err(client.post("/collections/shop/search", json={"query": {"id": "nope"}}), 404, "not_found",
        "no item 'nope' in collection 'shop'")  # fmt: skip
    err(client.post("/collections/shop/search", json={"query": {"text": "a", "id": "t1"}}), 422,
        "invalid_request", "a query needs exactly one of text, image, audio, vector or id, or "
        "several of text, image and audio to fuse")  # fmt: skip
    err(client.put("/collections/shop/items", json={"items": [{"id": "x", "vector": [1.0]}]}), 422,
        "invalid_input", "item 'x': vector has 1 dimensions, collection 'shop' holds "
        "24-dimensional vectors")  # fmt: skip
    err(client.post("/collections/nope/search", json={"query": {"text": "a"}}), 404, "not_found",
        "no collection named 'nope'")  # fmt: skip
    huge = [1e39] + [0.0] * 23  # finite in JSON, infinite in float32
    err(client.post("/collections/shop/search", json={"query": {"vector": huge}}), 422,
        "invalid_input", "query vector has values that are not finite float32 numbers")  # fmt: skip
    err(client.put("/collections/shop/items", json={"items": [{"id": "x", "vector": huge}]}), 422,
        "invalid_input", "item 'x': vector has values that are not finite float32 numbers")  # fmt: skip

    assert client.delete("/collections/shop/items/t2").json() == {"deleted": 1}
    err(client.delete("/collections/shop/items/t2"), 404, "not_found")
    assert client.get("/collections/shop").json()["count"] == 3
    assert client.delete("/collections/shop").json() == {"deleted": "shop"}
    err(client.get("/collections/shop"), 404, "not_found")


def test_composed_query_is_the_weighted_sum(client, enc):
    client.post("/collections", json={"name": "c"})
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(30, 24)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    client.put("/collections/c/items",
               json={"items": [{"id": f"v{i}", "vector": v.tolist()} for i, v in enumerate(vecs)]})  # fmt: skip
    body = {"query": {"id": "v0"}, "k": 5, "terms": [{"text": "blue", "weight": 1.5}],
            "modification": "in green instead of red"}  # fmt: skip
    r = client.post("/collections/c/search", json=body).json()
    assert r["terms"] == [{"text": "blue", "weight": 1.5}, {"text": "green", "weight": 0.8},
                          {"text": "red", "weight": -0.8}]  # fmt: skip
    tv = enc.embed_text(["blue", "green", "red"])
    q = compose(vecs[0], tv, [1.5, 0.8, -0.8])
    want = [f"v{i}" for i in np.argsort(-(vecs @ q)) if i != 0][:5]
    assert [h["id"] for h in r["hits"]] == want


def test_classify(client, make_client, tiny_siglip_dir):
    r = client.post(
        "/classify", json={"input": {"text": "a red dress"}, "labels": ["dress", "cat", "car"]}
    )
    body = r.json()
    assert body["activation"] == "softmax"
    assert sum(s["score"] for s in body["scores"]) == pytest.approx(1.0, abs=1e-5)
    scores = [s["score"] for s in body["scores"]]
    assert scores == sorted(scores, reverse=True)
    err(client.post("/classify", json={"input": {"text": "x"}, "labels": ["a"], "templates": ["no slot"]}),
        422, "invalid_input", "each template needs exactly one {} where the label goes")  # fmt: skip
    with make_client(f"hf:{tiny_siglip_dir}") as sc:
        body = sc.post(
            "/classify", json={"input": {"text": "a cat"}, "labels": ["cat", "dog"]}
        ).json()
        assert body["activation"] == "sigmoid"
        assert all(0 < s["score"] < 1 for s in body["scores"])


def test_api_keys(make_client, tiny_clip_dir):
    full, ro = "f" * 24, "r" * 24
    with make_client(f"hf:{tiny_clip_dir}", api_keys=[full], read_only_keys=[ro]) as c:
        r = c.post("/embed", json={"texts": ["a"]})
        err(r, 401, "unauthorized", "missing bearer token")
        assert r.headers["www-authenticate"] == "Bearer"
        err(c.post("/embed", json={"texts": ["a"]}, headers={"authorization": "Bearer " + "x" * 24}),
            401, "unauthorized", "invalid bearer token")  # fmt: skip
        assert (
            c.post(
                "/embed", json={"texts": ["a"]}, headers={"authorization": f"Bearer {ro}"}
            ).status_code
            == 200
        )
        err(c.post("/collections", json={"name": "x"}, headers={"authorization": f"Bearer {ro}"}),
            403, "forbidden", "key 'read-only-key-1' has the read role; this needs admin")  # fmt: skip
        assert c.post("/collections", json={"name": "x"},
                      headers={"authorization": f"Bearer {full}"}).status_code == 201  # fmt: skip
        assert c.get("/health").status_code == 200  # probes need no key


def test_cors_closed_unless_listed(client, make_client, tiny_clip_dir):
    h = {"origin": "https://shop.example", "access-control-request-method": "POST"}
    assert "access-control-allow-origin" not in client.options("/embed", headers=h).headers
    with make_client(f"hf:{tiny_clip_dir}", cors_origins=["https://shop.example"]) as c:
        assert (
            c.options("/embed", headers=h).headers["access-control-allow-origin"]
            == "https://shop.example"
        )
        other = {**h, "origin": "https://evil.example"}
        assert "access-control-allow-origin" not in c.options("/embed", headers=other).headers


def test_metrics(client):
    client.post("/embed", json={"texts": ["a", "b"]})
    text = client.get("/metrics").text
    assert 'jointspace_requests_total{method="POST",route="/embed",status="200"} 1.0' in text
    name = client.app.state.runtime.served.default.id
    assert f'jointspace_batch_size_bucket{{le="2.0",modality="text",model="{name}"}}' in text
    assert f'jointspace_model_loaded{{model="{name}"}} 1.0' in text
    assert "jointspace_queue_depth" in text


def test_model_failure_is_500_for_that_request_only(client, monkeypatch):
    eng = client.app.state.runtime
    real = eng.encoder._text_batch

    def boom(texts):
        if "explode" in texts:
            raise RuntimeError("CUDA error: out of memory")
        return real(texts)

    monkeypatch.setattr(eng.encoder, "_text_batch", boom)
    err(client.post("/embed", json={"texts": ["explode"]}), 500, "model_error",
        "RuntimeError: CUDA error: out of memory")  # fmt: skip
    assert client.post("/embed", json={"texts": ["fine"]}).status_code == 200


def test_thumbnails_follow_their_items(client, png):
    client.post("/collections", json={"name": "m"})
    client.put("/collections/m/items", json={"items": [{"id": "a", "image": png()},
                                                       {"id": "b", "image": png()}]})  # fmt: skip
    media_a = client.get("/collections/m/items/a").json()["media"]
    media_b = client.get("/collections/m/items/b").json()["media"]
    assert client.get(media_a).status_code == 200
    client.put("/collections/m/items", json={"items": [{"id": "a", "text": "a cat"}]})
    assert client.get("/collections/m/items/a").json()["media"] is None  # replaced: no old image
    assert client.get(media_a).status_code == 404
    assert client.delete("/collections/m/items/b").status_code == 200
    assert client.get(media_b).status_code == 404
