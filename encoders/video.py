"""Safe decoding of untrusted video bytes into sampled RGB frames, shot boundaries and the audio
track; and cutting a decoded video into timed segments.

Owns the rules every video passes before it reaches a tower: an allow-list of containers and
codecs sniffed from the bytes (never from a name or content type), caps on compressed size,
duration, sampled frames and pixels per frame (from the header, and again on every decoded frame),
and decoding that stops at the duration cap instead of trusting the header. Frames are decoded by
PyAV (its own FFmpeg) and only the sampled ones are converted to RGB, scaled down to `side` pixels
on the short side on the way; shot boundaries come from the difference between thumbnails of
consecutive frames against its recent level (an adaptive threshold). Writing video files (for
tests, benchmarks, training data and the demo) is housedata.writer's, not this module's. Knows
nothing of models, FAISS or HTTP.
"""

from __future__ import annotations

import io
import itertools
import os
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from encoders.audio import AudioLimits, Waveform, decode_audio
from encoders.decode import input_bytes
from encoders.errors import InputError

#: container -> (PyAV demuxer, codecs its video stream may carry)
FORMATS: dict[str, tuple[str, frozenset[str]]] = {
    "MP4": ("mp4", frozenset({"h264", "hevc", "mpeg4", "av1", "libdav1d", "vp9"})),
    "WebM": ("matroska", frozenset({"vp8", "vp9", "av1", "libdav1d", "h264", "hevc"})),
    "GIF": ("gif", frozenset({"gif"})),
}
ALLOWED = "MP4/MOV (H.264, HEVC, MPEG-4, AV1, VP9), WebM/Matroska (VP8, VP9, AV1, H.264), GIF"
#: the cut detector: a frame starts a shot when the mean absolute difference between its 32 px
#: thumbnail and the previous frame's (0 to 1) is at least CUT_MIN and at least CUT_RATIO times
#: the largest difference among the CUT_WINDOW frames before it (motion raises that level, so a
#: moving camera or object is not taken for cuts; a cut raises it too, so shots are at least
#: CUT_WINDOW frames long), and not within the first two frames
CUT_MIN, CUT_RATIO, CUT_WINDOW = 0.03, 3.0, 8
_THUMB = 32


@dataclass(frozen=True)
class VideoLimits:
    """What a caller accepts; every refusal names the limit it hit."""

    max_seconds: float = 600.0
    max_frames: int = 1200
    max_pixels: int = 3840 * 2160
    max_bytes: int = 256 * 1024 * 1024


@dataclass
class Video:
    """A decoded video: sampled frames (RGB, short side at most the decoder's `side`) with their
    times in seconds, its duration, shot boundaries (seconds, when asked for) and its audio track
    (mono at the rate asked for, when asked for and present)."""

    frames: list[Image.Image]
    times: list[float]
    duration: float
    cuts: list[float] = field(default_factory=list)
    audio: Waveform | None = None
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class Segment:
    """A span of a video and the indices of its sampled frames."""

    start: float
    end: float
    frames: list[int]


