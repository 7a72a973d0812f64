"""Trained fusion classifiers: each strategy learns a separable problem, predicts with a modality
missing, calibration lowers the ECE of an over-confident model, bad data is refused, and the
registry keeps classifiers stamped with their model across processes."""

from __future__ import annotations

import numpy as np
import pytest

from fusion.classifier import (
    Classifier,
    ClassifierError,
    Examples,
    ece,
    ece_floor,
    fit,
    fit_temperature,
    softmax,
)
from fusion.registry import Registry, Unknown

MODS = ("text", "image", "audio")


def toy(n: int = 300, d: int = 16, classes: int = 3, noise: float = 0.3, seed: int = 0):
    """Separable: each modality's vector is its class centre plus a little noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centres = rng.normal(size=(len(MODS), classes, d))
    v = centres[:, y].transpose(1, 0, 2) + noise * rng.normal(size=(n, len(MODS), d))
    v /= np.linalg.norm(v, axis=2, keepdims=True)
    return Examples(v.astype(np.float32), np.ones((n, len(MODS)), bool), y,
                    [f"c{i}" for i in range(classes)], MODS)  # fmt: skip


@pytest.mark.parametrize("kind", ["early", "late", "attention"])
def test_each_fusion_learns_a_separable_problem_and_survives_a_missing_modality(kind):
    ex = toy()
    clf = fit(ex, kind, epochs=60)
    assert clf.info["validation_accuracy"] == 1.0
    p = clf.predict_proba(ex.vectors, ex.present)
    assert (p.argmax(1) == ex.labels).all()
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-6)
    for m in range(len(MODS)):  # each modality missing in turn
        present = ex.present.copy()
        present[:, m] = False
        assert (clf.predict_proba(ex.vectors, present).argmax(1) == ex.labels).all()
    only_audio = np.zeros_like(ex.present)
    only_audio[:, 2] = True
    assert (clf.predict_proba(ex.vectors, only_audio).argmax(1) == ex.labels).mean() == 1.0


def test_a_linear_probe_takes_one_modality():
    ex = toy()
    assert fit(ex.only("image"), "linear", epochs=60).info["validation_accuracy"] == 1.0
    with pytest.raises(ClassifierError) as e:
        fit(ex, "linear")
    assert str(e.value) == "a linear probe takes one modality: use early, late or attention"


def test_temperature_scaling_lowers_the_ece_of_an_over_confident_model():
    """Labels drawn from softmax(z) are calibrated by z itself; logits 4z are far too sure, and
    the fitted temperature should find the 4 back and the calibration with it."""
    rng = np.random.default_rng(1)
    z = 1.5 * rng.normal(size=(6000, 5))
    p = softmax(z)
    y = np.array([rng.choice(5, p=row) for row in p])
    logits = 4.0 * z
    before = ece(softmax(logits[3000:]), y[3000:])
    t = fit_temperature(logits[:3000], y[:3000])
    after = ece(softmax(logits[3000:] / t), y[3000:])
    assert 3.5 < t < 4.5 and before > 0.25 and after < 0.05


def test_ece_of_a_calibrated_toy_is_zero_and_of_a_wrong_sure_one_is_one():
    y = np.array([0, 1])
    assert ece(np.array([[1.0, 0.0], [0.0, 1.0]]), y) == 0.0
    assert ece(np.array([[0.0, 1.0], [1.0, 0.0]]), y) == 1.0


def test_the_ece_floor_is_what_a_calibrated_model_shows_on_that_many_examples():
    """Certain predictions are always right when calibrated: no floor. At confidence 0.5 over
    n examples in one bin the gap is |mean of n coin flips - 0.5|, whose mean shrinks as
    1/sqrt(n) (about 0.4/sqrt(n))."""
    sure = np.tile([[1.0, 0.0]], (50, 1))
    assert ece_floor(sure) == 0.0
    half = np.tile([[0.5, 0.5]], (100, 1))
    small, large = ece_floor(half), ece_floor(np.tile(half, (16, 1)))
    assert 0.03 < small < 0.05 and 0.008 < large < 0.012
    assert ece_floor(half) == small  # seeded


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda ex: Examples(ex.vectors, ex.present, ex.labels * 0, ["only"], MODS),
         "a classifier needs at least two labels, got 1: ['only']"),
        (lambda ex: Examples(ex.vectors, ex.present, ex.labels, [*ex.classes, "ghost"], MODS),
         "label(s) with no examples: ghost"),
        (lambda ex: Examples(ex.vectors, ex.present & False, ex.labels, ex.classes, MODS),
         "every example needs at least one part (text, image or audio)"),
        (lambda ex: Examples(ex.vectors * np.nan, ex.present, ex.labels, ex.classes, MODS),
         "labelled vectors contain NaN or infinity"),
    ],
)  # fmt: skip
def test_bad_labelled_data_is_refused(change, message):
    with pytest.raises(ClassifierError) as e:
        fit(change(toy(30)), "late", epochs=1)
    assert str(e.value) == message


def test_unknown_fusion_and_inputs_without_parts_are_refused():
    with pytest.raises(ClassifierError, match=r"^fusion must be one of early, late, attention"):
        fit(toy(30), "median")
    clf = fit(toy(30), "late", epochs=1)
    with pytest.raises(ClassifierError) as e:
        clf.predict_proba(np.zeros((1, 3, 16)), np.zeros((1, 3), bool))
    assert str(e.value) == "an input needs at least one of text, image, audio for this classifier"


def test_the_registry_keeps_classifiers_stamped_with_their_model(tmp_path):
    ex = toy()
    clf = fit(ex, "attention", epochs=30)
    reg = Registry(tmp_path)
    status = reg.save("kinds", clf, model="house", source="toy")
    assert (status["status"], status["classes"], status["modalities"]) == (
        "ready",
        ["c0", "c1", "c2"],
        list(MODS),
    )
    again = Registry(tmp_path).load("kinds", "house")  # as another process would
    assert isinstance(again, Classifier) and again.temperature == clf.temperature
    np.testing.assert_allclose(
        again.predict_proba(ex.vectors, ex.present), clf.predict_proba(ex.vectors, ex.present),
        atol=1e-6,
    )  # fmt: skip
    with pytest.raises(ClassifierError) as e:
        reg.load("kinds", "open_clip:RN50@openai")
    assert str(e.value) == (
        "classifier 'kinds' was trained on vectors from 'house', not 'open_clip:RN50@openai'"
    )
    with pytest.raises(Unknown, match=r"^no classifier named 'nope'$"):
        reg.status("nope")
    reg.set_status("half", status="training")
    assert Registry(tmp_path).interrupted() == ["half"]
    assert reg.status("half")["status"] == "failed"
    assert reg.status("half")["error"] == "the service stopped while it was training"
    with pytest.raises(ClassifierError, match=r"^bad classifier name '\.\./x'"):
        reg.set_status("../x", status="training")


def test_the_eval_suites_helpers():
    from training.fusion.eval import probe_accuracy, without

    ex = toy(90)
    train = ex.subset(np.flatnonzero(ex.labels != 2)).only("image")  # no example of c2
    test = ex.only("image")
    assert probe_accuracy(train, test, seed=0) == pytest.approx(2 / 3)  # every c2 counts wrong
    no_text = without(ex, "text")
    assert no_text.present[:, 0].sum() == 0 and no_text.present[:, 1:].all()
