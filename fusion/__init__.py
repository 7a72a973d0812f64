"""Fusion over joint-space vectors: composed queries ("like this but in blue", negation) and
zero-shot classification.

Owns pure functions over arrays. Must not import FAISS, torch models or HTTP.
"""

from fusion.classify import DEFAULT_TEMPLATES, class_matrix, scores
from fusion.compose import Term, compose, parse_modification

__all__ = ["DEFAULT_TEMPLATES", "Term", "class_matrix", "compose", "parse_modification", "scores"]
