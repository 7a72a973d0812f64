"""Encoder towers that map text, images and audio into one L2-normalised space (the interface names
video too; no backend embeds it yet).

Owns: the `Encoder` interface, the open_clip, transformers and house backends, model-spec parsing,
and safe decoding of untrusted image and audio bytes. Must not import FAISS, FastAPI, or anything
from index/, fusion/, training/, service/ or cli/.
"""

from encoders.audio import AudioLimits, Waveform, decode_audio
from encoders.base import AUDIO, IMAGE, TEXT, VIDEO, AudioEmbeddings, Encoder, TextEmbeddings
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
    "AudioEmbeddings",
    "AudioLimits",
    "Encoder",
    "InputError",
    "JointspaceError",
    "ModelLoadError",
    "ModelSpec",
    "ModelSpecError",
    "TextEmbeddings",
    "UnsupportedModality",
    "Waveform",
    "decode_audio",
    "decode_image",
    "load_encoder",
    "parse_spec",
]
