"""The one embedding pipeline (runtime/pipeline.py) over a tiny random-weight CLIP: batched
results equal single-input results and keep their order across modalities, a mixed batch costs one
model call per tower, fused inputs' parts join their modality's batch, and the videos of several
items go to the image batcher in one submission."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
from PIL import Image

from runtime import inputs as I
from runtime.container import Runtime
from runtime.settings import Settings


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _gif(colours: list[tuple[int, int, int]], seconds_per_frame: float = 1.0) -> bytes:
    """An animated GIF (a video format the service takes), one flat frame per colour."""
    frames = [Image.new("RGB", (32, 32), c) for c in colours]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:],
                   duration=int(seconds_per_frame * 1000), loop=0)  # fmt: skip
    return buf.getvalue()


@pytest.fixture
def rt(tiny_clip_dir, tmp_path):
    s = Settings.load({}, model=f"hf:{tiny_clip_dir}", data_dir=tmp_path / "data", demo=False,
                      max_wait_ms=20)  # fmt: skip
    return Runtime(s)


def run(rt: Runtime, work):
    async def go():
        await rt.start()
        try:
            return await work()
        finally:
            await rt.stop()

    return asyncio.run(go())


def count_calls(monkeypatch, obj, name: str) -> list:
    calls, real = [], getattr(obj, name)

    def spy(batch, *a, **kw):
        calls.append(len(batch))
        return real(batch, *a, **kw)

    monkeypatch.setattr(obj, name, spy)
    return calls


def mixed(sample_images) -> list:
    return [
        I.Text("a red dress"),
        I.Image(_png(sample_images[0]), "image 0"),
        I.Video(_gif([(200, 20, 20), (20, 20, 200), (20, 200, 20)]), "video 0"),
        I.Text("a blue bag"),
        I.Multi({"text": I.Text("a shoe"), "image": I.Image(_png(sample_images[1]), "m image")},
                "multi 0"),
        I.Image(_png(sample_images[2]), "image 1"),
        I.Vector([0.5] * 8, "vector 0"),
    ]  # fmt: skip


def test_batched_results_equal_single_results_in_order(rt, sample_images):
    inputs = mixed(sample_images)
    inputs[-1] = I.Vector([0.5] * rt.encoder.dim, "vector 0")

    async def work():
        together = await rt.pipeline.embed(inputs)
        alone = [(await rt.pipeline.embed([x]))[0] for x in inputs]
        return together, alone

    together, alone = run(rt, work)
    assert len(together) == len(inputs)
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_allclose(a.vector, b.vector, atol=1e-5)
    assert together[0].n_tokens > 0 and together[1].image is not None
    assert together[2].video is not None and len(together[2].segments) >= 1
    assert together[4].parts.keys() == {"text", "image"} and together[4].image is not None
    np.testing.assert_allclose(together[6].vector, np.full(rt.encoder.dim, 0.5), atol=0)


def test_a_mixed_batch_is_one_model_call_per_tower(rt, sample_images, monkeypatch):
    texts = count_calls(monkeypatch, rt.encoder, "encode_text")
    images = count_calls(monkeypatch, rt.encoder, "embed_images")
    inputs = mixed(sample_images)[:-1]
    run(rt, lambda: rt.pipeline.embed(inputs))
    assert texts == [3]  # two texts and the fused input's text part
    assert images == [2 + 1 + 3]  # two images, the fused input's picture, three video frames


def test_videos_of_several_items_go_in_one_image_submission(rt, monkeypatch):
    submits = []
    image_batcher = rt.towers.batchers["image"]
    real = image_batcher.submit

    def spy(batch, *a):
        submits.append(len(batch))
        return real(batch, *a)

    monkeypatch.setattr(image_batcher, "submit", spy)
    videos = [I.Video(_gif([(40 * i + 20, 0, 0), (0, 40 * i + 20, 90)]), f"item '{i}'")
              for i in range(3)]  # fmt: skip
    out = run(rt, lambda: rt.pipeline.embed(videos))
    assert [len(r.clip.video.frames) for r in out] == [2, 2, 2]
    assert submits == [6]


def test_the_first_failing_input_names_itself(rt, sample_images):
    from encoders import InputError

    inputs = [I.Text("fine"), I.Image(b"not an image", "item 'a'"), I.Image(b"nor", "item 'b'")]
    with pytest.raises(InputError, match="item 'a'"):
        run(rt, lambda: rt.pipeline.embed(inputs))
