"""Models loaded on first use, and the least recently used idle model unloaded under a memory cap,
through the real app over two tiny models written by the tests."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from encoders import load_encoder
from runtime.models import ModelSet, tensor_bytes
from runtime.settings import Settings
from service.app import create_app


@pytest.fixture(scope="module")
def specs(tiny_clip_dir, tiny_siglip_dir) -> list[str]:
    return [f"hf:{tiny_clip_dir}", f"hf:{tiny_siglip_dir}"]


@pytest.fixture(scope="module")
def sizes(specs) -> list[int]:
    return [tensor_bytes(load_encoder(s, device="cpu")) for s in specs]


def lazy(tmp_path, specs, **kw) -> TestClient:
    s = Settings.load({}, models=specs, data_dir=tmp_path, demo=False, lazy_models=True,
                      max_wait_ms=1, **kw)  # fmt: skip
    return TestClient(create_app(s))


def loaded(c: TestClient) -> list[tuple[str, bool]]:
    return [(m["id"], m["loaded"]) for m in c.get("/health").json()["models"]]


def embed(c: TestClient, model: str) -> int:
    return c.post("/v1/embeddings", json={"input": "a cat", "model": model}).status_code


def test_a_lazy_model_loads_on_its_first_request(tmp_path, specs, sizes):
    clip, siglip = specs
    with lazy(tmp_path, specs) as c:
        assert loaded(c) == [(clip, False), (siglip, False)]
        for path in ("/classifiers", "/fusion-heads", "/collections"):  # need no model
            assert c.get(path).json() == []
        assert loaded(c) == [(clip, False), (siglip, False)]
        assert embed(c, siglip) == 200
        assert loaded(c) == [(clip, False), (siglip, True)]
        health = c.get("/health").json()["models"]
        assert [m["memory_bytes"] for m in health] == [None, sizes[1]]
        metrics = c.get("/metrics").text
        assert f'jointspace_model_loaded{{model="{clip}"}} 0.0' in metrics
        assert f'jointspace_model_bytes{{model="{siglip}"}} {float(sizes[1])}' in metrics


def test_others_are_served_while_a_model_loads(tmp_path, specs, monkeypatch):
    clip, siglip = specs
    gate, building = threading.Event(), threading.Event()
    build = ModelSet._build

    def slow(self, slot):
        if slot.id == clip:
            building.set()
            assert gate.wait(30)
        return build(self, slot)

    monkeypatch.setattr(ModelSet, "_build", slow)
    with lazy(tmp_path, specs) as c:
        assert embed(c, siglip) == 200
        first = {}
        t = threading.Thread(target=lambda: first.setdefault("status", embed(c, clip)))
        t.start()
        assert building.wait(30)
        assert embed(c, siglip) == 200  # served while clip is still loading
        assert "status" not in first
        gate.set()
        t.join(30)
        assert first == {"status": 200}
        assert loaded(c) == [(clip, True), (siglip, True)]


def test_the_least_recently_used_idle_model_is_unloaded_under_the_cap(tmp_path, specs, sizes):
    clip, siglip = specs
    with lazy(tmp_path, specs, model_memory=str(max(sizes) + 1)) as c:
        assert embed(c, clip) == 200 and embed(c, siglip) == 200
        assert loaded(c) == [(clip, False), (siglip, True)]  # both do not fit: clip went
        assert embed(c, clip) == 200
        assert loaded(c) == [(clip, True), (siglip, False)]
        served = c.app.state.runtime.served
        slot = served.resolve(clip)
        c.portal.call(served.acquire, slot)  # a request in flight holds clip
        assert embed(c, siglip) == 200  # loaded beside it, over the cap: clip is held
        assert loaded(c) == [(clip, True), (siglip, False)]  # siglip went once it was idle
        c.portal.call(served.release, slot)
        assert loaded(c) == [(clip, True), (siglip, False)]  # under the cap: clip stays
        assert embed(c, siglip) == 200  # loading again frees room first: clip is idle now
        assert loaded(c) == [(clip, False), (siglip, True)]


def test_a_lazy_model_that_cannot_load_is_503_and_tried_again(tmp_path, specs, tiny_clip_dir):
    import shutil

    gone = tmp_path / "moved-clip"
    shutil.copytree(tiny_clip_dir, gone)
    spec = f"hf:{gone}"
    with lazy(tmp_path / "data", [specs[1], spec]) as c:
        shutil.rmtree(gone)
        r = c.post("/v1/embeddings", json={"input": "a cat", "model": spec})
        assert r.status_code == 503
        err = r.json()["error"]
        assert err["type"] == "model_unavailable"
        assert (
            err["message"]
            == f"model '{spec}' could not be loaded: model directory not found: {gone}"
        )
        assert embed(c, specs[1]) == 200  # the other model serves on
        shutil.copytree(tiny_clip_dir, gone)
        assert embed(c, spec) == 200  # loaded on the next request


def test_transcribe_loads_the_lazy_default_model_that_decodes_its_clip(tmp_path, specs):
    import base64
    import io

    import numpy as np
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.zeros(16_000, np.float32), 16_000, format="WAV")
    clip = "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode()
    clip_spec, siglip = specs
    with lazy(tmp_path, specs) as c:
        r = c.post("/transcribe", json={"input": {"audio": clip}})
        assert (r.status_code, r.json()["segments"]) == (200, [])
        assert loaded(c) == [(clip_spec, True), (siglip, False)]
