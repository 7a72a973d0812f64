"""Evaluation arithmetic on an encoder whose vectors are known exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from encoders.base import IMAGE, TEXT, Encoder
from training.evaluate import evaluate
from training.metrics import class_vectors
from training.towers.eval import retrieval


class Lookup(Encoder):
    """Texts and images (by their top-left pixel's red value) mapped to fixed vectors."""

    def __init__(self, text: dict[str, list[float]], image: dict[int, list[float]]) -> None:
        self.text, self.image = text, image
        self.name, self.dim, self.context_length = "lookup", 2, 77
        self.modalities = frozenset({TEXT, IMAGE})
        self.device, self.dtype = torch.device("cpu"), torch.float32

    def _text_batch(self, texts):
        return torch.tensor([self.text[t] for t in texts]), [3] * len(texts)

    def _image_batch(self, images):
        return torch.tensor([self.image[im.getpixel((0, 0))[0]] for im in images])


def img(red: int) -> Image.Image:
    return Image.new("RGB", (2, 2), (red, 0, 0))


def test_retrieval_recalls():
    enc = Lookup(
        {"cat": [1, 0], "dog": [0, 1], "fox": [1, 1]},
        {0: [1, 0.1], 1: [0.1, 1], 2: [0, 1], 3: [1, 0.2]},
    )
    # images 0 and 3 are both captioned "cat": either counts for the caption "cat"
    res = retrieval([img(0), img(1), img(2), img(3)], ["cat", "dog", "fox", "cat"], enc)
    # t2i: cat -> image 0 first (hit); dog -> image 2 first (caption fox: miss), image 1 second;
    # fox -> image 3 first? fox=[1,1]/sqrt2: scores 0:0.78 1:0.78 2:0.71 3:0.83 -> 3 (miss)
    assert res["t2i_recall@1"] == pytest.approx(1 / 3)
    # i2t: img0 -> cat (hit); img1 -> dog (hit); img2 -> dog (miss); img3 -> cat (hit)
    assert res["i2t_recall@1"] == pytest.approx(3 / 4)
    assert res["t2i_recall@5"] == 1.0 and res["i2t_recall@5"] == 1.0
    assert (res["n_images"], res["n_captions"], res["chance@1"]) == (4, 3, 0.25)


def test_prompt_ensemble_is_the_normalised_mean():
    enc = Lookup({"a x": [1, 0], "the x": [0, 1], "a y": [1, 0], "the y": [1, 0]}, {})
    v = class_vectors(enc, ["x", "y"], ["a {}", "the {}"])
    np.testing.assert_allclose(v, [[2**-0.5, 2**-0.5], [1, 0]], atol=1e-6)


def test_unknown_suite():
    with pytest.raises(ValueError, match="unknown eval suite"):
        evaluate(Lookup({}, {}), ("imagenet",))
