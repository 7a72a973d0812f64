"""The hybrid-search eval suite: its catalog and query groups, and the figures that do not depend
on the model (the keyword side's), through the registry that `jointspace eval` reads."""

from __future__ import annotations

import pytest

from housedata.sets import FASHION_DIR

pytestmark = pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="needs dataset-fashion-mnist")


def test_visual_words_share_no_word_with_the_titles():
    from cli.search_suite import _visual_words

    assert _visual_words(7) == ["trainer", "running shoe"]  # sneaker
    assert _visual_words(5) == [] and _visual_words(9) == [] and _visual_words(6) == []


def test_suite_through_the_registry(tiny_clip_dir):
    import cli.search_suite  # noqa: F401 - registers the suite
    from encoders import load_encoder
    from training.evaluate import evaluate, known_suites

    assert known_suites()[-1] == "hybrid-search"
    enc = load_encoder(f"hf:{tiny_clip_dir}", device="cpu")
    res = evaluate(enc, ("hybrid-search",), limit=300)["suites"]["hybrid-search"]
    assert res["catalog"] == 300
    assert (res["code_queries"], res["rare-word_queries"]) == (100, 100)
    assert res["code_keyword@10"] == 1.0 and res["rare-word_keyword@10"] == 1.0
    assert res["visual_keyword@10"] == 0.0  # no title holds a visual query's words
    assert set(res) >= {f"{g}_{m}@10" for g in ("code", "rare-word", "visual",
                                                "visual-shared-words")
                        for m in ("vector", "keyword", "hybrid", "hybrid-rrf")}  # fmt: skip
