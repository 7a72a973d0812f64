"""Captions for the captioner: joint-space vectors paired with the sentence they should become.

- tinted Fashion-MNIST: "a red ankle boot." (any of the house model's synonyms for the item, any
  of its tints; the grey garment is "white"),
- Tux Paint stamps: their English caption as a sentence ("a horse."),
- emoji: their Unicode name ("a dog face."),

each split as the house model was (held-out keys never train). Vectors are the house image
tower's; text vectors of the same captions are kept beside them for noise-injected training
(CapDec), which is what lets sounds and other modalities caption without paired captions.

Imports the encoders and the training data, nothing of the service or the index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from encoders.base import Encoder
from encoders.decode import decode_image
from housedata.sets import COLOURS, FASHION_SYNONYMS, NotoEmoji, fashion_mnist, in_split, tint
from training.audio.data import stamps

SOURCES = ("fashion", "tuxpaint", "emoji")


@dataclass
class Captions:
    """Vectors (n, d) of the pictures, the caption of each, its text vector (n, d) and source."""

    images: np.ndarray
    texts: np.ndarray
    captions: list[str]
    sources: list[str]


def sentence(words: str) -> str:
    """'A horse' / 'dog face' -> 'a horse.' / 'a dog face.'"""
    w = " ".join(words.split()).rstrip(".")
    if not w:
        return ""
    first = w.split()[0].lower()
    if first not in ("a", "an", "the") and not first.isdigit():
        w = ("an " if w[0].lower() in "aeiou" else "a ") + w
    return w[0].lower() + w[1:] + "."


def fashion_sentence(label: int, colour: str, rng: np.random.Generator) -> str:
    names = FASHION_SYNONYMS[label]
    return sentence(f"{colour} {names[rng.integers(len(names))]}")


def fashion_pairs(
    split: str, n: int, seed: int
) -> tuple[list[Image.Image], list[str], np.ndarray, list[str]]:
    """n tinted Fashion-MNIST images of a split, their captions, labels and colours."""
    grey, labels = fashion_mnist(split)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(labels), n, replace=False)
    colours = [list(COLOURS)[i] for i in rng.integers(len(COLOURS), size=n)]
    images = [Image.fromarray(tint(grey[i], c)) for i, c in zip(pick, colours, strict=True)]
    caps = [fashion_sentence(int(labels[i]), c, rng) for i, c in zip(pick, colours, strict=True)]
    return images, caps, labels[pick], colours


def pictures(
    split: str = "train", n_fashion: int = 6000, seed: int = 0, sources: tuple[str, ...] = SOURCES
) -> tuple[list[Image.Image], list[str], list[str]]:
    """The pictures of a split, each with its caption sentence and its source."""
    images: list[Image.Image] = []
    caps: list[str] = []
    srcs: list[str] = []
    if "fashion" in sources:
        imgs, c, _, _ = fashion_pairs(split, n_fashion, seed)
        images += imgs
        caps += c
        srcs += ["fashion"] * len(c)
    if "tuxpaint" in sources:
        for s in stamps():
            if in_split(s.key, split) and sentence(s.caption):
                images.append(decode_image(s.png))
                caps.append(sentence(s.caption))
                srcs.append("tuxpaint")
    if "emoji" in sources:
        for pair in NotoEmoji(split):
            images.append(pair.image)
            caps.append(sentence(pair.caption))
            srcs.append("emoji")
    return images, caps, srcs


def build(enc: Encoder, split: str = "train", n_fashion: int = 6000, seed: int = 0,
          sources: tuple[str, ...] = SOURCES) -> Captions:  # fmt: skip
    images, caps, srcs = pictures(split, n_fashion, seed, sources)
    return Captions(enc.embed_images(images), enc.embed_text(caps), caps, srcs)
