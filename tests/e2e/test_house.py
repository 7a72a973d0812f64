"""The service as `make serve` runs it: the shipped house model and the demo collection built on
first start from the Debian-packaged data. Measures composed-query quality ("this, but in blue")."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from encoders.house import default_house_dir
from housedata.sets import FASHION_DIR, TUXPAINT_DIR
from runtime.settings import Settings
from service.app import create_app
from service.demo import PER_CLASS, TINTS, demo_sounds

pytestmark = pytest.mark.skipif(
    not (default_house_dir() / "model.safetensors").is_file()
    or not FASHION_DIR.exists()
    or not TUXPAINT_DIR.exists(),
    reason="needs models/house and the Debian packages dataset-fashion-mnist, tuxpaint-stamps-default",
)


@pytest.fixture(scope="module")
def house(tmp_path_factory):
    s = Settings.load({}, model="house", data_dir=tmp_path_factory.mktemp("house"), demo=True)
    with TestClient(create_app(s)) as c:
        yield c


def test_demo_collection_is_built_on_first_start(house):
    cols = {c["name"]: c for c in house.get("/collections").json()}
    demo = cols["demo"]
    assert demo["model"] == "house" and demo["dim"] == 256
    n_sounds = len(demo_sounds())
    assert n_sounds > 100
    body = {"query": {"text": "a dress"}, "k": 1000, "filter": {"source": "video"}}
    n_video = len(house.post("/collections/demo/search", json=body).json()["hits"])
    n_stamps = demo["count"] - 10 * PER_CLASS * len(TINTS) - n_sounds - n_video
    assert n_stamps > 700
    item = house.get("/collections/demo/items/fmnist-0-red").json()
    assert item["metadata"] == {
        "source": "fashion-mnist",
        "item": "ankle boot",
        "colour": "red",
        "image": 0,
    }
    assert house.get(item["media"]).headers["content-type"] == "image/png"


def test_demo_videos_are_stored_as_segments_and_found_by_order(house):
    whole = house.get("/collections/demo/items/clip-shots-0").json()
    meta = whole["metadata"]
    assert meta["source"] == "video" and meta["video_id"] == "clip-shots-0"
    assert meta["segments"] == 4  # four shots, cut where they change
    assert house.get(whole["media"]).headers["content-type"] == "video/webm"
    seg = house.get("/collections/demo/items/clip-shots-0@1").json()["metadata"]
    assert seg["segment"] == 1 and 3.0 <= seg["start"] <= 6.0
    # the temporal head tells the two turning dresses apart in the right direction: the
    # red-to-blue clip leans further toward its caption than the blue-to-red clip does (mean
    # pooling gives both clips one vector). On this pair each clip alone does not always pick
    # its own caption: see models/house/temporal/MODEL_CARD.md
    captions = ["a dress turning from red to blue", "a dress turning from blue to red"]
    r = house.post("/v1/embeddings", json={"input": captions})
    red_blue, blue_red = (np.array(d["embedding"]) for d in r.json()["data"])
    v = {name: np.array(house.get(f"/collections/demo/items/clip-dress-{name}",
                                  params={"include_vector": True}).json()["vector"])
         for name in ("red-to-blue", "blue-to-red")}  # fmt: skip
    assert (v["red-to-blue"] - v["blue-to-red"]) @ (red_blue - blue_red) > 0
    assert float(v["red-to-blue"] @ v["blue-to-red"]) < 0.9999
    body = {"query": {"text": "a purple dress"}, "k": 2, "group_by": "video_id",
            "filter": {"source": "video", "segment": {"$exists": True}}}  # fmt: skip
    hits = house.post("/collections/demo/search", json=body).json()["hits"]
    assert [h["id"] for h in hits] == ["clip-shots-0@0", "clip-shots-1@0"] or \
        {h["metadata"]["video_id"] for h in hits} == {"clip-shots-0", "clip-shots-1"}  # fmt: skip


def test_text_search_finds_the_right_item_and_colour(house):
    for colour, item in [("red", "dress"), ("blue", "sneaker"), ("yellow", "bag")]:
        body = {
            "query": {"text": f"a {colour} {item}"},
            "k": 5,
            "filter": {"source": "fashion-mnist"},
        }
        hits = house.post("/collections/demo/search", json=body).json()["hits"]
        top = hits[0]["metadata"]
        assert (top["colour"], top["item"]) == (colour, item)


def test_words_find_sounds_and_a_sound_finds_pictures(house):
    sounds = {"filter": {"source": "tuxpaint-sound"}, "k": 3}
    for words, want in [("a dog", "mammals/dogs/dog"), ("a cow", "mammals/bovines/cow"),
                        ("a crow", "birds/crow")]:  # fmt: skip
        hits = house.post("/collections/demo/search", json={"query": {"text": words}, **sounds})
        ids = [h["id"] for h in hits.json()["hits"]]
        assert f"tuxpaint-sound-animals/{want}" in ids, (words, ids)
        if want.endswith("/dog"):
            item = hits.json()["hits"][ids.index(f"tuxpaint-sound-animals/{want}")]
    dog = "tuxpaint-sound-animals/mammals/dogs/dog"
    assert item["metadata"] == {"source": "tuxpaint-sound", "caption": "A dog.",
                                "stamp": "tuxpaint-animals/mammals/dogs/dog"}  # fmt: skip
    clip = house.get(item["media"])
    assert clip.headers["content-type"] == "audio/ogg" and clip.content.startswith(b"OggS")
    body = {"query": {"id": dog}, "k": 5, "filter": {"source": "tuxpaint"}}
    ids = [h["id"] for h in house.post("/collections/demo/search", json=body).json()["hits"]]
    assert "tuxpaint-animals/mammals/dogs/dog" in ids, ids


def test_composed_query_like_this_but_in_another_colour(house):
    """Query = an item in colour A plus "in B instead of A"; a hit is the same item in colour B at
    rank 1. Held-out items: the demo uses the Fashion-MNIST test split."""
    from housedata.sets import fashion_mnist

    _, labels = fashion_mnist("test")
    images = [int(i) for c in range(10) for i in np.flatnonzero(labels == c)[:10]]  # in the demo
    rng = np.random.default_rng(0)
    hits = 0
    for image in images:
        a, b = rng.choice(len(TINTS), size=2, replace=False)
        body = {"query": {"id": f"fmnist-{image}-{TINTS[a]}"}, "k": 1,
                "modification": f"in {TINTS[b]} instead of {TINTS[a]}"}  # fmt: skip
        top = house.post("/collections/demo/search", json=body).json()["hits"][0]["id"]
        hits += top == f"fmnist-{image}-{TINTS[b]}"
    rate = hits / len(images)
    print(f"composed query rank-1 rate: {rate:.3f} over {len(images)} queries")
    assert rate >= 0.70


def test_classify_and_embeddings_with_the_house_model(house):
    import base64
    import io

    from PIL import Image

    from housedata.sets import fashion_mnist, tint

    grey, labels = fashion_mnist("test")
    idx = int(np.flatnonzero(labels == 7)[0])  # a sneaker
    buf = io.BytesIO()
    Image.fromarray(tint(grey[idx], "blue")).save(buf, "PNG")
    img = base64.b64encode(buf.getvalue()).decode()
    body = {"input": {"image": img}, "labels": ["dress", "sneaker", "bag", "coat"]}
    r = house.post("/classify", json=body).json()
    assert r["activation"] == "sigmoid" and r["scores"][0]["label"] == "sneaker"
    e = house.post("/v1/embeddings", json={"input": "a blue sneaker", "model": "house"}).json()
    assert len(e["data"][0]["embedding"]) == 256
