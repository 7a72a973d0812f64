"""Turning one planned item into what a tower takes, in a decode worker: the same for the local
runner's processes and Ray's actors, so that both give the same vectors.

Owns reading an item's bytes (a file, or a member of a tar read at its offset without unpacking
the tar), the caps, and decoding through the encoders' safe decoders (image, audio, and video by
jobs/video.py); an item that fails becomes an error string, never an exception out of the
worker. Must not import the index,
the model weights or anything of HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from encoders.audio import AudioLimits, Waveform, decode_audio, sniff_audio
from encoders.base import IMAGE
from encoders.decode import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, decode_image, read_capped
from encoders.decode import sniff_format as sniff_image
from encoders.errors import InputError
from encoders.speech import SPEECH_RATE
from encoders.video import has_video_stream, sniff_video
from jobs.sources import Item
from jobs.speech import check_metadata as check_speech_metadata
from jobs.speech import speech_samples
from jobs.video import VideoOptions, decode
from jobs.video import check_metadata as check_video_metadata


@dataclass(frozen=True)
class DecodeOptions:
    audio_rate: int = 16_000
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES
    audio_limits: AudioLimits = field(default_factory=AudioLimits)
    modalities: frozenset[str] = frozenset({"text", "image"})
    #: the encoder's `image_prefit`: applied here, in the worker, to every decoded image
    image_prefit: Callable[[Image.Image], Image.Image] | None = None
    video: VideoOptions = field(default_factory=VideoOptions)
    #: also decode each audio and video input's sound for the recogniser (`--speech`)
    speech: bool = False


@dataclass
class Decoded:
    """An item ready for its tower (`payload`: str, PIL image, Waveform or decoded Video), or why
    it is not."""

    item: Item
    modality: str
    payload: object = None
    error: str | None = None
    speech: np.ndarray | None = None  # its sound at 16 kHz for the recogniser (`--speech`)


def read_item(item: Item, max_bytes: int) -> bytes:
    if item.path is not None:
        return read_capped(item.path, max_bytes)
    if item.size > max_bytes:
        raise InputError(f"{item.size} bytes is over the limit of {max_bytes} bytes")
    try:
        with open(item.tar, "rb") as f:
            f.seek(item.offset)
            data = f.read(item.size)
    except OSError as e:
        raise InputError(f"cannot read {item.tar}: {e.strerror or e}") from None
    if len(data) != item.size:
        raise InputError(f"{item.tar} is truncated: the member's bytes end early")
    return data


def decode_item(item: Item, opts: DecodeOptions) -> Decoded:
    """Never raises for a bad input: the reason goes into `error`."""
    try:
        if item.modality == "text":
            if not item.text or not item.text.strip():
                raise InputError("empty text (a row needs a path or a non-empty text)")
            return Decoded(item, "text", item.text)
        cap = opts.video.limits.max_bytes if item.modality == "video" else opts.max_bytes
        data = read_item(item, cap)
        modality = item.modality if item.modality != "unknown" else _sniff(data)
        if modality == "video":
            if IMAGE not in opts.modalities:
                raise InputError("the model has no image tower to embed video frames with")
            check_video_metadata(item.metadata)
            video = decode(data, item.source, opts.video, opts.audio_rate, opts.image_prefit)
            return _with_speech(Decoded(item, modality, video), data, opts, video.audio)
        if modality not in opts.modalities:
            raise InputError(f"the model has no {modality} tower")
        if modality == "image":
            image = decode_image(data, max_pixels=opts.max_pixels, name=item.source)
            if opts.image_prefit is not None:
                image = opts.image_prefit(image)
            return Decoded(item, modality, image)
        waveform = decode_audio(data, opts.audio_rate, limits=opts.audio_limits, name=item.source)
        return _with_speech(Decoded(item, modality, waveform), data, opts, waveform)
    except InputError as e:
        return Decoded(item, item.modality, error=str(e).removeprefix(f"{item.source}: "))
    except Exception as e:  # a decoder bug must cost one item, not the job
        return Decoded(item, item.modality, error=f"{type(e).__name__}: {e}")


def _with_speech(d: Decoded, data: bytes, opts: DecodeOptions, wave: Waveform | None) -> Decoded:
    """With `speech`, the input's sound for the recogniser too (the decoded one when it is at
    the recogniser's rate already)."""
    if not opts.speech:
        return d
    check_speech_metadata(d.item.metadata)
    if wave is not None and wave.rate == SPEECH_RATE:
        d.speech = wave.samples
    else:
        d.speech = speech_samples(data, d.item.source, d.modality, opts.audio_limits,
                                  opts.video.limits)  # fmt: skip
    return d


def _sniff(data: bytes) -> str:
    head = data[:16]
    if sniff_image(head):
        return "image"
    if sniff_video(head) and has_video_stream(data):
        return "video"
    if sniff_audio(head):
        return "audio"
    raise InputError("not a supported image, audio or video format")


def decode_chunk(items: list[Item], opts: DecodeOptions) -> list[Decoded]:
    """A worker's unit of work: several items per round trip to amortise the pickling."""
    return [decode_item(it, opts) for it in items]
