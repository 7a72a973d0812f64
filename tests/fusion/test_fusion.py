"""Composed queries and zero-shot scores: exact arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from fusion import Term, class_matrix, compose, parse_modification, scores


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("blue", [Term("blue", 0.8)]),
        ("in blue", [Term("blue", 0.8)]),
        ("but in Blue.", [Term("blue", 0.8)]),
        ("in blue instead of red", [Term("blue", 0.8), Term("red", -0.8)]),
        ("striped rather than plain", [Term("striped", 0.8), Term("plain", -0.8)]),
        ("but not red", [Term("red", -0.8)]),
        ("without stripes", [Term("stripes", -0.8)]),
        ("", []),
    ],
)
def test_parse_modification(text, terms):
    assert parse_modification(text) == terms


def test_compose_is_weighted_sum_renormalised():
    q = np.array([1.0, 0.0, 0.0])
    t = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    out = compose(q, t, [1.0, -1.0])
    np.testing.assert_allclose(out, np.array([1, 1, -1]) / np.sqrt(3), rtol=1e-6)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(compose(q, np.zeros((0, 3)), []), q.astype(np.float32))
    with pytest.raises(ValueError, match="cancel the query out"):
        compose(q, q[None], [-1.0])


def test_class_matrix_and_scores():
    prompts = np.array([[1, 0], [1, 0], [0, 1], [0.6, 0.8]], np.float32)  # 2 classes x 2 prompts
    c = class_matrix(prompts, 2)
    np.testing.assert_allclose(c[0], [1, 0])
    np.testing.assert_allclose(c[1], np.array([0.6, 1.8]) / np.linalg.norm([0.6, 1.8]), rtol=1e-6)
    x = np.array([[1.0, 0.0]], np.float32)
    soft = scores(x, c, "softmax", logit_scale=10.0)
    assert soft.sum() == pytest.approx(1.0)
    logits = 10 * (x @ c.T)[0]
    assert soft[0, 0] == pytest.approx(1 / (1 + np.exp(logits[1] - logits[0])), rel=1e-6)
    sig = scores(x, c, "sigmoid", logit_scale=10.0, logit_bias=-5.0)
    np.testing.assert_allclose(sig[0], 1 / (1 + np.exp(-(logits - 5))), rtol=1e-6)


def test_sigmoid_scores_are_stable_for_huge_logits():
    import warnings

    from fusion import scores

    classes = np.eye(2, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow would raise here
        got = scores(np.array([[1e30, -1e30]], np.float32), classes, "sigmoid", 10.0, -10.0)
    np.testing.assert_array_equal(got, [[1.0, 0.0]])
    mid = scores(np.array([[0.5, 0.0]], np.float32), classes, "sigmoid", 4.0, -2.0)
    np.testing.assert_allclose(mid, [[0.5, 1 / (1 + np.exp(2.0))]], atol=1e-6)
