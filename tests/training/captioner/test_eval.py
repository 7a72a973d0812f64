"""The captioning suite: how captions are read (items, colours, references) and scored, and the
suite run on a house model with a random captioner over the tiny language model."""

from __future__ import annotations

import pytest

from housedata.sets import FASHION_DIR, TUXPAINT_DIR
from training.captioner.eval import _references, named_colour, named_items, scores


def test_items_are_read_longest_wording_first():
    assert named_items("a red t-shirt.") == {0}
    assert named_items("a blue button-up shirt.") == {6}
    assert named_items("a shirt and a boot") == {6, 9}
    assert named_items("a green running shoe.") == {7}
    assert named_items("a kettle.") == set()


def test_colours_and_references():
    assert named_colour("a pink bag.") == {"pink"}
    assert named_colour("a reddish bag.") == set()
    assert _references("a red tee.", "fashion") == ["a red t-shirt.", "a red top.", "a red tee."]
    assert _references("a horse.", "tuxpaint") == ["a horse."]


def test_scores_of_identical_and_disjoint_captions():
    refs = [["a red ankle boot"], ["a small green bag"]]
    same = scores(refs, ["a red ankle boot.", "A small green bag"])
    assert same["bleu4"] == pytest.approx(1.0, abs=1e-6) and same["bleu1"] == pytest.approx(1.0)
    short = scores([["a red boot"]], ["a red boot."])  # no 4-grams at all: BLEU-4 is near 0
    assert short["bleu1"] == pytest.approx(1.0) and short["bleu4"] < 0.05
    other = scores(refs, ["the cat sat", "on the mat"])
    assert other["bleu4"] < 1e-6 and other["cider"] == 0.0 and same["cider"] > other["cider"]


@pytest.mark.skipif(
    not FASHION_DIR.exists() or not TUXPAINT_DIR.exists(),
    reason="needs the Debian packages dataset-fashion-mnist and tuxpaint-stamps-default",
)
def test_the_suite_runs_beside_its_baselines(captioned_dir):
    from encoders import load_encoder
    from training.evaluate import evaluate
    from training.metrics import metric_rows

    res = evaluate(load_encoder(f"house:{captioned_dir}", device="cpu"), ("captioning",), limit=30)
    m = res["suites"]["captioning"]
    assert m["n_fashion"] == 30 and m["n_pictures"] > 100 and m["n_sounds"] > 5
    assert m["baseline:fashion_item_top1"] > 0.5  # the nearest training caption names the item
    rows = {r[1]: r for r in metric_rows(res)}
    assert rows["fashion_item_top1"][3] == 0.1 and rows["fashion_colour_top1"][3] == 1 / 9
    assert rows["cider"][4] == m["baseline:cider"]
    assert len(m["examples"]) >= 10 and " -> " in m["examples"][0]
