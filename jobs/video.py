"""Videos in batch jobs: the segment options of a job, decoding a video item in a worker, and
turning decoded videos into rows: the whole video, one row per segment (`start`/`end` filled)
and, with separate sound, one row per sound segment, under the ids and metadata a video item has
in a collection (index.children), so that `job ingest` stores a video as the API's upsert does.

The vectors are the API's: sampled frames through the image tower (batched across the videos of
a batch), pooled by their mean or by the temporal head (encoders.video), and each segment's sound
window through the audio tower, fused into the segment (fusion.fuse_sound) or kept as its own
row. Must not import anything of HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from encoders.base import AUDIO, Encoder
from encoders.errors import InputError
from encoders.video import POOLINGS, Video, VideoLimits, decode_video, pool, segments, sound_windows
from fusion import fuse_sound
from index.children import VIDEO_KEYS, taken, video_item_rows
from jobs.errors import JobError
from jobs.output import Row

SOUND = ("off", "fuse", "separate")
FRAME_SIDE = 256  # the service's too: frames are scaled to this short side as they are decoded


@dataclass(frozen=True)
class VideoOptions:
    """How a job cuts and embeds its videos: the API's `segments` options, and the decoder's
    sampling rate and limits."""

    fps: float = 1.0
    interval: float = 4.0
    shots: bool = False
    pooling: str = "auto"  # auto: the temporal head where the model has one, else the mean
    audio: str = "off"  # the sound track: off, fuse (into each segment) or separate (its own rows)
    weights: dict[str, float] | None = None  # fuse's image and audio weights (1 each by default)
    limits: VideoLimits = field(default_factory=VideoLimits)

    def resolved(self, enc: Encoder) -> VideoOptions:
        """These options for `enc`, with `auto` pooling chosen; JobError for options the model
        cannot follow (checked before any work starts)."""
        if self.audio not in SOUND:
            raise JobError(f"--video-audio must be one of {', '.join(SOUND)}, not '{self.audio}'")
        if self.audio != "off" and AUDIO not in enc.modalities:
            raise JobError(f"--video-audio {self.audio} needs an audio tower; model "
                           f"'{enc.name}' has none")  # fmt: skip
        if self.weights is not None:
            if self.audio != "fuse":
                raise JobError("--video-weights weigh the frames against the sound: they need "
                               "--video-audio fuse")  # fmt: skip
            unknown = sorted(set(self.weights) - {"image", "audio"})
            if unknown:
                raise JobError(f"--video-weights name image and audio, not {', '.join(unknown)}")
        pooling = self.pooling
        if pooling == "auto":
            pooling = "temporal" if enc.temporal_head is not None else "mean"
        if pooling not in POOLINGS:
            raise JobError(f"--pooling must be auto, {', '.join(POOLINGS)}, not '{pooling}'")
        try:
            enc.pooling_head(pooling)
        except InputError as e:
            raise JobError(str(e)) from None
        return VideoOptions(self.fps, self.interval, self.shots, pooling, self.audio,
                            self.weights, self.limits)  # fmt: skip

    def manifest(self) -> dict:
        """What a resumed job must cut and embed the same way (the manifest keeps it)."""
        return {"fps": self.fps, "interval": self.interval, "shots": self.shots,
                "pooling": self.pooling, "audio": self.audio, "weights": self.weights}  # fmt: skip


def decode(data: bytes, name: str, opts: VideoOptions, audio_rate: int, prefit) -> Video:
    """One video decoded within the limits (its sound track too when the job asks for it), its
    frames shrunk by the encoder's `image_prefit` (vectors unchanged) before they cross to the
    model's process."""
    rate = audio_rate if opts.audio != "off" else None
    video = decode_video(data, fps=opts.fps, side=FRAME_SIDE, shots=opts.shots,
                         limits=opts.limits, name=name, audio_rate=rate)  # fmt: skip
    if prefit is not None:
        video.frames = [prefit(f) for f in video.frames]
    return video


def check_metadata(metadata: dict) -> None:
    if keys := taken(metadata, VIDEO_KEYS):
        raise InputError(f"metadata key(s) {keys} are set on video rows; rename them")


def _chunked(fn, items: list, size: int) -> np.ndarray:
    return np.concatenate([fn(items[i : i + size]) for i in range(0, len(items), size)])


def embed_videos(enc: Encoder, items: list, videos: list[Video], opts: VideoOptions,
                 window: float | None, batch_size: int) -> list[list[Row] | str]:  # fmt: skip
    """Per video, in order: its rows, or why it has none. `items` are the videos' plan items;
    a refusal of the whole batch is retried video by video, so only the bad one fails."""
    try:
        frames = [f for v in videos for f in v.frames]
        vecs = _chunked(enc.embed_images, frames, batch_size)
        spans = [segments(v, opts.interval, shots=opts.shots) for v in videos]
        heard = _sound(enc, videos, spans, opts, window, batch_size)
    except InputError as e:
        if len(videos) == 1:
            return [str(e)]
        return [embed_videos(enc, [it], [v], opts, window, batch_size)[0]
                for it, v in zip(items, videos, strict=True)]  # fmt: skip
    out, at = [], 0
    head = enc.pooling_head(opts.pooling)
    for it, v, s, h in zip(items, videos, spans, heard, strict=True):
        try:
            out.append(_rows(it, v, pool(vecs[at : at + len(v.frames)], s, head), h, opts))
        except InputError as e:
            out.append(str(e))
        at += len(v.frames)
    return out


def _sound(enc: Encoder, videos: list[Video], spans: list, opts: VideoOptions,
           window: float | None, batch_size: int) -> list[dict[int, np.ndarray]]:  # fmt: skip
    """Per video, segment index -> its sound window's vector (none with `audio` off)."""
    heard: list[dict[int, np.ndarray]] = [{} for _ in videos]
    if opts.audio == "off":
        return heard
    owners, waves = [], []
    for k, (v, s) in enumerate(zip(videos, spans, strict=True)):
        for j, w in sound_windows(v.audio, [(x.start, x.end) for x in s]):
            owners.append((k, j))
            waves.append(w)
    if waves:
        vecs = _chunked(lambda b: enc.encode_audio(b, window).vectors, waves, batch_size)
        for (k, j), vec in zip(owners, vecs, strict=True):
            heard[k][j] = vec
    return heard


def _rows(it, video: Video, emb, heard: dict[int, np.ndarray], opts: VideoOptions) -> list[Row]:
    spans = [(s.start, s.end) for s in emb.segments]
    vector, segs, sound = emb.vector, emb.segment_vectors, None
    if opts.audio == "separate":
        sound = [(*spans[j], v) for j, v in sorted(heard.items())]
    elif opts.audio == "fuse":
        try:
            vector, segs = fuse_sound(vector, segs, heard, opts.weights)
        except ValueError as e:
            raise InputError(f"the sound fusion: {e}") from None
    ids, vecs, metas = video_item_rows(it.id, it.metadata, video.duration, vector, spans,
                                       list(segs), sound)  # fmt: skip
    rows = []
    for rid, vec, meta in zip(ids, vecs, metas, strict=True):
        a, b = meta.pop("start"), meta.pop("end")  # the row's own columns
        modality = "audio" if "sound_segment" in meta else "video"
        rows.append(Row(it.index, rid, it.source, modality, vec, meta, a, b))
    return rows
