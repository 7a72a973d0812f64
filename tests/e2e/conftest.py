"""The real app, in process, over a small random-weight transformers CLIP written by the tests."""

from __future__ import annotations

import base64
import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from runtime.settings import Settings
from service.app import create_app


def _png(colour=(200, 20, 20), size=(16, 16)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.fixture
def png():
    return _png


@pytest.fixture
def make_client(tmp_path):
    def make(model: str, **kw) -> TestClient:
        settings = Settings.load({}, model=model, data_dir=tmp_path / "data", demo=False,
                                 max_wait_ms=2, **kw)  # fmt: skip
        return TestClient(create_app(settings))

    return make


@pytest.fixture
def client(make_client, tiny_clip_dir):
    with make_client(f"hf:{tiny_clip_dir}") as c:
        yield c
