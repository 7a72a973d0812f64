"""The engine: one loaded encoder behind a dynamic batcher per modality, plus the collections.

Runs without the web stack (tests and the CLI drive it directly); the FastAPI app only translates
HTTP to these calls. Owns input limits that are not about HTTP (text length, image pixels, audio
duration, channels and rates, video duration, frames and pixels) and the media files kept beside
the collections for the web page (image thumbnails, the audio of audio items and the video of video
items for playback). Audio and video are decoded off the event loop, video in a bounded number of
workers; a video's frames go through the image batcher. A model with an image decoder gets a
generator (service/generator.py) with its own batcher for /generate.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from encoders import (
    AUDIO,
    IMAGE,
    AudioLimits,
    Encoder,
    InputError,
    UnsupportedModality,
    Video,
    VideoEmbedding,
    VideoLimits,
    Waveform,
    decode_audio,
    decode_image,
    decode_video,
    load_encoder,
)
from encoders.audio import sniff_audio
from encoders.registry import models_with
from encoders.video import pool_videos, segments, sniff_video
from fusion.classifier import Classifier
from fusion.head import FusionHead
from fusion.registry import Registry, head_registry
from generation.captioner import (
    Captioner,
    captioner_dir,
    load_captioner,
    read_config,
    require_captioner,
)
from generation.decoder import decoder_dir, require_decoder
from index.backend import open_catalog
from runtime.batcher import Batcher, Overloaded
from runtime.generator import Draw, Generator
from runtime.settings import Settings, SettingsError


class Cancel(asyncio.Event):
    """Set when the request's client goes away. Carries the time the request arrived, where its
    queue-wait budget starts (time spent reading and parsing it counts too)."""

    def __init__(self, arrived: float | None = None) -> None:
        super().__init__()
        self.arrived = arrived


def _arrived(cancel: asyncio.Event | None) -> float | None:
    return getattr(cancel, "arrived", None)


class ModelError(RuntimeError):
    """The model failed on a batch; the requests of that batch fail with it."""


@dataclass
class TextResult:
    vectors: np.ndarray
    n_tokens: list[int]
    truncated: list[bool]


@dataclass
class AudioResult:
    """Per clip: its pooled vector, and its windows as (start s, end s) with a vector each."""

    vectors: np.ndarray
    segments: list[list[tuple[float, float]]]
    segment_vectors: list[np.ndarray]


@dataclass(frozen=True)
class Clip:
    """A decoded clip and the bytes it came as (kept as playable media)."""

    wave: Waveform
    data: bytes

    @property
    def kind(self) -> str:
        """The container, as the decoder sniffed it (WAV, FLAC, Ogg, MP3, M4A, AAC)."""
        return sniff_audio(self.data[:16])


@dataclass(frozen=True)
class VideoClip:
    """A decoded video and the bytes it came as (kept as playable media)."""

    video: Video
    data: bytes

    @property
    def kind(self) -> str:
        """The container, as the decoder sniffed it (MP4, WebM, GIF)."""
        return sniff_video(self.data[:16])


@dataclass(frozen=True)
class Cut:
    """How a video is cut into segments: `interval` seconds, or at shot boundaries, within
    [start, end) seconds (end None: to the end)."""

    interval: float | None = None
    shots: bool = False
    start: float = 0.0
    end: float | None = None
    pooling: str | None = None  # None: the service's video_pooling


class Engine:
    #: called with (what, amount) as videos wait for and pass through the decode workers:
    #: "waiting" and "decoding" +1/-1, "frames" and "seconds" decoded (set by the app's metrics)
    on_video: Callable[[str, float], None] = staticmethod(lambda what, n: None)

    def __init__(self, settings: Settings, encoder: Encoder | None = None) -> None:
        self.settings = settings
        self.encoder = encoder or load_encoder(settings.model, device=settings.device)
        self.catalog = open_catalog(
            settings.index_backend, Path(settings.data_dir) / "collections",
            min_free=settings.min_free_bytes, token=settings.milvus_token or "",
            search_device=settings.index_device,
        )  # fmt: skip
        self.media_dir = Path(settings.data_dir) / "media"
        self.classifiers = Registry(Path(settings.data_dir) / "classifiers")
        self.classifiers.interrupted()  # left 'training' by a process that stopped: failed
        self.heads = head_registry(Path(settings.data_dir))
        self.training: dict[str, asyncio.Task] = {}
        self._loaded: dict[tuple[str, str], tuple[float, Any]] = {}
        self.batchers = {
            "text": self._batcher(self._texts),
            "image": self._batcher(self._images),
        }
        if AUDIO in self.encoder.modalities:
            self.batchers["audio"] = self._batcher(self._audio)
            longest = self.encoder.max_audio_window
            if settings.audio_window_s and longest and settings.audio_window_s > longest:
                raise SettingsError(
                    f"audio_window_s ({settings.audio_window_s:g}) is longer than model "
                    f"'{self.encoder.name}' takes ({longest:g} s)"
                )
        self.captioner_dir = captioner_dir(self.encoder)
        self._captioner: Captioner | None = None
        #: prefix positions one caption's vector becomes (from the captioner's config)
        self.caption_prefix = 0
        if self.captioner_dir is not None:
            self.caption_prefix = int(read_config(self.captioner_dir)["prefix"])
            self.batchers["caption"] = Batcher(
                self._captions, max_batch=settings.caption_batch, max_wait_ms=settings.max_wait_ms,
                queue_size=settings.caption_queue, max_queue_wait_ms=settings.max_queue_wait_ms,
            )  # fmt: skip
        self.generator: Generator | None = None
        if (folder := decoder_dir(self.encoder)) is not None:
            self.generator = Generator(folder, settings)
            self.batchers["generate"] = self.generator.batcher
        self.audio_limits = AudioLimits(
            max_seconds=settings.max_audio_seconds, max_channels=settings.max_audio_channels,
            min_rate=settings.min_audio_rate, max_rate=settings.max_audio_rate,
            max_bytes=settings.max_audio_bytes,
        )  # fmt: skip
        self.video_limits = VideoLimits(
            max_seconds=settings.max_video_seconds, max_frames=settings.max_video_frames,
            max_pixels=settings.max_video_pixels, max_bytes=settings.max_video_bytes,
        )  # fmt: skip
        self._video_slots = asyncio.Semaphore(settings.video_workers)

    def _batcher(self, fn) -> Batcher:
        s = self.settings
        return Batcher(
            fn, max_batch=s.max_batch, max_wait_ms=s.max_wait_ms, queue_size=s.queue_size,
            max_queue_wait_ms=s.max_queue_wait_ms,
        )  # fmt: skip

    def observe(self, on_batch, on_shed, on_wait) -> None:
        """Report every batch (modality, n, seconds), every shed job (modality, n, reason) and
        every job's wait from its request's arrival to its batch (modality, seconds)."""
        for modality, b in self.batchers.items():
            b.on_batch = functools.partial(on_batch, modality)
            b.on_shed = functools.partial(on_shed, modality)
            b.on_wait = functools.partial(on_wait, modality)

    async def start(self) -> None:
        for b in self.batchers.values():
            b.start()

    async def stop(self) -> None:
        for b in self.batchers.values():
            await b.stop()
        self.catalog.close()

    def classifier(self, name: str) -> Classifier:
        """The ready classifier `name` for the served model (reloaded when it was retrained)."""
        return self._ready(self.classifiers, name)

    def fusion_head(self, name: str) -> FusionHead:
        """The fusion head `name` for the served model (reloaded when it was retrained)."""
        return self._ready(self.heads, name)

    def _ready(self, registry: Registry, name: str) -> Any:
        stamp = registry.status(name).get("updated", 0.0)
        hit = self._loaded.get((registry.noun, name))
        if hit is None or hit[0] != stamp:
            hit = (stamp, registry.load(name, self.encoder.name))
            self._loaded[(registry.noun, name)] = hit
        return hit[1]

    # -- model calls, run in the batchers' worker threads -------------------------------------
    def _texts(self, texts: list[str]) -> list[tuple[np.ndarray, int, bool]]:
        res = self.encoder.encode_text(texts)
        return list(zip(res.vectors, res.n_tokens, res.truncated, strict=True))

    def _images(self, images: list[Image.Image]) -> list[np.ndarray]:
        return list(self.encoder.embed_images(images))

    def _audio(self, clips: list[Waveform]) -> list[tuple]:
        res = self.encoder.encode_audio(clips, self.settings.audio_window_s)
        return list(zip(res.vectors, res.segments, res.segment_vectors, strict=True))

    def captioner(self) -> Captioner:
        """The model's captioner, loaded on first use (its language model takes seconds)."""
        if self._captioner is None:
            self._captioner = load_captioner(self.captioner_dir)
        return self._captioner

    def _captions(self, jobs: list[tuple[np.ndarray, int, int]]) -> list[tuple[str, int]]:
        """Jobs (vector, max_tokens, beams); those with the same options decode together."""
        out: list[tuple[str, int]] = [("", 0)] * len(jobs)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, (_, tokens, beams) in enumerate(jobs):
            groups.setdefault((tokens, beams), []).append(i)
        cap = self.captioner()
        for (tokens, beams), idx in groups.items():
            vecs = np.stack([jobs[i][0] for i in idx])
            for i, res in zip(idx, cap.caption_counted(vecs, tokens, beams), strict=True):
                out[i] = res
        return out

    # -- async API ------------------------------------------------------------------------------
    def check_texts(self, texts: list[str]) -> None:
        limit = self.settings.max_text_chars
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise InputError(f"text {i} is empty")
            if len(t) > limit:
                raise InputError(f"text {i} has {len(t)} characters, over the limit of {limit}")

    async def embed_texts(
        self, texts: list[str], truncate: bool = False, cancel: asyncio.Event | None = None
    ) -> TextResult:
        self.check_texts(texts)
        out = await self._wait(self.batchers["text"].submit(texts, _arrived(cancel)), cancel)
        truncated = [bool(r[2]) for r in out]
        if not truncate and any(truncated):
            i = truncated.index(True)
            raise InputError(
                f"text {i} is longer than the model's {self.encoder.context_length}-token context: "
                "shorten it or pass truncate=true"
            )
        return TextResult(np.stack([r[0] for r in out]), [int(r[1]) for r in out], truncated)

    def decode(self, data: bytes, name: str) -> Image.Image:
        self.require(IMAGE)
        return decode_image(data, max_pixels=self.settings.max_pixels, name=name)

    async def embed_images(
        self, images: list[Image.Image], cancel: asyncio.Event | None = None
    ) -> np.ndarray:
        self.require(IMAGE)
        out = await self._wait(self.batchers["image"].submit(images, _arrived(cancel)), cancel)
        return np.stack(out)

    async def caption(
        self, vectors: np.ndarray, max_tokens: int, beams: int, cancel: asyncio.Event | None = None
    ) -> list[tuple[str, int]]:
        """(caption, tokens) per vector, through the captions' batcher."""
        self.require_captioner()
        jobs = [(v, max_tokens, beams) for v in vectors]
        return await self._wait(self.batchers["caption"].submit(jobs, _arrived(cancel)), cancel)

    async def generate(self, job: Draw, cancel: asyncio.Event | None = None) -> list[bytes]:
        """PNG bytes of the job's pictures, through the generation batcher."""
        self.require_generator()
        fut = self.batchers["generate"].submit([job], _arrived(cancel))
        return (await self._wait(fut, cancel))[0]

    def require_generator(self) -> Generator:
        if self.generator is None:
            require_decoder(self.encoder)  # raises NoDecoder with the models that have one
        return self.generator

    def require_captioner(self) -> None:
        if self.captioner_dir is None:
            require_captioner(self.encoder)  # raises NoCaptioner with the models that have one

    def require(self, modality: str) -> None:
        """The encoder's UnsupportedModality, with the model specs that have `modality` added."""
        try:
            self.encoder.require(modality)
        except UnsupportedModality as e:
            raise UnsupportedModality(f"{e}; models with one: {models_with(modality)}") from None

    def read_clip(self, data: bytes, name: str) -> Clip:
        """Decode one clip at the model's rate, within the service's audio limits."""
        self.require(AUDIO)
        wave = decode_audio(data, self.encoder.audio_rate, limits=self.audio_limits, name=name)
        return Clip(wave, data)

    async def decode_audio(self, data: bytes, name: str) -> Clip:
        """`read_clip` in a worker thread: decoding takes a while, the event loop must not wait."""
        return await asyncio.to_thread(self.read_clip, data, name)

    async def embed_audio(
        self, clips: list[Clip], cancel: asyncio.Event | None = None
    ) -> AudioResult:
        waves = [c.wave for c in clips]
        out = await self._wait(self.batchers["audio"].submit(waves, _arrived(cancel)), cancel)
        return AudioResult(np.stack([r[0] for r in out]), [r[1] for r in out], [r[2] for r in out])

    def read_video(self, data: bytes, name: str, shots: bool = False) -> VideoClip:
        """Decode one video within the service's video limits, sampling `video_fps` frames a
        second (and the first frame of every shot with `shots`)."""
        self.require(IMAGE)
        video = decode_video(
            data, fps=self.settings.video_fps, side=256, shots=shots, limits=self.video_limits,
            name=name,
        )  # fmt: skip
        return VideoClip(video, data)

    async def decode_video(self, data: bytes, name: str, shots: bool = False) -> VideoClip:
        """`read_video` in one of `video_workers` threads. A request that goes away stops
        waiting, but its slot is held until its thread ends, so no more than `video_workers`
        videos are ever being decoded."""
        self.require(IMAGE)
        self.on_video("waiting", 1)
        try:
            await self._video_slots.acquire()
        finally:
            self.on_video("waiting", -1)
        self.on_video("decoding", 1)
        work = asyncio.ensure_future(asyncio.to_thread(self.read_video, data, name, shots))

        def free(_: asyncio.Future) -> None:
            self.on_video("decoding", -1)
            self._video_slots.release()

        work.add_done_callback(free)
        clip = await asyncio.shield(work)
        self.on_video("frames", len(clip.video.frames))
        self.on_video("seconds", clip.video.duration)
        return clip

    async def embed_videos(
        self, clips: list[VideoClip], cut: Cut = Cut(), cancel: asyncio.Event | None = None
    ) -> list[VideoEmbedding]:
        """Per video its whole vector and its segments' vectors: the sampled frames of all the
        videos through the image batcher together, then pooling per segment (by the mean, or by
        the temporal head)."""
        head = self.encoder.pooling_head(self.pooling(cut.pooling))
        interval = cut.interval or self.settings.video_interval_s
        spans = [segments(c.video, interval, shots=cut.shots, start=cut.start, end=cut.end)
                 for c in clips]  # fmt: skip
        videos = [c.video for c in clips]
        vecs = await self.embed_images([f for v in videos for f in v.frames], cancel=cancel)
        # the head is a forward pass: off the event loop (mean pooling is a few numpy sums)
        if head is None:
            return pool_videos(videos, vecs, spans)
        return await asyncio.to_thread(pool_videos, videos, vecs, spans, head)

    def pooling(self, asked: str | None) -> str:
        """The pooling a request gets: what it asked for, else the setting, where "auto" is the
        temporal head when the model has one."""
        chosen = asked or self.settings.video_pooling
        if chosen == "auto":
            return "temporal" if self.encoder.temporal_head is not None else "mean"
        return chosen

    async def _wait(self, fut: asyncio.Future, cancel: asyncio.Event | None):
        """Wait for a batch result; give up (cancelling the job) if `cancel` is set first."""
        stop = asyncio.ensure_future(cancel.wait()) if cancel is not None else None
        try:
            done, _ = await asyncio.wait(
                {fut} if stop is None else {fut, stop}, timeout=self.settings.request_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )  # fmt: skip
        finally:
            if stop is not None:
                stop.cancel()
        if fut in done:
            return self._result(fut)
        fut.cancel()
        if not done:
            raise TimeoutError("the model did not answer in time")
        raise asyncio.CancelledError("client went away")

    @staticmethod
    def _result(fut: asyncio.Future):
        try:
            return fut.result()
        except (InputError, Overloaded, asyncio.CancelledError):
            raise
        except Exception as e:
            raise ModelError(f"{type(e).__name__}: {e}") from e

    # -- media for the web page ----------------------------------------------------------------
    def save_media(self, collection: str, item_id: str, image: Image.Image) -> str:
        """A small PNG of an item's image; returns its name under /media/{collection}/."""
        thumb = image.copy()
        thumb.thumbnail((256, 256))
        buf = io.BytesIO()
        thumb.save(buf, format="PNG")
        return self._put_media(collection, item_id, ".png", buf.getvalue())

    def save_audio_media(self, collection: str, item_id: str, clip: Clip) -> str:
        """The clip's bytes as they came (already decoded once, so known to be sane)."""
        return self._put_media(collection, item_id, AUDIO_SUFFIX[clip.kind], clip.data)

    def save_video_media(self, collection: str, item_id: str, clip: VideoClip) -> str:
        """The video's bytes as they came (already decoded once, so known to be sane)."""
        return self._put_media(collection, item_id, VIDEO_SUFFIX[clip.kind], clip.data)

    def _put_media(self, collection: str, item_id: str, suffix: str, data: bytes) -> str:
        d = self.media_dir / collection
        d.mkdir(parents=True, exist_ok=True)
        name = media_stem(item_id) + suffix
        tmp = d / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(d / name)
        for old in MEDIA_TYPES:  # an item has one medium: a replaced one of another kind goes
            if old != suffix:
                (d / (media_stem(item_id) + old)).unlink(missing_ok=True)
        return name

    def find_media(self, collection: str, item_id: str) -> str | None:
        """The file name of an item's medium under /media/{collection}/, or None.

        Called for every search hit: plain string paths, the stem hashed once (an item with no
        medium costs one stat per suffix, about 2 us each)."""
        stem = os.path.join(self.media_dir, collection, media_stem(item_id))
        for suffix in MEDIA_TYPES:
            if os.path.isfile(stem + suffix):
                return os.path.basename(stem) + suffix
        return None

    def delete_media(self, collection: str, item_ids: list[str]) -> None:
        """Remove the media of items deleted, or replaced by items without an image or audio."""
        for item_id in item_ids:
            for suffix in MEDIA_TYPES:
                (self.media_dir / collection / (media_stem(item_id) + suffix)).unlink(
                    missing_ok=True
                )

    def drop_media(self, collection: str) -> None:
        shutil.rmtree(self.media_dir / collection, ignore_errors=True)


#: a medium's file suffix -> its content type
MEDIA_TYPES = {
    ".png": "image/png",
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".gif": "image/gif",
}
AUDIO_SUFFIX = {"WAV": ".wav", "FLAC": ".flac", "Ogg": ".ogg", "MP3": ".mp3", "M4A": ".m4a",
                "AAC": ".aac"}  # fmt: skip
VIDEO_SUFFIX = {"MP4": ".mp4", "WebM": ".webm", "GIF": ".gif"}


def media_stem(item_id: str) -> str:
    return hashlib.sha1(item_id.encode()).hexdigest()[:20]
