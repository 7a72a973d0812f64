"""The training mixture for 32 px towers: Fashion-MNIST in tints, plus fixed-caption pair sets.

Everything is held as uint8 arrays and a table of caption strings, so a batch is a gather, not a
decode. The caption and tint of every sample are drawn from a generator seeded by (seed, step), so
the batches of a run depend only on its seed and step: a resumed run sees exactly the batches the
uninterrupted run would have. Knows nothing of models beyond the 32 px preprocessing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from encoders.house import HouseConfig
from housedata.sets import (
    COLOURS,
    FASHION_SYNONYMS,
    TRAIN_TEMPLATES,
    NotoEmoji,
    Pair,
    TuxPaintStamps,
    fashion_mnist,
)
from training.towers.data import CaptionFolder, TarShards

COLOUR_NAMES = list(COLOURS)
COLOUR_MULT = np.array([COLOURS[c] for c in COLOUR_NAMES], dtype=np.float32)
PAIR_TEMPLATES = ["{}", "a drawing of {}", "a picture of {}"]
EMOJI_TEMPLATES = ["{}", "an emoji of {}", "a {} icon"]


def to_pixels(img: Image.Image, cfg: HouseConfig) -> np.ndarray:
    """A PIL image as (S, S, 3) uint8, preprocessed like encoders.house.preprocess."""
    from encoders.house import preprocess

    x = preprocess(img, cfg) * cfg.std + cfg.mean
    return (x.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)


def resize_grey(grey: np.ndarray, size: int) -> np.ndarray:
    """(n, h, w) uint8 -> (n, size, size), resized as encoders.house.preprocess resizes."""
    if grey.shape[1:] == (size, size):
        return grey
    return np.stack(
        [np.asarray(Image.fromarray(g).resize((size, size), Image.BICUBIC)) for g in grey]
    )


def _clean(caption: str) -> str:
    return caption.strip().rstrip(".").strip()


@dataclass
class FixedPairs:
    """Images with their own captions (Tux Paint, emoji, caption folders, tar shards)."""

    name: str
    pixels: np.ndarray  # (n, S, S, 3) uint8
    captions: list[str]
    templates: list[str] = field(default_factory=lambda: list(PAIR_TEMPLATES))

    @classmethod
    def from_pairs(cls, name: str, pairs: Sequence[Pair], cfg: HouseConfig, templates=None):
        pixels = np.stack([to_pixels(p.image, cfg) for p in pairs]) if len(pairs) else None
        captions = [_clean(p.caption) for p in pairs]
        return cls(name, pixels, captions, templates or list(PAIR_TEMPLATES))

    def all_captions(self) -> list[str]:
        return [t.format(c) for c in self.captions for t in self.templates]


class Mixture:
    """Samples = Fashion-MNIST train images + each fixed pair set repeated `repeat` times."""

    def __init__(
        self, cfg: HouseConfig, sources: list[str], seed: int = 0, repeat: int = 8, split="train"
    ) -> None:
        self.cfg, self.seed, self.repeat = cfg, seed, repeat
        self.fashion: np.ndarray | None = None
        self.fashion_labels: np.ndarray | None = None
        self.sets: list[FixedPairs] = []
        for src in sources:
            if src == "fashion-mnist":
                grey, self.fashion_labels = fashion_mnist(split)
                self.fashion = resize_grey(grey, cfg.image_size)
            elif src == "tuxpaint":
                self.sets.append(FixedPairs.from_pairs(src, TuxPaintStamps(split, seed), cfg))
            elif src == "emoji":
                self.sets.append(
                    FixedPairs.from_pairs(src, NotoEmoji(split, seed), cfg, EMOJI_TEMPLATES)
                )
            elif src.startswith("folder:"):
                self.sets.append(
                    FixedPairs.from_pairs(src, CaptionFolder(src[7:], split, seed), cfg)
                )
            elif src.startswith("tar:"):
                import glob

                shards = sorted(glob.glob(src[4:]))
                self.sets.append(FixedPairs.from_pairs(src, TarShards(shards, split, seed), cfg))
            else:
                raise ValueError(
                    f"unknown data source {src!r}: use fashion-mnist, tuxpaint, emoji, "
                    "folder:DIR or tar:GLOB"
                )
        self.captions = self._caption_table()
        self.caption_index = {c: i for i, c in enumerate(self.captions)}
        self.n_fashion = 0 if self.fashion is None else len(self.fashion)
        self.offsets = np.cumsum([self.n_fashion] + [len(s.captions) * repeat for s in self.sets])

    def _caption_table(self) -> list[str]:
        out: list[str] = []
        if self.fashion is not None:
            for names in FASHION_SYNONYMS:
                for name in names:
                    for colour in [None, *COLOUR_NAMES]:
                        thing = f"{colour} {name}" if colour else name
                        out += [t.format(thing) for t in TRAIN_TEMPLATES]
        for s in self.sets:
            out += s.all_captions()
        return list(dict.fromkeys(out))

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch, 7]).permutation(len(self))

    def batch(
        self, indices: np.ndarray, step: int, second_view: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(pixels (n, S, S, 3) uint8, caption ids (n,), second views or None), drawn for `step`.

        A second view is the same garment in another tint (or the same stamp or emoji shifted
        and flipped otherwise): the pair an instance-discrimination term pulls together.
        """
        rng = np.random.default_rng([self.seed, step, 11])
        s = self.cfg.image_size
        pixels = np.empty((len(indices), s, s, 3), np.uint8)
        second = np.empty_like(pixels) if second_view else None
        caps = np.empty(len(indices), np.int64)
        for j, idx in enumerate(indices):
            idx = int(idx)
            if idx < self.n_fashion:
                label = int(self.fashion_labels[idx])
                c = int(rng.integers(len(COLOUR_NAMES)))
                img = (self.fashion[idx][..., None] * COLOUR_MULT[c]).round().astype(np.uint8)
                names = FASHION_SYNONYMS[label]
                name = names[rng.integers(len(names))]
                thing = name if rng.random() < 0.25 else f"{COLOUR_NAMES[c]} {name}"
                text = TRAIN_TEMPLATES[rng.integers(len(TRAIN_TEMPLATES))].format(thing)
            else:
                k = int(np.searchsorted(self.offsets, idx, side="right")) - 1
                src = self.sets[k]
                i = (idx - int(self.offsets[k])) % len(src.captions)
                img = src.pixels[i]
                text = src.templates[rng.integers(len(src.templates))].format(src.captions[i])
            pixels[j] = self._augment(img, rng)
            caps[j] = self.caption_index[text]
            if second is not None:
                if idx < self.n_fashion:
                    c2 = (c + 1 + int(rng.integers(len(COLOUR_NAMES) - 1))) % len(COLOUR_NAMES)
                    img = (self.fashion[idx][..., None] * COLOUR_MULT[c2]).round().astype(np.uint8)
                second[j] = self._augment(img, rng)
        return pixels, caps, second

    @staticmethod
    def _augment(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A circular shift of up to 2 px and a horizontal flip half the time."""
        dy, dx = rng.integers(-2, 3, size=2)
        out = np.roll(img, (int(dy), int(dx)), axis=(0, 1))
        return out[:, ::-1] if rng.random() < 0.5 else out
