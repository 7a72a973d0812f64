"""The learned fusion head: equal weights untrained, learns to distrust a noisy part, keeps equal
weights when it cannot beat them, masks absent parts, its files, its registry and its refusals."""

from __future__ import annotations

import numpy as np
import pytest

from fusion.compose import fuse
from fusion.head import (
    FusionHead,
    HeadConfig,
    HeadError,
    HeadNet,
    equal_weights,
    leave_one_out_recall,
    train_head,
)
from fusion.registry import Unknown, head_registry

PARTS = ("text", "image", "audio")
DIM = 16


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def things(n: int, copies: int, seed: int = 0, audio_noise: bool = True):
    """`n` things, `copies` examples each: text and image are noisy views of the thing's
    vector; audio is the thing's vector too, or (audio_noise) pure noise, a new draw per copy."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(size=(n, DIM))
    groups = np.repeat(np.arange(n), copies)
    c = centre[groups]
    text = unit(c + 0.8 * rng.normal(size=c.shape))
    image = unit(c + 0.8 * rng.normal(size=c.shape))
    audio = unit(rng.normal(size=c.shape) if audio_noise else c + 0.8 * rng.normal(size=c.shape))
    v = np.stack([text, image, audio], axis=1)
    return v, np.ones(v.shape[:2], bool), groups


def test_untrained_it_is_the_equal_weight_fusion():
    head = FusionHead(HeadNet(3, DIM), PARTS, DIM)
    v, present, _ = things(5, 2)
    present[0, 2] = False
    np.testing.assert_allclose(head.apply(v, present), equal_weights(v, present), atol=1e-6)
    want = fuse({"text": v[0, 0], "image": v[0, 1]})
    np.testing.assert_allclose(head.fuse({"text": v[0, 0], "image": v[0, 1]}), want, atol=1e-6)


def test_it_learns_to_distrust_a_part_that_is_noise():
    v, present, groups = things(60, 4)
    head = train_head(v, present, PARTS, groups, HeadConfig(epochs=30, batch=64))
    test_v, test_p, test_g = things(40, 2, seed=1)  # other things entirely
    equal = leave_one_out_recall(equal_weights, test_v, test_p, test_g)
    learned = leave_one_out_recall(head.apply, test_v, test_p, test_g)
    assert head.info["best_epoch"] > 0
    assert head.info["validation_recall_head"] > head.info["validation_recall_equal"]
    assert learned[0] > equal[0] + 0.15 and learned[1] > equal[1] + 0.15  # text, image
    weights = head.part_weights(test_v, test_p).mean(axis=0)
    assert weights[2] < 0.2 and weights[0] > 0.4 and weights[1] > 0.4  # the noise weighs little


def test_it_keeps_equal_weights_when_no_epoch_beats_them():
    v, present, groups = things(30, 2, audio_noise=False)
    v[:, 1] = v[:, 0]  # the image says exactly what the text says: nothing to learn
    v[:, 2] = v[:, 0]
    head = train_head(v, present, PARTS, groups, HeadConfig(epochs=5))
    assert head.info["validation_recall_equal"] == 1.0
    assert head.info["best_epoch"] == 0
    np.testing.assert_allclose(head.apply(v, present), equal_weights(v, present), atol=1e-6)


def test_an_absent_part_does_not_count():
    v, present, groups = things(40, 3)
    head = train_head(v, present, PARTS, groups, HeadConfig(epochs=5))
    present[:, 2] = False
    a = head.apply(v, present)
    v[:, 2] = 1e3  # whatever sits in an absent slot
    np.testing.assert_allclose(head.apply(v, present), a, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    one = head.fuse({"image": v[0, 1]})
    assert one.shape == (DIM,) and np.isfinite(one).all()


def test_files_and_registry(tmp_path):
    v, present, groups = things(40, 3)
    head = train_head(v, present, PARTS, groups, HeadConfig(epochs=5))
    reg = head_registry(tmp_path)
    status = reg.save("shop", head, model="house", source="toy")
    assert (status["status"], status["parts"], status["model"]) == ("ready", list(PARTS), "house")
    assert status["metrics"]["best_epoch"] == head.info["best_epoch"]
    again = head_registry(tmp_path).load("shop", "house")
    np.testing.assert_allclose(again.apply(v, present), head.apply(v, present), atol=1e-6)
    with pytest.raises(HeadError) as e:
        reg.load("shop", "open_clip:RN50@openai")
    assert str(e.value) == (
        "fusion head 'shop' was trained on vectors from 'house', not 'open_clip:RN50@openai'"
    )
    with pytest.raises(Unknown, match=r"^no fusion head named 'nope'$"):
        reg.load("nope", "house")
    with pytest.raises(HeadError, match=r"^bad fusion head name '\.\./x'"):
        reg.check_name("../x")
    (tmp_path / "fusion_heads" / "shop" / "head.safetensors").write_bytes(b"junk")
    with pytest.raises(HeadError, match=r"not a fusion head"):
        reg.load("shop", "house")


def test_refusals():
    v, present, groups = things(20, 2)
    head = FusionHead(HeadNet(2, DIM), ("text", "image"), DIM)
    with pytest.raises(HeadError, match=r"^the fusion head fuses text, image, not audio$"):
        head.fuse({"text": v[0, 0], "audio": v[0, 2]})
    with pytest.raises(HeadError, match=r"^the fusion head takes 16-d vectors, not 3-d$"):
        head.fuse({"text": np.ones(3)})
    with pytest.raises(HeadError, match=r"^the fusion head needs at least one part$"):
        head.fuse({})
    with pytest.raises(HeadError) as e:
        train_head(v[:18], present[:18], PARTS, groups[:18])
    assert str(e.value) == (
        "a fusion head learns from things with two or more parts: the data has 9, it needs at "
        "least 10"
    )
    with pytest.raises(HeadError, match=r"^a fusion head fuses two or more kinds of part"):
        train_head(v[:, :1], present[:, :1], ("text",), groups)
    bad = v.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(HeadError, match=r"^part vectors contain NaN or infinity$"):
        train_head(bad, present, PARTS, groups)
    alone = present.copy()
    alone[:, 1:] = False  # every example has one part: nothing to learn from
    with pytest.raises(HeadError, match=r"the data has 0, it needs at least 10$"):
        train_head(v, alone, PARTS, groups)
