"""Clips made offline from Fashion-MNIST, shared by the temporal head's training, the video eval
suites, the benches and the demo collection.

A clip (`ClipSpec`) is a tinted garment that moves or zooms across a 32 px frame and may turn from
one colour to another over time. Frames are rendered as arrays (`render`); `to_video` writes them
as a real video file, and `shot_clip` a clip of several shots with the query of each.

Imports numpy, PIL and housedata; nothing of training, the service or the index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from housedata.sets import COLOURS, EVAL_TEMPLATES, FASHION_SYNONYMS
from housedata.writer import write_video

MOTIONS = ("still", "left", "right", "up", "down", "zoom-in", "zoom-out")


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


def to_video(frames: np.ndarray, fps: float = 1.0, kind: str = "MP4", side: int = 64) -> bytes:
    """Rendered frames as a real video file, enlarged to `side` px (a camera would give more than
    the tower's 32)."""
    k = max(1, side // frames.shape[1])
    return write_video(list(frames.repeat(k, axis=1).repeat(k, axis=2)), fps, kind)


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
