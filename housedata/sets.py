"""The offline data sets that install from Debian packages, shared by training, the demo and the
benches: Fashion-MNIST (with tinted colour variants and captions), Tux Paint stamps and the Noto
colour emoji, each a sequence of `Pair(image, caption, label)`, and the words around them (class
names, synonyms, tints, prompt wordings). Held-out splits are fixed by hashing each item's key with
a seed, so they do not move when files are added or listed in another order.

Imports numpy, PIL and encoders.decode (stamps are decoded by the same rules as any image); nothing
of training, the service, the index, fusion or generation.
"""

from __future__ import annotations

import gzip
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from encoders.decode import decode_image

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
TUXPAINT_DIR = Path("/usr/share/tuxpaint/stamps")
EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
DEBIAN_PACKAGE = {
    "fashion-mnist": "dataset-fashion-mnist",
    "tuxpaint": "tuxpaint-stamps-default",
    "emoji": "fonts-noto-color-emoji",
}

FASHION_CLASSES = [
    "t-shirt", "trousers", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
]  # fmt: skip
FASHION_SYNONYMS = [
    ["t-shirt", "top", "tee"],
    ["trousers", "pants", "jeans"],
    ["pullover", "sweater", "jumper"],
    ["dress", "gown"],
    ["coat", "jacket"],
    ["sandal", "sandals"],
    ["shirt", "button-up shirt"],
    ["sneaker", "trainer", "running shoe"],
    ["bag", "handbag", "purse"],
    ["ankle boot", "boot"],
]
# name -> RGB multiplier applied to the grey garment; "white" leaves it as it is.
COLOURS = {
    "white": (1.0, 1.0, 1.0),
    "red": (1.0, 0.1, 0.1),
    "orange": (1.0, 0.55, 0.05),
    "yellow": (1.0, 0.95, 0.1),
    "green": (0.1, 0.8, 0.15),
    "blue": (0.1, 0.25, 1.0),
    "purple": (0.6, 0.15, 0.85),
    "pink": (1.0, 0.45, 0.75),
    "brown": (0.55, 0.3, 0.1),
}
TRAIN_TEMPLATES = [
    "a photo of a {}.", "a picture of a {}.", "an image of a {}.", "a {}.", "{}",
    "a small photo of a {}.", "a product shot of a {}.", "a cropped photo of a {}.",
    "a blurry photo of a {}.", "a photo of the {}.", "a nice {}.", "a good photo of a {}.",
]  # fmt: skip
# Wordings never used in training: zero-shot evaluation uses only these.
EVAL_TEMPLATES = [
    "a low resolution photo of the {}.", "this is a {}.", "a close-up photo of a {}.",
    "a catalogue photo of a {}.", "there is a {} in the picture.",
]  # fmt: skip


@dataclass
class Pair:
    image: Image.Image
    caption: str
    label: int | None = None


class MissingData(RuntimeError):
    """A data set whose files are not installed; the message says which package provides them."""


def in_split(key: str, split: str, seed: int = 0, test_fraction: float = 0.1) -> bool:
    h = zlib.crc32(f"{seed}:{key}".encode()) / 2**32
    return (h < test_fraction) == (split == "test")


def require(path: Path, name: str) -> None:
    """Raise MissingData naming the Debian package when `path` is not installed."""
    if not path.exists():
        raise MissingData(
            f"{name} not found at {path}: install the Debian package {DEBIAN_PACKAGE[name]}"
        )


