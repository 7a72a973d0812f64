"""Measures the eval suites and the model cards share: a prompt-ensemble class vector, arrays as
RGB pictures, and the rows (metric, value, chance, baseline) of an eval result.

Works through the `Encoder` interface only. Imports numpy, PIL, encoders.base and fusion; nothing
of the suites themselves, the service or the index.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from encoders.base import Encoder
from fusion import class_matrix


def images(arr: np.ndarray) -> list[Image.Image]:
    return [Image.fromarray(a).convert("RGB") for a in arr]


def class_vectors(enc: Encoder, classes: list[str], templates: list[str]) -> np.ndarray:
    """One unit vector per class: the mean of its prompts' vectors (a prompt ensemble)."""
    return class_matrix(
        enc.embed_text([t.format(c) for c in classes for t in templates]), len(classes)
    )


def metric_rows(result: dict) -> list[tuple[str, str, float, float | None, float | None]]:
    """(suite, metric, value, chance or None, baseline or None) for every float metric of an
    `evaluate` result. A metric's chance is the suite's `chance_<tag>@k` where the metric's name
    has that tag (image, item, colour, interval), or `<prefix>_chance@k` where the metric is
    named `<prefix>_...`, else `chance@k`; its baseline is
    `baseline:<metric>`."""
    rows = []
    for suite, metrics in result["suites"].items():
        for key, val in metrics.items():
            chance_key = key.startswith(("chance", "baseline:")) or "_chance@" in key
            if chance_key or not isinstance(val, float):
                continue
            k = key.split("@")[-1] if "@" in key else ("1" if key.endswith("top1") else None)
            chance = None
            if k:
                chance = metrics.get(f"chance@{k}")
                for tag in ("image", "item", "colour", "interval"):
                    if tag in key and f"chance_{tag}@{k}" in metrics:
                        chance = metrics[f"chance_{tag}@{k}"]
                own = f"{key.split('_')[0]}_chance@{k}"  # tuxpaint_drawn_caption@1
                chance = metrics.get(own, chance)
            rows.append((suite, key, val, chance, metrics.get(f"baseline:{key}")))
    return rows