def sniff_video(head: bytes) -> str | None:
    """The allowed container whose magic bytes start `head`, or None. MP4 shares its `ftyp` box
    with M4A audio: whether it holds a video stream is found when it is opened."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "MP4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "WebM"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    return None


def has_video_stream(data: bytes) -> bool:
    """Whether an MP4/WebM/GIF file declares a video stream (reads the header only)."""
    import av

    kind = sniff_video(data[:16])
    if kind is None:
        return False
    try:
        with av.open(io.BytesIO(data), format=FORMATS[kind][0], mode="r") as c:
            return bool(c.streams.video)
    except (av.FFmpegError, ValueError, EOFError):
        return False


def decode_video(
    data: bytes | str | os.PathLike,
    *,
    fps: float = 1.0,
    side: int = 256,
    shots: bool = False,
    audio_rate: int | None = None,
    limits: VideoLimits = VideoLimits(),
    name: str | None = None,
) -> Video:
    """Decode one video, keeping a frame every 1/`fps` seconds (and, with `shots`, the first
    frame of every shot, so that every shot has one).

    Raises InputError, with a one-line message naming the input, for anything that is not a sane
    video of an allowed format within the limits.
    """
    data, name = input_bytes(data, name, "video", limits.max_bytes)
    if not fps > 0 or fps > 30:
        raise InputError(f"{name}: fps must be above 0 and at most 30, not {fps:g}")
    if side < 16:
        raise InputError(f"{name}: frame side must be at least 16 pixels, not {side}")
    kind = sniff_video(data[:16])
    if kind is None:
        raise InputError(f"{name}: not a supported video format (allowed: {ALLOWED})")
    video = _decode_frames(data, kind, fps, side, shots, limits, name)
    if audio_rate is not None:
        video.audio = audio_track(data, audio_rate, limits, name)
    return video


def _decode_frames(data: bytes, kind: str, fps: float, side: int, shots: bool,
                   limits: VideoLimits, name: str) -> Video:  # fmt: skip
    import av

    try:
        container = av.open(io.BytesIO(data), format=FORMATS[kind][0], mode="r")
    except (av.FFmpegError, ValueError, EOFError):
        raise InputError(f"{name}: corrupt {kind} header") from None
    with container:
        stream = _video_stream(container, kind, limits, name)
        declared = _declared_seconds(container, stream)
        if declared > limits.max_seconds + 1:
            raise InputError(_too_long(name, declared, limits, "the header declares "))
        out = Video([], [], 0.0, width=stream.codec_context.width,
                    height=stream.codec_context.height)  # fmt: skip
        try:
            _sample(container, stream, out, fps, side, shots, limits, name)
        except InputError:
            raise
        except (av.FFmpegError, ValueError, EOFError, MemoryError):
            raise InputError(f"{name}: truncated or corrupt {kind} data") from None
    if not out.frames:
        raise InputError(f"{name}: {kind} file holds no decodable video frames")
    if declared and out.duration < 0.9 * declared - 1.0:
        raise InputError(
            f"{name}: truncated {kind} data ({out.duration:.1f} s of a declared {declared:.1f} s)"
        )
    return out


def _video_stream(container, kind: str, limits: VideoLimits, name: str):
    streams = container.streams.video
    if not streams:
        raise InputError(f"{name}: {kind} file has no video stream")
    stream = streams[0]
    ctx = stream.codec_context
    if ctx.name not in FORMATS[kind][1]:
        raise InputError(f"{name}: codec '{ctx.name}' is not allowed in {kind} ({ALLOWED})")
    _check_pixels(ctx.width, ctx.height, limits, name)
    stream.thread_type = "AUTO"
    return stream


def _check_pixels(width: int, height: int, limits: VideoLimits, name: str) -> None:
    if width <= 0 or height <= 0:
        raise InputError(f"{name}: the video declares an empty frame ({width}x{height})")
    if width * height > limits.max_pixels:
        raise InputError(
            f"{name}: frames of {width}x{height} are {width * height / 1e6:.1f} megapixels, "
            f"over the limit of {limits.max_pixels / 1e6:g}"
        )


def _declared_seconds(container, stream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / 1e6 if container.duration else 0.0


def _sample(container, stream, out: Video, fps: float, side: int, shots: bool,
            limits: VideoLimits, name: str) -> None:  # fmt: skip
    """Walk every frame once: sampled ones to RGB, every one (with `shots`) past the cut
    detector."""
    step, due, last_t = 1.0 / fps, 0.0, 0.0
    detector = CutDetector() if shots else None
    for frame in container.decode(stream):
        t = frame.time if frame.time is not None else last_t
        if t > limits.max_seconds:
            raise InputError(_too_long(name, t, limits, "at least "))
        _check_pixels(frame.width, frame.height, limits, name)
        cut = detector is not None and detector(frame)
        if cut:
            out.cuts.append(round(t, 3))
        if t + 1e-6 >= due or cut:
            if len(out.frames) >= limits.max_frames:
                raise InputError(
                    f"{name}: more than {limits.max_frames} frames at {fps:g} per second, over "
                    f"the limit (sample less often, or send a shorter video)"
                )
            out.frames.append(_rgb(frame, side))
            out.times.append(round(t, 3))
            due = t + step if cut else max(due + step, t + step * 0.5)
        last_t = t
        out.duration = max(out.duration, t + _frame_seconds(frame, stream))


def _frame_seconds(frame, stream) -> float:
    if frame.duration and frame.time_base:
        return float(frame.duration * frame.time_base)
    rate = stream.average_rate or stream.guessed_rate
    return float(1 / rate) if rate else 0.0


def _rgb(frame, side: int) -> Image.Image:
    """The frame as RGB, its short side scaled down to `side` (never up), aspect kept."""
    w, h = frame.width, frame.height
    scale = min(1.0, side / min(w, h))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return frame.reformat(width=size[0], height=size[1], format="rgb24").to_image()


class CutDetector:
    """Called with every frame in order; True for a frame that starts a shot (see CUT_MIN)."""

    def __init__(self) -> None:
        self.prev: np.ndarray | None = None
        self.recent: list[float] = []  # the last CUT_WINDOW differences

    def __call__(self, frame) -> bool:
        thumb, prev = _thumb(frame), self.prev
        self.prev = thumb
        if prev is None:
            return False
        diff = float(np.abs(thumb - prev).mean())
        level = max(self.recent) if len(self.recent) >= 2 else float("inf")
        self.recent = [*self.recent[-(CUT_WINDOW - 1) :], diff]
        return diff >= CUT_MIN and diff >= CUT_RATIO * level


def _thumb(frame) -> np.ndarray:
    """The frame as a 32x32 RGB thumbnail, floats in [0, 1]."""
    # swscale's default interpolation: FAST_BILINEAR and AREA were 1.8x and 1.3x faster but
    # found every cut in 86 and 85 of bench/shots.py's 100 clips, against 96
    small = frame.reformat(width=_THUMB, height=_THUMB, format="rgb24").to_ndarray()
    return small.astype(np.float32) / 255.0


def audio_track(data: bytes, rate: int, limits: VideoLimits, name: str) -> Waveform | None:
    """The first audio stream decoded to mono at `rate`, or None when the video has none. Safe on
    untrusted bytes by itself (the sound of a video that is only listened to): the container is
    sniffed, the size capped and a corrupt header refused, each with InputError."""
    import av

    data, name = input_bytes(data, name, "video", limits.max_bytes)
    kind = sniff_video(data[:16])
    if kind is None:
        raise InputError(f"{name}: not a supported video format (allowed: {ALLOWED})")
    try:
        c = av.open(io.BytesIO(data), format=FORMATS[kind][0], mode="r")
    except (av.FFmpegError, ValueError, EOFError):
        raise InputError(f"{name}: corrupt {kind} header") from None
    with c:
        if not c.streams.audio:
            return None
    audio_limits = AudioLimits(max_seconds=limits.max_seconds, max_bytes=limits.max_bytes)
    return decode_audio(data, rate, limits=audio_limits, name=f"{name} (audio track)",
                        kind="M4A" if kind == "MP4" else "WebM")  # fmt: skip


def sound_windows(wave: Waveform | None, spans: list[tuple[float, float]],
                  min_seconds: float = 0.1) -> list[tuple[int, Waveform]]:  # fmt: skip
    """Each span's stretch of a video's sound track, with the span's index: a span shorter than
    `min_seconds`, or a video without a sound track, has none."""
    if wave is None:
        return []
    out = []
    for j, (a, b) in enumerate(spans):
        part = wave.samples[int(a * wave.rate) : int(b * wave.rate)]
        if len(part) >= wave.rate * min_seconds:
            out.append((j, Waveform(part, wave.rate)))
    return out


def _too_long(name: str, seconds: float, limits: VideoLimits, prefix: str = "") -> str:
    return f"{name}: {prefix}{seconds:.1f} s of video, over the limit of {limits.max_seconds:g} s"


def segments(
    video: Video,
    interval: float | None = 4.0,
    *,
    shots: bool = False,
    start: float = 0.0,
    end: float | None = None,
) -> list[Segment]:
    """Cut [start, end) of a decoded video into back-to-back spans of `interval` seconds (the last
    one shorter), or at its shot boundaries with `shots`. Every span holds at least one sampled
    frame: a span with none takes the sampled frame nearest its middle."""
    end = video.duration if end is None else min(end, video.duration)
    if start < 0 or start >= end:
        raise InputError(f"segment range {start:g}-{end:g} s is empty (the video is "
                         f"{video.duration:.3f} s long)")  # fmt: skip
    if shots:
        bounds = [start, *[c for c in video.cuts if start < c < end], end]
    else:
        if interval is None or not interval > 0:
            raise InputError(f"interval must be a positive number of seconds, not {interval}")
        n = int(np.ceil((end - start) / interval - 1e-9))
        bounds = [start + i * interval for i in range(n)] + [end]
    out = []
    times = np.asarray(video.times)
    for a, b in itertools.pairwise(bounds):
        inside = [i for i, t in enumerate(video.times) if a - 1e-6 <= t < b - 1e-6]
        if not inside:
            inside = [int(np.abs(times - (a + b) / 2).argmin())]
        out.append(Segment(round(a, 3), round(b, 3), inside))
    return out


@dataclass
class VideoEmbedding:
    """A video's whole vector and, per segment, its span and vector (all in the image space)."""

    vector: np.ndarray
    segments: list[Segment]
    segment_vectors: np.ndarray


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


