"""The input limits, built once from the settings: text length, image pixels, audio (duration,
channels, rates, bytes) and video (duration, frames, pixels, bytes, sampled frames a second). The
service and the CLI read the same object.

Imports encoders and runtime.settings only.
"""

from __future__ import annotations

from dataclasses import dataclass

from encoders import AudioLimits, VideoLimits
from runtime.settings import Settings


@dataclass(frozen=True)
class Limits:
    max_text_chars: int
    max_pixels: int
    audio: AudioLimits
    video: VideoLimits
    video_fps: float

    @classmethod
    def of(cls, s: Settings) -> Limits:
        return cls(
            max_text_chars=s.max_text_chars, max_pixels=s.max_pixels,
            audio=AudioLimits(
                max_seconds=s.max_audio_seconds, max_channels=s.max_audio_channels,
                min_rate=s.min_audio_rate, max_rate=s.max_audio_rate, max_bytes=s.max_audio_bytes,
            ),
            video=VideoLimits(
                max_seconds=s.max_video_seconds, max_frames=s.max_video_frames,
                max_pixels=s.max_video_pixels, max_bytes=s.max_video_bytes,
            ),
            video_fps=s.video_fps,
        )  # fmt: skip

    @classmethod
    def defaults(cls) -> Limits:
        """The service's default limits (what `jointspace serve` applies with no settings)."""
        return cls.of(Settings.load({}))
