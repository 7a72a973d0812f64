"""The temporal head's training and the video eval suites, small: a few steps on a few dozen
rendered clips lower the loss and write files the house encoder loads; the clips and captions are
what the suites promise (order-dependent wording, held-out pairs never in training); the suites
run end to end and report the figures beside chance and mean pooling."""

from __future__ import annotations

import numpy as np
import pytest

from encoders import load_encoder
from encoders.house import default_house_dir
from encoders.temporal import load_temporal_head
from housedata.clips import ClipSpec, render
from housedata.sets import FASHION_DIR
from training.temporal.data import HELD_OUT_PAIRS, caption, reversed_spec, sample_specs, train_pairs
from training.temporal.train import TemporalTrainConfig, clip_set, save_run, train_temporal

pytestmark = pytest.mark.skipif(
    not (default_house_dir() / "model.safetensors").is_file() or not FASHION_DIR.exists(),
    reason="needs models/house and the Debian package dataset-fashion-mnist",
)


@pytest.fixture(scope="module")
def house():
    return load_encoder("house", device="cpu")


def test_clips_change_colour_over_time_and_captions_say_the_order():
    grey = np.full((28, 28), 200, np.uint8)
    frames = render(grey, ClipSpec(0, 3, "red", "blue", "still", 8))
    assert frames.shape == (8, 32, 32, 3)
    first, last = frames[0, 16, 16], frames[-1, 16, 16]
    assert first[0] > 150 and first[2] < 50 and last[2] > 150 and last[0] < 50
    spec = ClipSpec(0, 3, "red", "blue", "left", 8)
    rng = np.random.default_rng(0)
    assert caption(spec, rng, "a {item} turning from {a} to {b}.") in (
        "a dress turning from red to blue.", "a gown turning from red to blue.")  # fmt: skip
    assert reversed_spec(spec) == ClipSpec(0, 3, "blue", "red", "left", 8)
    held = {frozenset(p) for p in HELD_OUT_PAIRS}
    assert len(held) == 8 and not held & {frozenset(p) for p in train_pairs()}
    specs = sample_specs(np.arange(10) % 10, 200, train_pairs(), 0)
    assert not any(frozenset((s.start, s.end)) in held for s in specs)


def test_a_few_steps_train_a_head_the_house_model_loads(house, tmp_path):
    cfg = TemporalTrainConfig(clips=48, steps=6, batch_size=16, warmup=2)
    losses = []
    head, log = train_temporal(house, cfg, lambda step, loss: losses.append(loss))
    assert len(losses) == 6 and log["last_loss"] > 0
    save_run(head, log, tmp_path / "temporal")
    back = load_temporal_head(tmp_path / "temporal", house.dim)
    data = clip_set(house, "test", 4, seed=1)
    spans = [f[~p] for f, p in zip(data.frames, data.pad, strict=True)]
    np.testing.assert_allclose(back.pool(spans), head.pool(spans), atol=1e-5)
    assert sorted(p.name for p in (tmp_path / "temporal").iterdir()) == [
        "config.json", "model.safetensors", "training.json"]  # fmt: skip


def test_video_suites_report_beside_chance_and_mean_pooling(house):
    from training.evaluate import evaluate
    from training.metrics import metric_rows

    res = evaluate(house, ("video-order", "video-moments"), limit=12)
    rows = {(s, m): (v, c, b) for s, m, v, c, b in metric_rows(res)}
    value, chance, base = rows[("video-order", "order_top1")]
    assert chance == 0.5 and 0 <= base <= 1
    assert value >= 0.75  # the shipped head on 12 held-out clips (0.948 on 400)
    value, chance, base = rows[("video-moments", "moment_top1")]
    assert 0.2 < chance < 0.5 and value >= 0.8
    _, chance, _ = rows[("video-moments", "moment_interval_top1")]
    assert chance == res["suites"]["video-moments"]["chance_interval@1"]
