"""The generation suite on the shipped decoder, cut down (6 prompts, 4 steps): every figure is
there and in range, chance is the suite's own, the baseline is the no-prior figure; and how the
eval table reads a metric's own chance by its prefix."""

from __future__ import annotations

import pytest

from encoders.house import default_house_dir
from generation.decoder import DEFAULT_GUIDANCE, has_decoder
from housedata.sets import FASHION_DIR, TUXPAINT_DIR
from training.metrics import metric_rows


def test_a_metric_named_with_a_prefix_takes_that_prefix_chance():
    res = {"suites": {"s": {"tuxpaint_drawn_caption@1": 0.5, "tuxpaint_chance@1": 0.01,
                            "item@1": 0.9, "chance_item@1": 0.1, "chance@1": 0.02,
                            "baseline:item@1": 0.7, "both@1": 0.3}}}  # fmt: skip
    rows = {m: (v, c, b) for _, m, v, c, b in metric_rows(res)}
    assert rows == {"tuxpaint_drawn_caption@1": (0.5, 0.01, None), "item@1": (0.9, 0.1, 0.7),
                    "both@1": (0.3, 0.02, None)}  # fmt: skip


@pytest.mark.skipif(
    not has_decoder(default_house_dir() / "decoder") or not FASHION_DIR.exists()
    or not TUXPAINT_DIR.exists(), reason="needs models/house/decoder and the data packages",
)  # fmt: skip
def test_the_suite_on_the_shipped_decoder():
    from encoders import load_encoder
    from training.decoder.eval import generation

    res = generation(load_encoder("house"), limit=6, steps=4)
    assert res["prompts"] == 6 and res["pictures"] == 6 and res["composed_pictures"] == 6
    assert res["chance_item@1"] == 0.1 and res["chance_colour@1"] == pytest.approx(1 / 9)
    for key in ("item@1", "colour@1", "both@1", "baseline:item@1", "real_item@1",
                "composed_prior_w0.5_colour@1", "composed_text_w0.8_item@1", "recon_item@1"):  # fmt: skip
        assert 0.0 <= res[key] <= 1.0 and res[key] * 6 == pytest.approx(round(res[key] * 6)), key
    assert -1 <= res["cosine_to_prompt"] <= 1 and res["real_item@1"] >= 0.5
    assert (res["steps"], res["guidance"]) == (4, DEFAULT_GUIDANCE)
