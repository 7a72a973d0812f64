"""The fusion-fashion eval suite on the shipped house model and a slice of Fashion-MNIST."""

from __future__ import annotations

import pytest

from encoders import load_encoder
from encoders.house import default_house_dir
from fusion.classifier import KINDS
from housedata.sets import FASHION_DIR
from training.evaluate import evaluate
from training.metrics import metric_rows

pytestmark = pytest.mark.skipif(
    not (default_house_dir() / "model.safetensors").is_file() or not FASHION_DIR.exists(),
    reason="needs models/house and the Debian package dataset-fashion-mnist",
)


def test_fusion_fashion_reports_calibration_beside_its_floor():
    res = evaluate(load_encoder("house", device="cpu"), ("fusion-fashion",), limit=200)
    m = res["suites"]["fusion-fashion"]
    assert (m["n_test"], m["n_calibration_train"], m["chance@1"]) == (200, 400, 0.1)
    for kind in KINDS:
        assert m[f"{kind}_4k_top1"] > 0.6  # the house model separates Fashion-MNIST classes
        assert 0 < m[f"{kind}_4k_ece_floor"] < 0.1
        assert 0 <= m[f"{kind}_4k_ece_after"] < 0.2 and m[f"{kind}_4k_temperature"] > 0
    rows = {(r[1]): r for r in metric_rows(res)}
    assert rows["probe_16_per_class_top1"][3:] == (0.1, m["zero_shot_top1"])
    assert rows["early_4k_ece_after"][3:] == (None, None)


def test_head_figures_put_the_head_beside_equal_weights():
    from tests.fusion.test_head import things
    from training.fusion.eval import head_figures

    v, _, groups = things(50, 4)  # the third part ("recording") is noise
    test = groups >= 30
    m = head_figures("toy", v, groups, test, seed=0)
    assert (m["toy_train_examples"], m["toy_test_examples"], m["toy_test_stamps"]) == (120, 80, 20)
    assert m["toy_chance@1"] == 1 / 20
    assert m["toy_kept_epoch"] > 0
    assert m["toy_caption@1"] > m["baseline:toy_caption@1"] + 0.1
    assert m["toy_weight_recording"] < 0.3 < m["toy_weight_caption"]
    rows = {r[1]: r for r in metric_rows({"suites": {"fusion-head": m}})}
    assert rows["toy_mean@1"][3:] == (1 / 20, m["baseline:toy_mean@1"])


def test_the_head_suite_needs_an_audio_tower(tiny_clip_dir):
    from training.evaluate import default_suites

    enc = load_encoder(f"hf:{tiny_clip_dir}")
    assert "fusion-head" not in default_suites(enc)
    with pytest.raises(ValueError) as e:
        evaluate(enc, ("fusion-head",))
    assert str(e.value) == (
        f"model 'hf:{tiny_clip_dir}' has no audio tower for the audio-speech, audio-sounds, "
        "video-sound-moments, fusion-head suites"
    )
