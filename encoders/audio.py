"""Safe decoding of untrusted audio bytes into mono float32 waveforms, and cutting them into
windows.

Owns the rules every sound passes before it reaches a tower: an allow-list of containers and codecs
sniffed from the bytes (never from a name or content type), caps on compressed size, channels,
sample rate and decoded duration, and decoding that stops at the duration cap instead of decoding
everything first (a small file that expands to hours is refused after at most the cap's worth of
samples). PyAV (its own FFmpeg) demuxes and decodes; torchaudio resamples; channels are averaged to
mono. Knows nothing of models, FAISS or HTTP.
"""

from __future__ import annotations

import io
import itertools
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from encoders.decode import input_bytes
from encoders.errors import InputError

#: container -> (PyAV demuxer, codecs it may carry)
FORMATS: dict[str, tuple[str, frozenset[str]]] = {
    "WAV": ("wav", frozenset({"pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_u8", "pcm_f32le"})),
    "FLAC": ("flac", frozenset({"flac"})),
    "Ogg": ("ogg", frozenset({"vorbis", "opus", "flac"})),
    "MP3": ("mp3", frozenset({"mp3", "mp3float"})),
    "M4A": ("mp4", frozenset({"aac", "alac", "mp3", "opus"})),
    "AAC": ("aac", frozenset({"aac"})),
    # only as the audio track of a video (decode_audio's `kind`): not sniffed as audio
    "WebM": ("matroska", frozenset({"vorbis", "opus", "aac", "flac"})),
}
ALLOWED = "WAV, FLAC, Ogg (Vorbis, Opus), MP3, M4A/AAC"


@dataclass(frozen=True)
class AudioLimits:
    """What a caller accepts; every refusal names the limit it hit."""

    max_seconds: float = 600.0
    max_channels: int = 8
    min_rate: int = 4_000
    max_rate: int = 192_000
    max_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class Waveform:
    """A decoded clip: mono float32 samples in [-1, 1] at `rate` Hz."""

    samples: np.ndarray
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate


def sniff_audio(head: bytes) -> str | None:
    """The allowed container whose magic bytes start `head`, or None."""
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "WAV"
    if head.startswith(b"fLaC"):
        return "FLAC"
    if head.startswith(b"OggS"):
        return "Ogg"
    if head.startswith(b"ID3"):
        return "MP3"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "M4A"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "AAC"  # ADTS: 12-bit sync, layer bits 00
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return "MP3"  # an MPEG audio frame header (layer bits non-zero)
    return None


def decode_audio(
    data: bytes | str | os.PathLike,
    rate: int = 16_000,
    *,
    limits: AudioLimits = AudioLimits(),
    name: str | None = None,
    kind: str | None = None,
) -> Waveform:
    """Decode one clip from bytes or a path into mono float32 at `rate` Hz. `kind` names the
    container when the caller has already sniffed it (the audio track of a video: M4A or WebM).

    Raises InputError, with a one-line message naming the input, for anything that is not a sane
    clip of an allowed format within the limits.
    """
    data, name = input_bytes(data, name, "audio", limits.max_bytes)
    kind = kind or sniff_audio(data[:16])
    if kind is None:
        raise InputError(f"{name}: not a supported audio format (allowed: {ALLOWED})")
    if kind == "WAV":
        _check_riff_size(data, name, limits.max_bytes)
    mono, native = _decode_mono(data, kind, limits, name)
    if len(mono) == 0:
        raise InputError(f"{name}: {kind} file holds no audio samples")
    return Waveform(np.clip(resample(mono, native, rate), -1.0, 1.0), rate)


_RESAMPLERS: dict[tuple[int, int], torch.nn.Module] = {}
_RESAMPLERS_LOCK = threading.Lock()


def resample(samples: np.ndarray, rate: int, to: int) -> np.ndarray:
    """Mono float32 samples from `rate` to `to` Hz (torchaudio's windowed-sinc resampler)."""
    if rate == to:
        return np.ascontiguousarray(samples, dtype=np.float32)
    with torch.inference_mode():
        return _resampler(rate, to)(torch.from_numpy(np.asarray(samples, np.float32))).numpy()


def _resampler(rate: int, to: int) -> torch.nn.Module:
    """The resampler of one pair of rates, its sinc kernel computed once (building it costs more
    than applying it to a clip of several seconds: 70 ms from 22.05 kHz), under a lock so that
    concurrent first clips do not all build it. Safe to share between threads."""
    key = (int(rate), int(to))
    if (r := _RESAMPLERS.get(key)) is None:
        with _RESAMPLERS_LOCK:
            if (r := _RESAMPLERS.get(key)) is None:
                import torchaudio.transforms as AT

                r = _RESAMPLERS[key] = AT.Resample(*key)
    return r


