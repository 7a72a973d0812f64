"""Trained classifiers through the API: a background job from a collection's items and a metadata
label, its states, classification with calibrated probabilities, every refusal, and persistence
across a restart."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.e2e.test_storage import err

DIM = 24


def clustered(n_per: int, seed: int = 0) -> tuple[list[dict], np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, DIM))
    items = []
    for k, kind in enumerate(["boot", "dress", "bag"]):
        for i in range(n_per):
            v = centres[k] + 1.2 * rng.normal(size=DIM)
            items.append({"id": f"{kind}{i}", "vector": v.tolist(), "metadata": {"kind": kind}})
    items.append({"id": "unlabelled", "vector": centres[0].tolist()})
    return items, centres


def wait_ready(c, name: str, timeout: float = 120) -> dict:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        s = c.get(f"/classifiers/{name}").json()
        if s["status"] != "training":
            return s
        time.sleep(0.2)
    raise AssertionError(f"classifier {name} still training after {timeout} s")


def test_train_classify_refusals_and_restart(make_client, tiny_clip_dir):
    items, centres = clustered(20)
    with make_client(f"hf:{tiny_clip_dir}") as c:
        c.post("/collections", json={"name": "shop"})
        assert c.put("/collections/shop/items", json={"items": items}).status_code == 200
        body = {"name": "kinds", "collection": "shop", "label_field": "kind", "epochs": 60}
        r = c.post("/classifiers", json=body)
        assert r.status_code == 202, r.text
        assert (r.json()["status"], r.json()["fusion"], r.json()["model"]) == (
            "training",
            "late",
            f"hf:{tiny_clip_dir}",
        )
        s = wait_ready(c, "kinds")
        assert s["status"] == "ready" and s["classes"] == ["bag", "boot", "dress"]
        assert s["modalities"] == ["vector"] and s["metrics"]["validation_accuracy"] >= 0.8
        assert s["metrics"]["train_examples"] == 48 and s["metrics"]["validation_examples"] == 12
        assert [x["name"] for x in c.get("/classifiers").json()] == ["kinds"]

        q = {"input": {"vector": centres[1].tolist()}, "classifier": "kinds", "abstain": 0.5}
        r = c.post("/classify", json=q).json()
        assert r["scores"][0]["label"] == "dress"
        assert sum(x["score"] for x in r["scores"]) == pytest.approx(1.0, abs=1e-6)
        assert (r["activation"], r["classifier"], r["abstained"]) == ("softmax", "kinds", False)
        between = (centres[0] + centres[1]) / 2  # boot or dress: not sure
        q = {"input": {"vector": between.tolist()}, "classifier": "kinds", "abstain": 0.99}
        r = c.post("/classify", json=q).json()
        assert r["scores"][0]["score"] < 0.99 and r["abstained"] is True
        text = c.post("/classify", json={"input": {"text": "a red dress"}, "classifier": "kinds"})
        assert text.status_code == 200 and len(text.json()["scores"]) == 3  # any input's vector

        err(c.post("/classify", json={"input": {"text": "a"}, "classifier": "nope"}), 404,
            "not_found")  # fmt: skip
        err(c.post("/classify", json={"input": {"text": "a"}, "classifier": "kinds",
                                      "labels": ["x"]}), 422, "invalid_request")  # fmt: skip
        err(c.post("/classify", json={"input": {"text": "a"}, "labels": ["x"], "abstain": 0.5}),
            422, "invalid_request")  # fmt: skip
        assert err(c.post("/classifiers", json=body), 409, "conflict") == (
            "classifier 'kinds' already exists: delete it first"
        )
        assert err(c.post("/classifiers", json={**body, "name": "k2", "collection": "nope"}),
                   404, "not_found") == "no collection named 'nope'"  # fmt: skip
        assert err(c.post("/classifiers", json={**body, "name": "k2", "label_field": "colour"}),
                   400, "invalid_request") == (
            "no item of collection 'shop' has a label in 'colour'")  # fmt: skip
        c.post("/collections", json={"name": "one"})
        c.put("/collections/one/items", json={"items": items[:20]})  # boots only
        assert err(c.post("/classifiers", json={**body, "name": "k3", "collection": "one"}),
                   400, "invalid_request") == (
            "a classifier needs at least two labels, got 1: ['boot']")  # fmt: skip
        assert err(c.get("/classifiers/nope"), 404, "not_found") == "no classifier named 'nope'"
        assert "k3" not in [x["name"] for x in c.get("/classifiers").json()]  # nothing written

    with make_client(f"hf:{tiny_clip_dir}") as c:  # a restart: the classifier is still there
        assert c.get("/classifiers/kinds").json()["status"] == "ready"
        r = c.post("/classify", json={"input": {"vector": centres[2].tolist()},
                                      "classifier": "kinds"})  # fmt: skip
        assert r.json()["scores"][0]["label"] == "bag"
        assert c.delete("/classifiers/kinds").json()["name"] == "kinds"
        err(c.get("/classifiers/kinds"), 404, "not_found")


def test_fused_inputs_everywhere(make_client, tiny_clip_dir, png):
    """Several parts of one thing fused into one vector: normalise(sum of weight x vector),
    the same in /v1/embeddings, /embed, collection items and search queries."""
    with make_client(f"hf:{tiny_clip_dir}") as c:
        t = np.array(
            c.post("/embed", json={"texts": ["a red dress"]}).json()["embeddings"][0]["vector"]
        )
        i = np.array(
            c.post("/embed", json={"images": [png((200, 0, 0))]}).json()["embeddings"][0]["vector"]
        )
        want = (0.25 * t + i) / np.linalg.norm(0.25 * t + i)
        part = {"text": "a red dress", "image": png((200, 0, 0)), "weights": {"text": 0.25}}
        r = c.post("/v1/embeddings", json={"input": [{"type": "multi", **part}]})
        np.testing.assert_allclose(r.json()["data"][0]["embedding"], want, atol=1e-5)
        e = c.post("/embed", json={"multi": [part]}).json()["embeddings"][0]
        assert e["modality"] == "multi"
        np.testing.assert_allclose(e["vector"], want, atol=1e-5)
        c.post("/collections", json={"name": "shop"})
        assert (
            c.put("/collections/shop/items", json={"items": [{"id": "m", **part}]}).status_code
            == 200
        )
        got = c.get("/collections/shop/items/m", params={"include_vector": True}).json()
        np.testing.assert_allclose(got["vector"], want, atol=1e-5)
        assert got["media"] is not None  # the picture is the item's thumbnail
        hit = c.post("/collections/shop/search", json={"query": part, "k": 1}).json()["hits"][0]
        assert hit["id"] == "m" and hit["score"] == pytest.approx(1.0, abs=1e-5)
        one = {"multi": [{"text": "a"}]}
        assert err(c.post("/embed", json=one), 422, "invalid_request").endswith(
            "a fused input needs at least two of text, image, audio"
        )
        bad = {"multi": [{"text": "a", "image": png(), "weights": {"audio": 1}}]}
        assert err(c.post("/embed", json=bad), 422, "invalid_request").endswith(
            "weights name parts the input does not have: audio"
        )