# -- Fashion-MNIST -----------------------------------------------------------------------------
def _idx(path: Path) -> np.ndarray:
    with gzip.open(path) as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist(split: str, root: Path = FASHION_DIR) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, 28, 28) uint8, labels (n,) int64) of the official train or test split."""
    require(root, "fashion-mnist")
    prefix = "train" if split == "train" else "t10k"
    images = _idx(root / f"{prefix}-images-idx3-ubyte.gz")
    labels = _idx(root / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    return images, labels


def tint(grey: np.ndarray, colour: str) -> np.ndarray:
    """(..., 28, 28) uint8 grey garments -> (..., 28, 28, 3) uint8 in the named colour."""
    mult = np.asarray(COLOURS[colour], dtype=np.float32)
    return (grey[..., None].astype(np.float32) * mult).round().astype(np.uint8)


def fashion_caption(label: int, colour: str | None, rng: np.random.Generator) -> str:
    name = FASHION_SYNONYMS[label][rng.integers(len(FASHION_SYNONYMS[label]))]
    thing = f"{colour} {name}" if colour else name
    return TRAIN_TEMPLATES[rng.integers(len(TRAIN_TEMPLATES))].format(thing)


# -- Tux Paint stamps --------------------------------------------------------------------------
class TuxPaintStamps(Sequence[Pair]):
    """PNG stamps with the first line of the .txt beside each as its English caption."""

    def __init__(self, split: str | None = None, seed: int = 0, root: Path = TUXPAINT_DIR):
        require(root, "tuxpaint")
        self.items: list[tuple[Path, str]] = []
        for png in sorted(root.rglob("*.png")):
            if png.stem.endswith(("_mirror", "_flip", "_thumb")):
                continue
            txt = png.with_suffix(".txt")
            if not txt.is_file():
                continue
            first = txt.read_text(errors="replace").splitlines()[:1]
            caption = first[0].strip() if first else ""
            key = str(png.relative_to(root))
            if caption and (split is None or in_split(key, split, seed)):
                self.items.append((png, caption))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Pair:
        path, caption = self.items[i]
        return Pair(decode_image(path, max_pixels=20_000_000), caption)


# -- Noto colour emoji -------------------------------------------------------------------------
EMOJI_RANGES = [(0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x1F680, 0x1F6FF), (0x1F900, 0x1F9FF),
                (0x1FA70, 0x1FAFF), (0x2600, 0x26FF), (0x2700, 0x27BF)]  # fmt: skip


class NotoEmoji(Sequence[Pair]):
    """Single-code-point emoji the font draws, rendered with Pillow, captioned with their
    Unicode names ("grinning face")."""

    def __init__(self, split: str | None = None, seed: int = 0, font: Path = EMOJI_FONT):
        require(font, "emoji")
        self.font_path = font
        self.chars = [
            ch
            for lo, hi in EMOJI_RANGES
            for ch in map(chr, range(lo, hi + 1))
            if unicodedata.name(ch, "")
            and (split is None or in_split(f"U+{ord(ch):X}", split, seed))
        ]

    @cached_property
    def _font(self) -> ImageFont.FreeTypeFont:
        return ImageFont.truetype(str(self.font_path), 109)  # the bitmap strike's only size

    def render(self, ch: str) -> Image.Image | None:
        img = Image.new("RGB", (136, 128), "white")
        ImageDraw.Draw(img).text((0, 0), ch, font=self._font, embedded_color=True)
        box = Image.eval(img.convert("L"), lambda p: 255 - p).getbbox()
        return img.crop(box) if box else None  # no glyph: nothing drawn

    @cached_property
    def drawable(self) -> list[tuple[str, Image.Image]]:
        out = []
        for ch in self.chars:
            img = self.render(ch)
            if img is not None:
                out.append((ch, img))
        return out

    def __len__(self) -> int:
        return len(self.drawable)

    def __getitem__(self, i: int) -> Pair:
        ch, img = self.drawable[i]
        return Pair(img, unicodedata.name(ch).lower())


# -- handwritten digits ------------------------------------------------------------------------
# scikit-learn's bundled copy of the UCI optical recognition of handwritten digits (1,797 8x8
# scans, ships inside the wheel): a domain none of the house model's training sets has.
DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
DIGIT_TRAIN_TEMPLATES = [
    "handwritten digit {}", "a handwritten {}", "the digit {}, written by hand",
    "a {} written by hand", "handwriting: the number {}", "a hand-drawn digit {}",
]  # fmt: skip
# Wordings never used in training: the digits suite's zero-shot prompts use only these.
DIGIT_EVAL_TEMPLATES = [
    "a low resolution scan of the numeral {}.", "this is a picture of the number {}.",
    "a pixelated image showing {}.", "there is a {} in the picture.",
]  # fmt: skip
DIGIT_TEST_FRACTION = 0.2


def digits(split: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, 28, 28) uint8, white strokes on black as in MNIST, labels (n,) int64) of a
    split (a fifth of the scans is the test split, fixed by hashing each scan's index)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise MissingData(
            "the handwritten digits come with scikit-learn: pip install scikit-learn"
        ) from None
    raw = load_digits()
    keep = [i for i in range(len(raw.target))
            if in_split(f"digits/{i}", split, seed, DIGIT_TEST_FRACTION)]  # fmt: skip
    scans = (raw.images[keep] * (255 / 16)).round().astype(np.uint8)
    big = np.stack([np.asarray(Image.fromarray(s).resize((28, 28), Image.BICUBIC)) for s in scans])
    return big, raw.target[keep].astype(np.int64)


def digit_caption(label: int, rng: np.random.Generator) -> str:
    return DIGIT_TRAIN_TEMPLATES[rng.integers(len(DIGIT_TRAIN_TEMPLATES))].format(
        DIGIT_NAMES[label]
    )
