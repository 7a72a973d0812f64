"""Encoder towers that map text, images and audio into one L2-normalised space; a video is its
sampled frames through the image tower, pooled per segment.

Owns: the `Encoder` interface, the open_clip, transformers and house backends, model-spec parsing,
and safe decoding of untrusted image, audio and video bytes. Must not import FAISS, FastAPI, or
anything from index/, fusion/, training/, service/ or cli/.
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
from encoders.video import Video, VideoEmbedding, VideoLimits, decode_video

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
    "Video",
    "VideoEmbedding",
    "VideoLimits",
    "Waveform",
    "decode_audio",
    "decode_image",
    "decode_video",
    "load_encoder",
    "parse_spec",
]
