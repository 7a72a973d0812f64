"""Fixed splits, tints and the Debian-packaged data sets."""

from __future__ import annotations

import numpy as np
import pytest

from housedata.sets import (
    COLOURS,
    FASHION_DIR,
    TUXPAINT_DIR,
    NotoEmoji,
    TuxPaintStamps,
    fashion_mnist,
    in_split,
    tint,
)

needs_fashion = pytest.mark.skipif(
    not FASHION_DIR.exists(), reason="Debian package dataset-fashion-mnist is not installed"
)
needs_tux = pytest.mark.skipif(
    not TUXPAINT_DIR.exists(), reason="Debian package tuxpaint-stamps-default is not installed"
)


def test_splits_are_fixed_disjoint_and_about_ten_percent():
    keys = [f"item-{i}" for i in range(5000)]
    test = {k for k in keys if in_split(k, "test")}
    train = {k for k in keys if in_split(k, "train")}
    assert test.isdisjoint(train) and len(test | train) == 5000
    assert 400 < len(test) < 600
    assert test == {k for k in reversed(keys) if in_split(k, "test")}
    assert test != {k for k in keys if in_split(k, "test", seed=1)}


def test_tint():
    grey = np.array([[0, 100, 255]], np.uint8)
    assert tint(grey, "white").tolist() == [[[0, 0, 0], [100, 100, 100], [255, 255, 255]]]
    assert tint(grey, "red")[0, 2].tolist() == [255, 26, 26]
    assert set(COLOURS) >= {"red", "blue", "green", "yellow"}


@needs_fashion
def test_fashion_mnist_splits():
    x, y = fashion_mnist("train")
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [6000] * 10
    x, y = fashion_mnist("test")
    assert x.shape == (10000, 28, 28)
    assert y[:5].tolist() == [9, 2, 1, 1, 6]


@needs_tux
def test_tuxpaint_stamps():
    train, test = TuxPaintStamps("train"), TuxPaintStamps("test")
    assert len(train) > 500 and len(test) > 40
    assert not {p for p, _ in train.items} & {p for p, _ in test.items}
    first = next(c for p, c in train.items if p.stem == "frog")
    assert first == "A frog."
    assert train[0].image.mode == "RGB"


@pytest.mark.skipif(
    not NotoEmoji.__init__.__defaults__[-1].exists(),
    reason="Debian package fonts-noto-color-emoji is not installed",
)
def test_noto_emoji():
    ds = NotoEmoji("test")
    assert len(ds) > 80
    names = [ds[i].caption for i in range(len(ds))]
    assert all(n == n.lower() and n for n in names)
    img = NotoEmoji().render("\U0001f600")
    assert img is not None and img.size[0] > 90
    assert NotoEmoji().render("\ue000") is None  # private use: nothing drawn
