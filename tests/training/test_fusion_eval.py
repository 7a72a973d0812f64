"""The fusion-fashion eval suite on the shipped house model and a slice of Fashion-MNIST."""

from __future__ import annotations

import pytest

from encoders import load_encoder
from encoders.house import default_house_dir
from fusion.classifier import KINDS
from training.data import FASHION_DIR
from training.eval import evaluate, metric_rows

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
