"""Zero-shot classification over joint-space vectors.

Class vectors are the normalised mean of a class's prompt vectors (a prompt ensemble). Scores
follow the model's training loss: a softmax over the classes for InfoNCE-trained (CLIP-style)
models, an independent sigmoid per class for sigmoid-trained (SigLIP-style) ones, each with the
model's own temperature (and bias). Pure numpy: no models, FAISS or HTTP.
"""

from __future__ import annotations

import numpy as np

DEFAULT_TEMPLATES = ["a photo of a {}.", "a picture of a {}.", "an image of a {}.", "{}"]


def class_matrix(prompt_vectors: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes * n_templates, d) prompt vectors, class-major -> (n_classes, d) unit vectors."""
    v = np.asarray(prompt_vectors, dtype=np.float32).reshape(
        n_classes, -1, prompt_vectors.shape[-1]
    )
    v = v.mean(1)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def scores(
    inputs: np.ndarray, classes: np.ndarray, loss: str, logit_scale: float, logit_bias: float = 0.0
) -> np.ndarray:
    """(n, n_classes) probabilities: rows sum to 1 for softmax; each in (0, 1) for sigmoid."""
    logits = logit_scale * (np.asarray(inputs, np.float32) @ classes.T)
    if loss == "sigmoid":
        # 1 / (1 + e^-x) written with tanh, which cannot overflow for any finite x
        return 0.5 * (1.0 + np.tanh(0.5 * (logits + logit_bias)))
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)
