"""Fusion over joint-space vectors: composed queries ("like this but in blue", negation), fused
inputs (one vector from a text, an image and a sound; equal weights, or a learned fusion head,
fusion/head.py), zero-shot classification, and trained fusion classifiers (fusion/classifier.py,
small torch heads); heads and classifiers are kept by name (fusion/registry.py).

Must not import FAISS, the encoders' models or HTTP.
"""

from fusion.classify import DEFAULT_TEMPLATES, class_matrix, scores
from fusion.compose import PARTS, Term, compose, fuse, fuse_sound, parse_modification

__all__ = [
    "DEFAULT_TEMPLATES",
    "PARTS",
    "Term",
    "class_matrix",
    "compose",
    "fuse",
    "fuse_sound",
    "parse_modification",
    "scores",
]
