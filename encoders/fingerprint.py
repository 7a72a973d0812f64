"""A base model's fingerprint: its vectors for a few fixed probe inputs (three texts, three
synthetic pictures), and the comparison that tells whether two fingerprints name the same towers.

Every part of a model directory records the fingerprint of the base it was trained against, so a
part moved beside another base is refused at load rather than served with vectors that mean
nothing. The comparison has a tolerance (each probe's cosine similarity at least `MIN_COSINE`),
so the same towers on another device or in bf16 still match. Knows nothing of FAISS or HTTP.
"""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image

from encoders.base import IMAGE, TEXT, Encoder

PROBE_TEXTS = ("a photo of a red dress", "a dog running on the grass", "the sound of rain")
#: the lowest cosine similarity between a probe's two vectors that still counts as the same base
MIN_COSINE = 0.99


def probe_images() -> list[Image.Image]:
    """Three fixed 64 px pictures: a colour gradient, a checkerboard, a disc on a plain ground."""
    y, x = np.mgrid[0:64, 0:64].astype(np.float32) / 63.0
    gradient = np.stack([x, y, 1 - x], -1)
    checker = np.repeat(((np.floor(x * 8) + np.floor(y * 8)) % 2)[..., None], 3, -1)
    disc = np.where(
        ((x - 0.5) ** 2 + (y - 0.5) ** 2 < 0.1)[..., None], [0.9, 0.2, 0.1], [0.1, 0.3, 0.8]
    )
    return [Image.fromarray((a * 255).round().astype(np.uint8)) for a in (gradient, checker, disc)]


def fingerprint(enc: Encoder) -> dict:
    """{"dim", "text", "image", "digest"}: the base's vectors of the probes (rounded to 4 decimals;
    a modality the base lacks is absent) and a short digest of them for people to compare."""
    out: dict = {"dim": int(enc.dim)}
    if TEXT in enc.modalities:
        out["text"] = np.round(enc.embed_text(list(PROBE_TEXTS)), 4).tolist()
    if IMAGE in enc.modalities:
        out["image"] = np.round(enc.embed_images(probe_images()), 4).tolist()
    out["digest"] = digest(out)
    return out


def digest(fp: dict) -> str:
    """12 hex digits of the probe vectors at 2 decimals (a label, not the comparison)."""
    coarse = [
        np.round(np.asarray(fp.get(k, []), np.float32), 2).tobytes() for k in ("text", "image")
    ]
    return hashlib.sha256(b"|".join(coarse) + str(fp.get("dim")).encode()).hexdigest()[:12]


def same_base(a: dict, b: dict) -> bool:
    """Whether two fingerprints are of the same towers: the same length of vector, the same probe
    modalities, and every probe's two vectors at a cosine similarity of at least MIN_COSINE."""
    if a.get("dim") != b.get("dim"):
        return False
    kinds = [k for k in ("text", "image") if k in a or k in b]
    for k in kinds:
        if k not in a or k not in b:
            return False
        va, vb = np.asarray(a[k], np.float32), np.asarray(b[k], np.float32)
        if va.shape != vb.shape:
            return False
        cos = (va * vb).sum(1) / np.maximum(
            np.linalg.norm(va, axis=1) * np.linalg.norm(vb, axis=1), 1e-12
        )
        if float(cos.min()) < MIN_COSINE:
            return False
    return bool(kinds)
