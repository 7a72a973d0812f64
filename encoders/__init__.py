"""Encoder towers that map text and images into one L2-normalised space (the interface names audio
and video too; no backend embeds them yet).

Owns: the `Encoder` interface, the open_clip and transformers backends, model-spec parsing, and safe
decoding of untrusted image bytes. Must not import FAISS, FastAPI, or anything from index/,
fusion/, training/, service/ or cli/.
"""

from encoders.base import AUDIO, IMAGE, TEXT, VIDEO, Encoder, TextEmbeddings
from encoders.decode import DEFAULT_MAX_PIXELS, decode_image
from encoders.errors import (
    InputError,
    JointspaceError,
    ModelLoadError,
    ModelSpecError,
    UnsupportedModality,
)
from encoders.registry import ModelSpec, load_encoder, parse_spec

__all__ = [
    "AUDIO",
    "DEFAULT_MAX_PIXELS",
    "IMAGE",
    "TEXT",
    "VIDEO",
    "Encoder",
    "InputError",
    "JointspaceError",
    "ModelLoadError",
    "ModelSpec",
    "ModelSpecError",
    "TextEmbeddings",
    "UnsupportedModality",
    "decode_image",
    "load_encoder",
    "parse_spec",
]
