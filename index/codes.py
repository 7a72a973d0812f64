"""Compact codes of L2-normalised float vectors: int8/uint8 scaling and sign bits packed into bytes.

The scaling depends only on the number of dimensions, so every vector of a model (every request,
every collection) gets the same one: a component of a unit vector in d dimensions is about
1/sqrt(d) in size, so the range [-LIMIT, LIMIT] with LIMIT = min(1, 4/sqrt(d)) holds nearly all of
them; it is mapped onto [-127, 127] (int8) or [1, 255] (uint8, int8 + 128) and the rare component
beyond it is clipped. Binary codes are one bit per dimension, set where the component is positive,
packed eight to a byte with the first dimension in the highest bit (`np.packbits`): `ubinary` is
those bytes, `binary` the same bytes minus 128 as signed int8 (Cohere's and sentence-transformers'
packing). Numpy only; knows nothing of FAISS, torch or HTTP.
"""

from __future__ import annotations

import math

import numpy as np

FORMATS = ("float", "base64", "int8", "uint8", "binary", "ubinary")


def int8_limit(dim: int) -> float:
    """The component value that maps to 127: min(1, 4/sqrt(dim))."""
    return min(1.0, 4.0 / math.sqrt(dim))


def to_int8(vectors: np.ndarray) -> np.ndarray:
    """(n, d) float -> (n, d) int8: round(v * 127 / int8_limit(d)), clipped to [-127, 127]."""
    v = np.asarray(vectors, dtype=np.float32)
    scaled = np.rint(v * (127.0 / int8_limit(v.shape[-1])))
    return np.clip(scaled, -127, 127).astype(np.int8)


def to_uint8(vectors: np.ndarray) -> np.ndarray:
    """to_int8 + 128, as uint8 (values 1 to 255)."""
    return (to_int8(vectors).astype(np.int16) + 128).astype(np.uint8)


def to_ubinary(vectors: np.ndarray) -> np.ndarray:
    """(n, d) float -> (n, ceil(d/8)) uint8: the sign bits, first dimension in the top bit."""
    return np.packbits(np.asarray(vectors) > 0, axis=-1)


def to_binary(vectors: np.ndarray) -> np.ndarray:
    """to_ubinary - 128, as int8."""
    return (to_ubinary(vectors).astype(np.int16) - 128).astype(np.int8)


def encode(vectors: np.ndarray, fmt: str) -> np.ndarray:
    """The codes of `fmt` (int8, uint8, binary, ubinary) as an integer array; ValueError else."""
    fns = {"int8": to_int8, "uint8": to_uint8, "binary": to_binary, "ubinary": to_ubinary}
    if fmt not in fns:
        raise ValueError(f"no integer codes for encoding format {fmt!r}")
    return fns[fmt](vectors)
