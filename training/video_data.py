"""Clips made offline from the project's data, for the temporal head and the video eval suites.

A clip is a tinted Fashion-MNIST garment that moves or zooms across a 32 px frame and, in a
change clip, turns from one colour to another over time, captioned in words that depend on order
("a dress turning from red to blue"); its reversed caption ("... from blue to red") is the hard
negative that mean pooling cannot tell apart. Colour pairs are split: `HELD_OUT_PAIRS` (both
orders) never appear in training, and training uses the official train images, evaluation the
test images. Frames are rendered as arrays (the frame vectors come from the image tower directly);
`shot_clip` writes a clip of several shots as a real video file for the moment suite and the
demo collection.

Imports numpy, PIL and training.data; nothing of the service or the index.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from PIL import Image

from encoders.video import encode_video
from training.data import COLOURS, EVAL_TEMPLATES, FASHION_SYNONYMS, fashion_caption

MOTIONS = ("still", "left", "right", "up", "down", "zoom-in", "zoom-out")
CHANGE_TEMPLATES = [
    "a {item} turning from {a} to {b}.", "a {a} {item} that turns {b}.",
    "a {item} changing from {a} to {b}.", "a {a} {item} becoming {b}.",
    "a {item} going from {a} to {b}.",
]  # fmt: skip
#: the wording the order suite asks with (a training wording too: pairs and items are held out)
EVAL_TEMPLATE = "a {item} turning from {a} to {b}."
_PAIRS = list(itertools.combinations(sorted(COLOURS), 2))
#: 8 of the 36 colour pairs, both orders, kept out of training
HELD_OUT_PAIRS = [_PAIRS[i] for i in np.random.default_rng(7).choice(len(_PAIRS), 8, replace=False)]


def train_pairs() -> list[tuple[str, str]]:
    held = set(HELD_OUT_PAIRS)
    return [p for p in _PAIRS if p not in held]


@dataclass(frozen=True)
class ClipSpec:
    image: int  # index into the split's images
    label: int
    start: str  # colour at the start
    end: str  # colour at the end (== start: no change)
    motion: str
    frames: int


def render(grey: np.ndarray, spec: ClipSpec, size: int = 32) -> np.ndarray:
    """(frames, size, size, 3) uint8: the garment on black, moved or zoomed, its tint going from
    `start` to `end` over the middle half of the clip."""
    a, b = np.asarray(COLOURS[spec.start]), np.asarray(COLOURS[spec.end])
    out = np.zeros((spec.frames, size, size, 3), np.uint8)
    for t in range(spec.frames):
        f = t / max(spec.frames - 1, 1)
        w = float(np.clip((f - 0.25) / 0.5, 0.0, 1.0))
        scale = {"zoom-in": 0.7 + 0.3 * f, "zoom-out": 1.0 - 0.3 * f}.get(spec.motion, 0.85)
        shift = 4 - 8 * f
        dx = {"left": shift, "right": -shift}.get(spec.motion, 0.0)
        dy = {"up": shift, "down": -shift}.get(spec.motion, 0.0)
        side = max(4, round(size * scale))
        g = np.asarray(Image.fromarray(grey).resize((side, side), Image.BILINEAR), np.float32)
        rgb = g[..., None] * ((1 - w) * a + w * b)
        x0, y0 = round((size - side) / 2 + dx), round((size - side) / 2 + dy)
        _paste(out[t], rgb.round().clip(0, 255).astype(np.uint8), x0, y0)
    return out


def _paste(canvas: np.ndarray, tile: np.ndarray, x0: int, y0: int) -> None:
    h, w = tile.shape[:2]
    H, W = canvas.shape[:2]
    xs, ys = max(0, -x0), max(0, -y0)
    xe, ye = min(w, W - x0), min(h, H - y0)
    if xe > xs and ye > ys:
        canvas[y0 + ys : y0 + ye, x0 + xs : x0 + xe] = tile[ys:ye, xs:xe]


def item_name(label: int, rng: np.random.Generator) -> str:
    names = FASHION_SYNONYMS[label]
    return names[rng.integers(len(names))]


def caption(spec: ClipSpec, rng: np.random.Generator, template: str | None = None) -> str:
    """The clip's caption: a change clip's in an order-dependent wording, a still-coloured one's
    in the house model's training wordings."""
    if spec.start == spec.end:
        return fashion_caption(spec.label, spec.start, rng)
    tpl = template or CHANGE_TEMPLATES[rng.integers(len(CHANGE_TEMPLATES))]
    return tpl.format(item=item_name(spec.label, rng), a=spec.start, b=spec.end)


def reversed_spec(spec: ClipSpec) -> ClipSpec:
    return ClipSpec(spec.image, spec.label, spec.end, spec.start, spec.motion, spec.frames)


def sample_specs(
    labels: np.ndarray,
    n: int,
    pairs: list[tuple[str, str]],
    seed: int,
    change_share: float = 0.75,
    frames: tuple[int, int] = (4, 12),
) -> list[ClipSpec]:
    """`n` clips over the images with these `labels`: a share of them change colour (a pair from
    `pairs`, in a random order), the rest keep one colour."""
    rng = np.random.default_rng(seed)
    colours = sorted({c for p in pairs for c in p})
    out = []
    for _ in range(n):
        i = int(rng.integers(len(labels)))
        if rng.random() < change_share:
            a, b = pairs[rng.integers(len(pairs))]
            a, b = (a, b) if rng.random() < 0.5 else (b, a)
        else:
            a = b = colours[rng.integers(len(colours))]
        motion = MOTIONS[rng.integers(len(MOTIONS))]
        length = int(rng.integers(frames[0], frames[1] + 1))
        out.append(ClipSpec(i, int(labels[i]), a, b, motion, length))
    return out


def to_video(frames: np.ndarray, fps: float = 1.0, kind: str = "MP4", side: int = 64) -> bytes:
    """Rendered frames as a real video file, enlarged to `side` px (a camera would give more than
    the tower's 32)."""
    k = max(1, side // frames.shape[1])
    return encode_video(list(frames.repeat(k, axis=1).repeat(k, axis=2)), fps, kind)


def shot_clip(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
              kind: str = "MP4") -> tuple[bytes, list[tuple[float, float, str, str]]]:  # fmt: skip
    """Four shots of four different garments, each its own colour and motion (or none), 3-6 s
    long at 4 frames/s; returns the video and per shot (start s, end s, a query for it in a
    wording never used in training, "<colour> <item>")."""
    chosen, seen = [], set()
    for i in rng.permutation(len(labels)):
        if int(labels[i]) not in seen:
            seen.add(int(labels[i]))
            chosen.append(int(i))
        if len(chosen) == 4:
            break
    frames, truth, t = [], [], 0.0
    colours = rng.permutation(sorted(COLOURS))[:4]
    for i, colour in zip(chosen, colours, strict=True):
        seconds = int(rng.integers(3, 7))
        motion = MOTIONS[rng.integers(len(MOTIONS))]
        spec = ClipSpec(i, int(labels[i]), str(colour), str(colour), motion, seconds * 4)
        frames.append(render(images[i], spec))
        tpl = EVAL_TEMPLATES[rng.integers(len(EVAL_TEMPLATES))]
        name = f"{colour} {item_name(spec.label, rng)}"
        truth.append((t, t + seconds, tpl.format(name), name))
        t += seconds
    return to_video(np.concatenate(frames), fps=4.0, kind=kind), truth
