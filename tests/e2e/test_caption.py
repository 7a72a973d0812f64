"""POST /caption: a house model copied with a captioner whose language model is a tiny random
one (structure, determinism, batching, every refusal), and the shipped captioner end to end."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from encoders.house import default_house_dir
from generation.captioner import has_captioner


@pytest.fixture
def cap(make_client, captioned_dir):
    """A generous queue-wait budget: the first caption loads the language model."""
    with make_client(f"house:{captioned_dir}", max_queue_wait_ms=60_000) as c:
        yield c


def post(client, body):
    return client.post("/caption", json=body)


def test_captions_for_images_and_a_fused_input(cap, png):
    items = [{"type": "image", "image": png((200, 20, 20))}, {"type": "image", "image": png((20, 20, 200))},
             {"type": "multi", "text": "a red boot", "image": png((200, 20, 20))}]  # fmt: skip
    r = post(cap, {"input": items, "max_tokens": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"].startswith("house:") and [d["index"] for d in body["data"]] == [0, 1, 2]
    assert all(isinstance(d["caption"], str) and d["caption"] for d in body["data"])
    usage = body["usage"]
    assert usage["prompt_tokens"] == 12 and 3 <= usage["completion_tokens"] <= 15
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    again = post(cap, {"input": items, "max_tokens": 5}).json()
    assert again["data"] == body["data"]  # greedy decoding is deterministic
    alone = [post(cap, {"input": [x], "max_tokens": 5}).json()["data"][0]["caption"] for x in items]
    assert alone == [d["caption"] for d in body["data"]]  # batched == one by one
    metrics = cap.get("/metrics").text
    name = cap.app.state.runtime.served.default.id
    assert f'jointspace_batch_size_count{{modality="caption",model="{name}"}}' in metrics


def test_an_audio_item_is_captioned(cap, tone):
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, tone(1.0, 16_000), 16_000, format="WAV")
    clip = "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode()
    r = post(cap, {"input": [{"type": "audio", "audio": clip}], "beams": 2, "max_tokens": 4})
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"input": [{"type": "text", "text": "a cat"}]}, "input 0 is a text: there is nothing to caption"),
        ({"input": [{"type": "image", "image": "PNG"}], "max_tokens": 65}, "max_tokens 65 is over the limit of 64"),
        ({"input": [{"type": "image", "image": "PNG"}], "beams": 5}, "beams 5 is over the limit of 4"),
        ({"input": [{"type": "image", "image": "bm90IGFuIGltYWdl"}]}, "input 0: not a supported image"),
    ],
)  # fmt: skip
def test_refusals(cap, png, body, message):
    body = json.loads(json.dumps(body).replace('"PNG"', json.dumps(png())))
    r = post(cap, body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["message"].startswith(message)


def test_schema_refusals(cap):
    for body in ({"input": []}, {"input": [{"type": "image", "image": "x"}], "max_tokens": 0}):
        r = post(cap, body)
        assert r.status_code == 422 and r.json()["error"]["type"] == "invalid_request"


def test_a_model_without_a_captioner_is_refused(client, png):
    r = post(client, {"input": [{"type": "image", "image": png()}]})
    assert r.status_code == 422
    assert r.json()["error"] == {
        "type": "no_captioner", "code": 422,
        "message": f"model '{client.app.state.runtime.encoder.name}' has no captioner; models with "
        "one: 'house', and model directories with a captioner (model:DIR; train one: jointspace "
        "train --target captioner --model DIR --data SRC)",
    }  # fmt: skip


SHIPPED = default_house_dir() / "captioner"


@pytest.mark.skipif(not has_captioner(SHIPPED), reason="models/house/captioner is not built")
def test_the_shipped_captioner_names_a_tinted_garment(make_client):
    from housedata.sets import FASHION_DIR, fashion_mnist, tint
    from training.captioner.eval import named_colour, named_items

    if not FASHION_DIR.exists():
        pytest.skip("needs the Debian package dataset-fashion-mnist")
    grey, labels = fashion_mnist("test")
    items, want = [], []
    for i, colour in ((0, "red"), (1, "blue"), (2, "green")):
        buf = io.BytesIO()
        Image.fromarray(tint(grey[i], colour)).save(buf, "PNG")
        items.append({"type": "image", "image": base64.b64encode(buf.getvalue()).decode()})
        want.append(({int(labels[i])}, {colour}))
    with make_client("house", max_queue_wait_ms=120_000) as c:
        r = c.post("/caption", json={"input": items})
    assert r.status_code == 200, r.text
    got = [(named_items(d["caption"]), named_colour(d["caption"])) for d in r.json()["data"]]
    assert got == want, r.json()["data"]
    assert np.all([d["caption"].endswith(".") for d in r.json()["data"]])


def test_a_video_item_is_captioned_with_a_caption_per_segment(cap):
    from housedata.writer import write_video

    frames = [np.full((32, 32, 3), c, np.uint8) for c in ((200, 20, 20), (20, 20, 200))
              for _ in range(16)]  # fmt: skip
    mp4 = "data:video/mp4;base64," + base64.b64encode(write_video(frames, 8, "MP4")).decode()
    item = {"type": "video", "video": mp4}
    r = post(cap, {"input": [item, {"type": "image", "image": _png_of(frames[0])}],
                   "max_tokens": 5})  # fmt: skip
    assert r.status_code == 200, r.text
    video, image = r.json()["data"]
    assert set(image) == {"index", "caption"} and image["caption"]
    assert [(s["start"], s["end"]) for s in video["segments"]] == [(0.0, 4.0)]
    # each caption is the one its vector gets alone: the whole video's and its segment's
    emb = cap.post("/embed", json={"videos": [mp4]}).json()["embeddings"][0]
    vecs = np.array([emb["vector"], emb["segments"][0]["vector"]], np.float32)
    want = cap.app.state.runtime.captions.captioner().caption_counted(vecs, 5, 1)
    assert [video["caption"], video["segments"][0]["caption"]] == [w[0] for w in want]
    r = post(cap, {"input": [item], "max_tokens": 5, "segments": 1})
    assert r.status_code == 422


def _png_of(a: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
