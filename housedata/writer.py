"""Writing video files offline: RGB frames (and an optional mono track) as MP4, WebM or GIF.

Owns the container and codec choices (`WRITERS`) for the files that tests, benchmarks, training
data and the demo make for themselves; reading untrusted video is encoders.video's job, not this.
Imports numpy and PyAV (lazily); nothing of the project's other packages.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from encoders.audio import Waveform

#: container -> (PyAV muxer, video encoder, pixel format, audio encoder) used by `write_video`
WRITERS = {
    "MP4": ("mp4", "libx264", "yuv420p", "aac"),
    "WebM": ("webm", "libvpx-vp9", "yuv420p", "libopus"),
    "GIF": ("gif", "gif", "rgb8", None),
}


def write_video(frames: list[np.ndarray], fps: float = 8.0, kind: str = "MP4",
                 audio: Waveform | None = None) -> bytes:  # fmt: skip
    """Encode RGB uint8 frames (h, w, 3), with an optional mono audio track, as one of `WRITERS`.

    Used by tests, benchmarks, training data and the demo to make their own files; no input
    reaches it (decoding is encoders.video's)."""
    import fractions

    import av

    muxer, codec, pix, audio_codec = WRITERS[kind]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=muxer) as out:
        stream = out.add_stream(codec, rate=fractions.Fraction(fps).limit_denominator(1000))
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = pix
        sound = None
        if audio is not None and audio_codec is not None:
            rate = 48_000 if audio_codec == "libopus" else audio.rate
            sound = out.add_stream(audio_codec, rate=rate, layout="mono")
        for a in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(a, np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
        if sound is not None:
            _mux_audio(out, sound, audio)
    return buf.getvalue()


def _mux_audio(out, sound, audio: Waveform) -> None:
    import av

    resampler = av.AudioResampler(format=sound.codec_context.format.name, layout="mono",
                                  rate=sound.rate)  # fmt: skip
    frame = av.AudioFrame.from_ndarray(audio.samples[None].astype(np.float32), format="fltp",
                                       layout="mono")  # fmt: skip
    frame.sample_rate = audio.rate
    for f in [*resampler.resample(frame), *resampler.resample(None)]:
        out.mux(sound.encode(f))
    out.mux(sound.encode(None))