def _decode_mono(data: bytes, kind: str, limits: AudioLimits, name: str) -> tuple[np.ndarray, int]:
    import av

    demuxer, codecs = FORMATS[kind]
    try:
        container = av.open(io.BytesIO(data), format=demuxer, mode="r")
    except (av.FFmpegError, ValueError, EOFError):
        raise InputError(f"{name}: corrupt {kind} header") from None
    with container:
        streams = container.streams.audio
        if not streams:
            raise InputError(f"{name}: {kind} file has no audio stream")
        stream = streams[0]
        ctx = stream.codec_context
        if ctx.name not in codecs:
            raise InputError(f"{name}: codec '{ctx.name}' is not allowed in {kind} ({ALLOWED})")
        native = int(ctx.sample_rate or 0)
        if not limits.min_rate <= native <= limits.max_rate:
            raise InputError(
                f"{name}: sample rate {native} Hz is outside {limits.min_rate}-{limits.max_rate} Hz"
            )
        channels = int(ctx.channels or 0)
        if not 1 <= channels <= limits.max_channels:
            raise InputError(f"{name}: {channels} channels (allowed: 1 to {limits.max_channels})")
        declared = float(stream.duration * stream.time_base) if stream.duration else 0.0
        if declared > limits.max_seconds + 1:
            raise InputError(_too_long(name, declared, limits, "the header declares "))
        cap = int(limits.max_seconds * native)
        parts, total = [], 0
        try:
            for chunk in _frames(container, stream):
                total += len(chunk)
                if total > cap:
                    raise InputError(_too_long(name, total / native, limits, "at least "))
                parts.append(chunk)
        except InputError:
            raise
        except (av.FFmpegError, ValueError, EOFError):
            raise InputError(f"{name}: truncated or corrupt {kind} data") from None
    # A header that promises more than the data holds: the file was cut short.
    if declared and total < 0.9 * declared * native - 0.1 * native:
        raise InputError(
            f"{name}: truncated {kind} data ({total / native:.1f} s of a declared {declared:.1f} s)"
        )
    return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), native


def _check_riff_size(data: bytes, name: str, max_bytes: int) -> None:
    """FFmpeg quietly decodes what is there of a cut WAV; its RIFF header says how much should be.
    Streaming writers cannot know the size and leave a placeholder (0, 0xFFFFFFFF, espeak-ng's
    0x7FFFF024): a size beyond the byte cap is read as "unknown", and the data decodes as far as
    it goes, never further than the duration cap."""
    declared = int.from_bytes(data[4:8], "little")
    if 0 < declared + 8 <= max_bytes and len(data) < declared + 8:
        raise InputError(f"{name}: truncated WAV data ({len(data)} of {declared + 8} bytes)")


def _frames(container, stream) -> Iterator[np.ndarray]:
    """Each decoded frame as mono float32 (channels averaged)."""
    import av

    to_float = av.AudioResampler(format="fltp")  # same layout and rate: only the sample format
    for packet in container.demux(stream):
        for frame in packet.decode():
            for f in to_float.resample(frame):
                yield f.to_ndarray().mean(axis=0, dtype=np.float32)


def _too_long(name: str, seconds: float, limits: AudioLimits, prefix: str = "") -> str:
    return f"{name}: {prefix}{seconds:.1f} s of audio, over the limit of {limits.max_seconds:g} s"


@dataclass(frozen=True)
class Window:
    """One cut of a clip: its samples and where it sits, in seconds."""

    samples: np.ndarray
    start: float
    end: float


def windows(wave: Waveform, seconds: float = 10.0, min_seconds: float = 0.5) -> list[Window]:
    """Back-to-back windows of `seconds`; a last piece shorter than `min_seconds` joins the one
    before it (a clip shorter than that is one window)."""
    if seconds <= 0:
        raise InputError(f"window length must be positive, not {seconds}")
    step, n = round(seconds * wave.rate), len(wave.samples)
    bounds = [*list(range(0, n, step)), n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < min_seconds * wave.rate:
        del bounds[-2]
    return [
        Window(wave.samples[a:b], a / wave.rate, b / wave.rate)
        for a, b in itertools.pairwise(bounds)
    ]


#: container -> (PyAV muxer, encoder, sample format) used by `encode_audio`
WRITERS = {
    "WAV": ("wav", "pcm_s16le", "s16"),
    "FLAC": ("flac", "flac", "s16"),
    # Ogg Vorbis is written by libsndfile: FFmpeg's own Vorbis encoder is experimental
    "Ogg": ("ogg", "vorbis", ""),
    "Opus": ("ogg", "libopus", "flt"),
    "MP3": ("mp3", "libmp3lame", "fltp"),
    "M4A": ("mp4", "aac", "fltp"),
    "AAC": ("adts", "aac", "fltp"),
}


def encode_audio(samples: np.ndarray, rate: int, kind: str = "WAV") -> bytes:
    """Encode float32 samples ((n,) mono or (channels, n)) in [-1, 1] as one of `WRITERS`.

    Used by tests, benchmarks and the demo to make their own files; no input reaches it."""
    import av

    muxer, codec, fmt = WRITERS[kind]
    planar = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    if codec == "vorbis":
        import soundfile

        buf = io.BytesIO()
        soundfile.write(buf, planar.T, rate, format="OGG", subtype="VORBIS")
        return buf.getvalue()
    layout = {1: "mono", 2: "stereo"}[planar.shape[0]]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=muxer) as out:
        stream = out.add_stream(codec, rate=48_000 if codec == "libopus" else rate, layout=layout)
        resampler = av.AudioResampler(format=fmt, layout=layout, rate=stream.rate)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(planar), format="fltp", layout=layout
        )
        frame.sample_rate = rate
        for f in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()
