"""Pictures for the image decoder and the prior: 32 px pixels, their house image vectors, and a
caption vector for each.

- tinted Fashion-MNIST (the train split, one tint per image, the grey garment is "white"),
  captioned in the house model's training wordings with its synonyms ("a product shot of a red
  sandal."): the prior must read the wordings users type;
- Tux Paint stamps and emoji of the same split, captioned as the captioner's data is.

Held-out keys never train, as for the house model. Imports the encoders and the training data,
nothing of the service or the index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from encoders.base import Encoder
from encoders.house import fit_image
from housedata.sets import fashion_caption
from training.captioner.data import fashion_pairs, pictures


@dataclass
class DecoderData:
    pixels: np.ndarray  # (n, S, S, 3) uint8, fitted as the house image tower sees them
    images: np.ndarray  # (n, d) image vectors
    texts: np.ndarray  # (n, d) caption vectors
    captions: list[str]
    sources: list[str]


OTHERS = ("tuxpaint", "emoji")


def build(enc: Encoder, split: str = "train", n_fashion: int = 60_000, seed: int = 0,
          image_size: int = 32, sources: tuple[str, ...] = OTHERS) -> DecoderData:  # fmt: skip
    rng = np.random.default_rng([seed, 11])
    imgs, _, labels, colours = fashion_pairs(split, n_fashion, seed)
    caps = [fashion_caption(int(lab), c, rng) for lab, c in zip(labels, colours, strict=True)]
    srcs = ["fashion"] * len(caps)
    more, more_caps, more_srcs = pictures(split, 0, seed, sources) if sources else ([], [], [])
    fitted = [fit_image(im, image_size) for im in [*imgs, *more]]
    caps, srcs = caps + more_caps, srcs + more_srcs
    pixels = np.stack([np.asarray(im, dtype=np.uint8) for im in fitted])
    return DecoderData(pixels, enc.embed_images(fitted), enc.embed_text(caps), caps, srcs)
