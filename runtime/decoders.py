"""Decoding typed inputs into what the towers take, always off the event loop: images in a worker
thread, audio in one of two threads of its own, videos in one of a bounded number of workers. Owns
the checks of the served model's modalities (refusals name the models that have one) and applies
the limits.

Imports encoders, runtime.limits and runtime.inputs; no web framework.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

from encoders import (
    AUDIO,
    IMAGE,
    Encoder,
    InputError,
    UnsupportedModality,
    Video,
    Waveform,
    decode_audio,
    decode_image,
    decode_video,
)
from encoders.audio import sniff_audio
from encoders.registry import models_with
from encoders.speech import SPEECH_RATE
from encoders.video import audio_track, sniff_video
from runtime import inputs as I
from runtime.limits import Limits


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


class Decoders:
    #: called with (what, amount) as videos wait for and pass through the decode workers:
    #: "waiting" and "decoding" +1/-1, "frames" and "seconds" decoded (set by the app's metrics)
    on_video: Callable[[str, float], None] = staticmethod(lambda what, n: None)

    def __init__(self, encoder: Encoder, limits: Limits, video_workers: int) -> None:
        self.encoder, self.limits = encoder, limits
        self._video_slots = asyncio.Semaphore(video_workers)
        # audio decodes in two threads of its own: resampling is torch work, and torch in every
        # thread of the shared pool at once (six on two cores) ran at half the speed of two
        self._audio_pool = ThreadPoolExecutor(2, thread_name_prefix="audio-decode")

    def require(self, modality: str) -> None:
        """The encoder's UnsupportedModality, with the model specs that have `modality` added."""
        try:
            self.encoder.require(modality)
        except UnsupportedModality as e:
            raise UnsupportedModality(f"{e}; models with one: {models_with(modality)}") from None

    def check_text(self, text: str, label: str) -> str:
        limit = self.limits.max_text_chars
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{label} is empty")
        if len(text) > limit:
            raise InputError(f"{label} has {len(text)} characters, over the limit of {limit}")
        return text

    def read_image(self, data: bytes, name: str) -> Image.Image:
        self.require(IMAGE)
        return decode_image(data, max_pixels=self.limits.max_pixels, name=name)

    def read_clip(self, data: bytes, name: str) -> Clip:
        """Decode one clip at the model's rate, within the audio limits."""
        self.require(AUDIO)
        wave = decode_audio(data, self.encoder.audio_rate, limits=self.limits.audio, name=name)
        return Clip(wave, data)

    def read_video(self, data: bytes, name: str, shots: bool = False,
                   audio: bool = False) -> VideoClip:  # fmt: skip
        """Decode one video within the video limits, sampling `video_fps` frames a second (and
        the first frame of every shot with `shots`; its sound track at the model's rate with
        `audio`)."""
        self.require(IMAGE)
        if audio:
            self.require(AUDIO)
        video = decode_video(
            data, fps=self.limits.video_fps, side=256, shots=shots, limits=self.limits.video,
            name=name, audio_rate=self.encoder.audio_rate if audio else None,
        )  # fmt: skip
        return VideoClip(video, data)

    def read_speech(self, data: bytes, name: str, video: bool) -> np.ndarray:
        """The sound of a clip, or of a video's audio track (none: no samples), as mono float32
        at the recogniser's rate, within the audio (or video) limits: transcription is bounded by
        the same caps as decoding."""
        if video:
            wave = audio_track(data, SPEECH_RATE, self.limits.video, name)
            return np.zeros(0, np.float32) if wave is None else wave.samples
        return decode_audio(data, SPEECH_RATE, limits=self.limits.audio, name=name).samples

    async def speech(self, x: I.Audio | I.Spoken | I.Video) -> np.ndarray:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._audio_pool, self.read_speech, x.data, x.name,
                                          isinstance(x, I.Video))  # fmt: skip

    async def image(self, x: I.Image) -> Image.Image:
        return await asyncio.to_thread(self.read_image, x.data, x.name)

    async def audio(self, x: I.Audio) -> Clip:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._audio_pool, self.read_clip, x.data, x.name)

    async def video(self, x: I.Video) -> VideoClip:
        """`read_video` in one of `video_workers` threads. A request that goes away stops
        waiting, but its slot is held until its thread ends, so no more than `video_workers`
        videos are ever being decoded."""
        self.require(IMAGE)
        if x.cut.audio != "off":
            self.require(AUDIO)
        self.on_video("waiting", 1)
        try:
            await self._video_slots.acquire()
        finally:
            self.on_video("waiting", -1)
        self.on_video("decoding", 1)
        sound = x.cut.audio != "off"
        work = asyncio.ensure_future(asyncio.to_thread(self.read_video, x.data, x.name,
                                                       x.cut.shots, sound))  # fmt: skip

        def free(_: asyncio.Future) -> None:
            self.on_video("decoding", -1)
            self._video_slots.release()

        work.add_done_callback(free)
        clip = await asyncio.shield(work)
        self.on_video("frames", len(clip.video.frames))
        self.on_video("seconds", clip.video.duration)
        return clip
