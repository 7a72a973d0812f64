"""Several models in one service: the house model (256-d) beside a tiny transformers CLIP (24-d)
written by the test; requests choose theirs, collections keep theirs, and every refusal."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from encoders import load_encoder
from encoders.house import default_house_dir
from runtime.models import tensor_bytes
from runtime.settings import Settings, SettingsError
from service.app import create_app

pytestmark = pytest.mark.skipif(
    not (default_house_dir() / "model.safetensors").is_file(), reason="needs models/house"
)
TEXTS = ["a red dress", "a cat"]


def served(data, *models: str, **kw) -> TestClient:
    s = Settings.load({}, models=list(models), data_dir=data, demo=False, max_wait_ms=1, **kw)
    return TestClient(create_app(s))


@pytest.fixture(scope="module")
def clip(tiny_clip_dir) -> str:
    return f"hf:{tiny_clip_dir}"


@pytest.fixture(scope="module")
def both(tmp_path_factory, clip):
    with served(tmp_path_factory.mktemp("both"), "house", clip) as c:
        yield c


def vectors(r) -> np.ndarray:
    assert r.status_code == 200, r.text
    return np.array([d["embedding"] for d in r.json()["data"]], np.float32)


def error(r, status: int) -> dict:
    assert r.status_code == status, r.text
    return r.json()["error"]


def test_models_lists_both_with_their_modalities_and_parts(both, clip):
    data = both.get("/v1/models").json()["data"]
    assert [(m["id"], m["dim"], m["default"], m["loaded"]) for m in data] == [
        ("house", 256, True, True),
        (clip, 24, False, True),
    ]
    assert data[0]["modalities"] == ["audio", "image", "text"]
    assert data[0]["parts"] == ["audio", "captioner", "decoder", "prior", "temporal"]
    assert (data[1]["modalities"], data[1]["parts"]) == (["image", "text"], [])
    health = both.get("/health").json()
    assert [(m["id"], m["loaded"]) for m in health["models"]] == [("house", True), (clip, True)]
    assert all(m["memory_bytes"] > 0 for m in health["models"])


def test_each_model_gives_the_vectors_of_a_single_model_service(both, clip, tmp_path):
    house = vectors(both.post("/v1/embeddings", json={"input": TEXTS}))
    small = vectors(both.post("/v1/embeddings", json={"input": TEXTS, "model": clip}))
    assert house.shape == (2, 256) and small.shape == (2, 24)
    assert both.post("/v1/embeddings", json={"input": TEXTS, "model": clip}).json()["model"] == clip
    np.testing.assert_allclose(small, load_encoder(clip, device="cpu").embed_text(TEXTS), atol=1e-6)
    with TestClient(
        create_app(Settings.load({}, model=clip, data_dir=tmp_path / "c", demo=False))
    ) as one:
        np.testing.assert_allclose(small, vectors(one.post("/v1/embeddings", json={"input": TEXTS})),
                                   atol=1e-6)  # fmt: skip
    with TestClient(
        create_app(Settings.load({}, model="house", data_dir=tmp_path, demo=False))
    ) as one:
        np.testing.assert_allclose(house, vectors(one.post("/v1/embeddings", json={"input": TEXTS})),
                                   atol=1e-6)  # fmt: skip
    native = both.post("/embed", json={"texts": TEXTS, "model": clip}).json()
    assert (native["model"], native["dim"]) == (clip, 24)
    rt = both.app.state.runtime
    house_text, clip_text = (rt.served.resolve(m).parts.batchers["text"] for m in ("house", clip))
    assert house_text is not clip_text  # each model has its own batchers
    metrics = both.get("/metrics").text
    for m in ("house", clip):
        assert f'jointspace_batch_size_count{{modality="text",model="{m}"}}' in metrics
    parts = [("texts", (None, t)) for t in TEXTS] + [("model", (None, clip))]
    form = both.post("/embed", files=parts).json()
    np.testing.assert_allclose([e["vector"] for e in form["embeddings"]], small, atol=1e-6)


def test_an_unknown_model_is_404_naming_the_served_ones(both, clip, png):
    want = f"model 'nope' is not served here (serving house, {clip})"
    for path, body in [("/v1/embeddings", {"input": "a cat"}), ("/embed", {"texts": ["a cat"]}),
                       ("/classify", {"input": {"text": "a cat"}, "labels": ["cat", "dog"]}),
                       ("/caption", {"input": [{"type": "image", "image": png()}]}),
                       ("/generate", {"prompt": "a bag", "steps": 1}),
                       ("/collections", {"name": "x"})]:  # fmt: skip
        assert error(both.post(path, json={**body, "model": "nope"}), 404) == {
            "type": "not_found", "message": want, "code": 404}  # fmt: skip


def test_classify_and_caption_use_the_named_model(both, clip, png):
    body = {"input": {"text": "a cat"}, "labels": ["cat", "dog"]}
    assert both.post("/classify", json={**body, "model": clip}).status_code == 200
    img = {"type": "image", "image": png()}
    err = error(both.post("/caption", json={"input": [img], "model": clip}), 422)
    assert err["type"] == "no_captioner"
    memory = lambda: both.get("/health").json()["models"][0]["memory_bytes"]  # noqa: E731
    before = memory()
    r = both.post("/caption", json={"input": [img], "max_tokens": 3})
    assert r.status_code == 200 and r.json()["model"] == "house"
    captioner = both.app.state.runtime.served.default.parts.captions.captioner()
    assert memory() - before == tensor_bytes(captioner) > 0  # its language model now counts


def test_each_collection_answers_with_its_own_model(both, clip):
    assert both.post("/collections", json={"name": "photos"}).json()["model"] == "house"
    small = both.post("/collections", json={"name": "small", "model": clip}).json()
    assert (small["model"], small["dim"]) == (clip, 24)
    for name in ("photos", "small"):
        items = [{"id": "dress", "text": "a red dress"}, {"id": "cat", "text": "a cat"}]
        assert both.put(f"/collections/{name}/items", json={"items": items}).status_code == 200
    stored = both.get("/collections/small/items/cat?include_vector=true").json()["vector"]
    want = vectors(both.post("/v1/embeddings", json={"input": "a cat", "model": clip}))[0]
    np.testing.assert_allclose(stored, want, atol=1e-6)
    for name, model in (("photos", None), ("small", clip)):
        body = {"query": {"text": "a cat"}, "k": 1} | ({"model": model} if model else {})
        hits = both.post(f"/collections/{name}/search", json=body).json()["hits"]
        assert hits[0]["id"] == "cat"
    err = error(both.post("/collections/small/search",
                          json={"query": {"text": "a cat"}, "model": "house"}), 422)  # fmt: skip
    assert err["message"] == (f"collection 'small' holds vectors of model '{clip}', not 'house': "
                              "leave model out, or name its own")  # fmt: skip
    r = both.post("/generate", json={"collection": "small", "id": "cat", "steps": 1})
    assert error(r, 422)["type"] == "no_decoder"  # the collection's model has no decoder
    r = both.post("/generate", json={"collection": "small", "id": "cat", "model": "house"})
    assert error(r, 422)["message"] == err["message"]  # drawn by the collection's model only


def test_a_collection_whose_model_is_gone_is_409_and_comes_back(tmp_path, clip):
    with served(tmp_path, "house", clip) as c:
        c.post("/collections", json={"name": "small", "model": clip})
        items = [{"id": "cat", "text": "a cat"}, {"id": "dress", "text": "a red dress"}]
        c.put("/collections/small/items", json={"items": items})
        before = c.get("/collections/small/items/cat?include_vector=true").json()
    with served(tmp_path, "house") as c:
        want = (f"collection 'small' holds vectors of model '{clip}', which is not served now "
                "(serving house): serve that model again to use it; its data is kept")  # fmt: skip
        refusals = [
            c.post("/collections/small/search", json={"query": {"text": "a cat"}}),
            c.post("/collections/small/search",
                   json={"query": {"text": "cat"}, "mode": "keyword"}),
            c.put("/collections/small/items", json={"items": [{"id": "x", "text": "a dog"}]}),
            c.get("/collections/small/items/cat"),
            c.delete("/collections/small/items/cat"),
        ]  # fmt: skip
        for r in refusals:
            assert error(r, 409) == {"type": "model_not_served", "message": want, "code": 409}
        assert c.get("/collections/small").json()["count"] == 2  # its settings still show
    with served(tmp_path, "house", clip) as c:
        assert c.get("/collections/small/items/cat?include_vector=true").json() == before
        hits = c.post("/collections/small/search", json={"query": {"text": "a cat"}, "k": 2})
        assert [h["id"] for h in hits.json()["hits"]] == ["cat", "dress"]


def test_settings_of_several_models(clip):
    s = Settings.load({"JOINTSPACE_MODELS": f"house, {clip}"})
    assert (s.model, s.served) == ("house", ["house", clip])
    with pytest.raises(SettingsError) as e:
        Settings.load({"JOINTSPACE_MODELS": "house,house"})
    assert str(e.value) == "models: a spec is given twice in 'house,house'"
    with pytest.raises(SettingsError) as e:
        Settings.load({"JOINTSPACE_MODELS": "house", "JOINTSPACE_MODEL": clip})
    assert str(e.value) == (f"model '{clip}' and models 'house' disagree: give the models in "
                            "JOINTSPACE_MODELS only (the first is the default)")  # fmt: skip
    with pytest.raises(SettingsError) as e:
        Settings.load({"JOINTSPACE_MODEL_MEMORY": "5%"})
    assert str(e.value) == ("model_memory (JOINTSPACE_MODEL_MEMORY): '5%' is not a memory size: "
                            "give bytes (e.g. 4GiB)")  # fmt: skip
