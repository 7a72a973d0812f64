"""The temporal head's clips and captions: which colour pairs train and which are held out, and
the order-dependent wordings ("a dress turning from red to blue") whose reversal is the hard
negative mean pooling cannot tell apart. Colour pairs are split: `HELD_OUT_PAIRS` (both orders)
never appear in training, and training uses the official train images, evaluation the test images.
Clips themselves are rendered by housedata.clips.

Imports numpy and housedata; nothing of the service or the index.
"""

from __future__ import annotations

import itertools

import numpy as np

from housedata.clips import MOTIONS, ClipSpec, item_name
from housedata.sets import COLOURS, fashion_caption

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
