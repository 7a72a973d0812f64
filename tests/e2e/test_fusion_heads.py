"""A trained fusion head through the API: a multi-part input that names it is fused by it, the
same in /embed, /v1/embeddings, collection items and search queries; the heads' routes; every
refusal with status and message; a head kept across a restart."""

from __future__ import annotations

import numpy as np
import pytest

from fusion.head import HeadConfig, train_head
from fusion.registry import head_registry
from tests.e2e.test_storage import err


def toy_head(dim: int, parts: tuple[str, ...], seed: int = 0):
    """A head trained a few epochs on random things (its weights are not equal ones)."""
    rng = np.random.default_rng(seed)
    centre = np.repeat(rng.normal(size=(40, dim)), 3, axis=0)
    v = np.stack([centre + rng.normal(size=centre.shape) for _ in parts], axis=1)
    v /= np.linalg.norm(v, axis=2, keepdims=True)
    groups = np.repeat(np.arange(40), 3)
    cfg = HeadConfig(epochs=10, lr=1e-2, val_fraction=0.0)  # no validation: the last is kept
    return train_head(v.astype(np.float32), np.ones(v.shape[:2], bool), parts, groups, cfg)


def test_a_named_head_fuses_everywhere(make_client, tiny_clip_dir, tmp_path, png):
    with make_client(f"hf:{tiny_clip_dir}") as c:
        eng = c.app.state.runtime
        head = toy_head(eng.encoder.dim, ("text", "image"))
        head_registry(tmp_path / "data").save("shop", head, model=eng.encoder.name, source="toy")
        t = c.post("/embed", json={"texts": ["a red dress"]}).json()["embeddings"][0]["vector"]
        i = c.post("/embed", json={"images": [png((200, 0, 0))]}).json()["embeddings"][0]
        want = head.fuse({"text": np.array(t), "image": np.array(i["vector"])})
        plain = (np.array(t) + i["vector"]) / np.linalg.norm(np.array(t) + i["vector"])
        assert float(want @ plain) < 0.99  # the head is not the equal-weight fusion
        part = {"text": "a red dress", "image": png((200, 0, 0)), "head": "shop"}
        e = c.post("/embed", json={"multi": [part]}).json()["embeddings"][0]
        np.testing.assert_allclose(e["vector"], want, atol=1e-5)
        r = c.post("/v1/embeddings", json={"input": [{"type": "multi", **part}]})
        np.testing.assert_allclose(r.json()["data"][0]["embedding"], want, atol=1e-5)
        c.post("/collections", json={"name": "shop"})
        assert (
            c.put("/collections/shop/items", json={"items": [{"id": "m", **part}]}).status_code
            == 200
        )
        got = c.get("/collections/shop/items/m", params={"include_vector": True}).json()
        np.testing.assert_allclose(got["vector"], want, atol=1e-5)
        hit = c.post("/collections/shop/search", json={"query": part, "k": 1}).json()["hits"][0]
        assert hit["id"] == "m" and hit["score"] == pytest.approx(1.0, abs=1e-5)

        listed = c.get("/fusion-heads").json()
        assert [(h["name"], h["status"], h["parts"]) for h in listed] == [
            ("shop", "ready", ["text", "image"])
        ]
        one = c.get("/fusion-heads/shop").json()
        assert one["model"] == eng.encoder.name and one["metrics"]["epochs"] == 10
        assert one["metrics"]["validation_recall_head"] is None

    with make_client(f"hf:{tiny_clip_dir}") as c:  # a restart keeps it
        e = c.post("/embed", json={"multi": [part]}).json()["embeddings"][0]
        np.testing.assert_allclose(e["vector"], want, atol=1e-5)
        assert c.delete("/fusion-heads/shop").json()["name"] == "shop"
        assert err(c.post("/embed", json={"multi": [part]}), 404, "not_found") == (
            "no fusion head named 'shop'"
        )
        assert c.get("/fusion-heads").json() == []


def test_refusals(make_client, tiny_clip_dir, tmp_path, png):
    with make_client(f"hf:{tiny_clip_dir}") as c:
        eng = c.app.state.runtime
        heads = head_registry(tmp_path / "data")
        heads.save("sounds", toy_head(eng.encoder.dim, ("text", "audio")), model=eng.encoder.name,
                   source="toy")  # fmt: skip
        heads.save("other", toy_head(eng.encoder.dim, ("text", "image")), model="house",
                   source="toy")  # fmt: skip
        base = {"text": "a red dress", "image": png((200, 0, 0))}
        r = c.post("/embed", json={"multi": [{**base, "head": "nope"}]})
        assert err(r, 404, "not_found") == "no fusion head named 'nope'"
        r = c.post("/collections", json={"name": "shop"})
        r = c.post("/collections/shop/search", json={"query": {**base, "head": "nope"}})
        assert err(r, 404, "not_found") == "no fusion head named 'nope'"
        r = c.post("/embed", json={"multi": [{**base, "head": "sounds"}]})
        assert err(r, 422, "invalid_input") == (
            "multi 0: the fusion head fuses text, audio, not image"
        )
        r = c.post("/embed", json={"multi": [{**base, "head": "other"}]})
        assert err(r, 400, "invalid_request") == (
            f"fusion head 'other' was trained on vectors from 'house', not '{eng.encoder.name}'"
        )
        r = c.post("/embed", json={"multi": [{**base, "head": "sounds", "weights": {"text": 2}}]})
        assert err(r, 422, "invalid_request").endswith(
            "give weights or a fusion head, not both: the head weighs the parts"
        )
        r = c.post("/embed", json={"multi": [{**base, "head": "../x"}]})
        assert err(r, 422, "invalid_request") == (
            "multi.0.head: String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'"
        )
        assert err(c.get("/fusion-heads/nope"), 404, "not_found") == "no fusion head named 'nope'"
        assert err(c.delete("/fusion-heads/nope"), 404, "not_found") == (
            "no fusion head named 'nope'"
        )
