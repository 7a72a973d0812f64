"""POST /generate with the shipped house decoder: PNG pictures in OpenAI's image shape, the same
bytes for the same seed, every kind of input, modifications, metrics and every refusal; a model
without a decoder is told which models have one."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from encoders.house import default_house_dir
from generation.decoder import has_decoder

pytestmark = pytest.mark.skipif(
    not has_decoder(default_house_dir() / "decoder"), reason="needs models/house/decoder"
)


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    from fastapi.testclient import TestClient

    from runtime.settings import Settings
    from service.app import create_app

    s = Settings.load({}, model="house", data_dir=tmp_path_factory.mktemp("gen"), demo=False,
                      max_wait_ms=2)  # fmt: skip
    with TestClient(create_app(s)) as c:
        yield c


def pictures(r) -> list[np.ndarray]:
    assert r.status_code == 200, r.text
    out = []
    for d in r.json()["data"]:
        img = Image.open(io.BytesIO(base64.b64decode(d["b64_json"])))
        assert img.format == "PNG" and img.mode == "RGB" and img.size == (32, 32)
        out.append(np.asarray(img))
    return out


def test_a_prompt_draws_the_same_bytes_for_the_same_seed(gen):
    body = {"prompt": "a red sandal", "n": 2, "steps": 10, "seed": 3}
    r = gen.post("/generate", json=body)
    first = pictures(r)
    assert len(first) == 2 and not np.array_equal(first[0], first[1])
    assert isinstance(r.json()["created"], int) and set(r.json()) == {"created", "data"}
    assert gen.post("/generate", json=body).json()["data"] == r.json()["data"]
    other = pictures(gen.post("/generate", json={**body, "seed": 4}))
    assert not np.array_equal(first[0], other[0])
    one = pictures(gen.post("/generate", json={"prompt": "a red sandal", "steps": 10, "seed": 3}))
    assert one[0].shape == (32, 32, 3)


def test_red_prompts_draw_red_and_blue_ones_blue(gen):
    def mean_rgb(prompt: str) -> np.ndarray:
        px = pictures(gen.post("/generate", json={"prompt": prompt, "n": 4, "seed": 0}))
        return np.mean([p.reshape(-1, 3).astype(float).mean(0) for p in px], 0)

    red, blue = mean_rgb("a red dress"), mean_rgb("a blue dress")
    assert red[0] > red[2] and blue[2] > blue[0]


def test_image_vector_and_item_inputs_with_a_modification(gen, png):
    red = png((220, 30, 30), (32, 32))
    assert len(pictures(gen.post("/generate", json={"image": red, "steps": 5}))) == 1
    moved = pictures(gen.post("/generate", json={"image": red, "steps": 5,
                                                 "modification": "in blue instead of red"}))  # fmt: skip
    plain = pictures(gen.post("/generate", json={"image": red, "steps": 5}))
    assert not np.array_equal(moved[0], plain[0])
    v = gen.post("/embed", json={"texts": ["a coat"]}).json()["embeddings"][0]["vector"]
    assert len(pictures(gen.post("/generate", json={"vector": v, "steps": 5}))) == 1
    assert gen.post("/collections", json={"name": "shop"}).status_code == 201
    items = {"items": [{"id": "boot", "image": red}]}
    assert gen.put("/collections/shop/items", json=items).status_code == 200
    by_id = pictures(gen.post("/generate", json={"id": "boot", "collection": "shop", "steps": 5}))
    assert np.array_equal(by_id[0], plain[0])  # the stored vector is the image's


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"prompt": "a hat", "n": 9}, 422, "n 9 is over the limit of 8"),
        ({"prompt": "a hat", "steps": 101}, 422, "steps 101 is over the limit of 100"),
        ({"prompt": "a hat", "image": "x"}, 422, "a generation needs exactly one of prompt, image, vector or id"),
        ({"n": 2}, 422, "a generation needs exactly one of prompt, image, vector or id"),
        ({"id": "boot"}, 422, "id and collection go together"),
        ({"vector": [0.5, 0.5, 0.5]}, 422, "query vector has 3 dimensions, the model makes 256"),
        ({"image": "bm90IGFuIGltYWdl"}, 422, "query image: not a supported image"),
        ({"id": "boot", "collection": "nope"}, 404, "no collection named 'nope'"),
        ({"prompt": "a hat", "modification": "..."}, 422, "the modification has no terms"),
        ({"prompt": "a hat", "guidance": 21}, 422, "guidance"),
        ({"prompt": " "}, 422, "prompt is empty"),
    ],
)  # fmt: skip
def test_refusals(gen, body, status, message):
    r = gen.post("/generate", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["message"].startswith(message)


def test_metrics_count_pictures(gen):
    def drawn() -> float:
        for line in gen.get("/metrics").text.splitlines():
            if line.startswith("jointspace_generated_images_total "):
                return float(line.split()[1])
        raise AssertionError("no jointspace_generated_images_total")

    before = drawn()
    pictures(gen.post("/generate", json={"prompt": "a bag", "n": 3, "steps": 2}))
    assert drawn() == before + 3
    name = gen.app.state.runtime.served.default.id
    assert (
        f'jointspace_batch_size_count{{modality="generate",model="{name}"}}'
        in gen.get("/metrics").text
    )


def test_a_model_without_a_decoder_is_refused(client):
    r = client.post("/generate", json={"prompt": "a red boot"})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["type"] == "no_decoder" and err["code"] == 422
    assert err["message"].startswith("model 'hf:") and err["message"].endswith(
        "' has no image decoder; models with one: 'house', and model directories with an image "
        "decoder (model:DIR; train one: jointspace train --target decoder --model DIR --data SRC)"
    )


def test_an_item_of_another_models_collection_is_refused(make_client, tiny_clip_dir, png):
    with make_client(f"hf:{tiny_clip_dir}") as c:
        assert c.post("/collections", json={"name": "clip"}).status_code == 201
        assert c.put("/collections/clip/items",
                     json={"items": [{"id": "a", "image": png()}]}).status_code == 200  # fmt: skip
    with make_client("house") as c:
        r = c.post("/generate", json={"id": "a", "collection": "clip"})
    assert r.status_code == 409
    assert r.json()["error"]["message"] == (
        f"collection 'clip' holds vectors of model 'hf:{tiny_clip_dir}', which is not served now "
        "(serving house): serve that model again to use it; its data is kept"
    )