POOLINGS = ("mean", "temporal")


def pool(frame_vectors: np.ndarray, spans: list[Segment], head=None) -> VideoEmbedding:
    """Mean pooling, or with a temporal head (encoders.temporal) the head's pooling of each
    segment's frames and of all of them."""
    if head is None:
        return mean_pool(frame_vectors, spans)
    if len(frame_vectors) == 0:
        raise InputError("a video needs at least one frame to embed")
    out = head.pool([frame_vectors, *[frame_vectors[s.frames] for s in spans]])
    return VideoEmbedding(out[0], spans, out[1:])


def pool_videos(videos: list[Video], frame_vectors: np.ndarray, spans: list[list[Segment]],
                head=None) -> list[VideoEmbedding]:  # fmt: skip
    """`pool` per video, where `frame_vectors` holds every video's sampled frames in order."""
    out, at = [], 0
    for v, s in zip(videos, spans, strict=True):
        out.append(pool(frame_vectors[at : at + len(v.frames)], s, head))
        at += len(v.frames)
    return out


def mean_pool(frame_vectors: np.ndarray, spans: list[Segment]) -> VideoEmbedding:
    """Mean pooling (CLIP4Clip's meanP): a segment's vector is the normalised mean of its frames'
    vectors, the whole video's the normalised mean of all its frames'."""
    if len(frame_vectors) == 0:
        raise InputError("a video needs at least one frame to embed")
    segs = np.stack([_unit(frame_vectors[s.frames].mean(0)) for s in spans])
    return VideoEmbedding(_unit(frame_vectors.mean(0)), spans, segs)
