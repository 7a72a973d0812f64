"""The service's speech recogniser: the Whisper model the `asr` setting names (resolved at
start-up, loaded on first use) behind its own batcher, so transcription runs off the event loop
with the same queue limits, load shedding and metrics as the towers. `JOINTSPACE_ASR=off` leaves
it out, and every use is refused with NoRecogniser.

Imports encoders and runtime's batcher, settings and waiting; no web framework.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import numpy as np

from encoders import ModelLoadError
from encoders.speech import NoRecogniser, Recogniser, Transcript, resolve_recogniser
from runtime.batcher import Batcher
from runtime.settings import Settings, SettingsError
from runtime.waiting import arrived, wait

#: clips transcribed in one batcher pass (Whisper runs them one after another)
SPEECH_BATCH = 4
OFF_MESSAGE = ("speech recognition is off on this service (JOINTSPACE_ASR=off): set "
               "JOINTSPACE_ASR to a Whisper size or model directory to turn it on")  # fmt: skip


def check_asr(settings: Settings) -> Path | None:
    """The recogniser's directory the `asr` setting names (None: off), or SettingsError saying
    what to set instead; cheap (nothing is loaded), so `jointspace serve` checks it first."""
    try:
        return resolve_recogniser(settings.asr)
    except ModelLoadError as e:
        raise SettingsError(f"asr (JOINTSPACE_ASR): {e}") from None


class Speech:
    #: called with the seconds of audio each transcription covered (set by the app's metrics)
    on_seconds: Callable[[float], None] = staticmethod(lambda seconds: None)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        folder = check_asr(settings)
        self.recogniser = Recogniser(folder) if folder is not None else None
        self.batcher: Batcher | None = None
        if self.recogniser is not None:
            self.batcher = Batcher(
                self._transcribe, max_batch=SPEECH_BATCH, max_wait_ms=settings.max_wait_ms,
                queue_size=settings.queue_size, max_queue_wait_ms=settings.max_speech_wait_ms,
            )  # fmt: skip

    def require(self) -> None:
        if self.recogniser is None:
            raise NoRecogniser(OFF_MESSAGE)

    def _transcribe(self, clips: list[np.ndarray]) -> list[Transcript]:
        out = [self.recogniser.transcribe(c) for c in clips]
        for t in out:
            self.on_seconds(t.seconds)
        return out

    async def transcribe(self, clips: list[np.ndarray],
                         cancel: asyncio.Event | None = None) -> list[Transcript]:  # fmt: skip
        """One transcript per clip (mono float32 at 16 kHz), through the speech batcher."""
        self.require()
        if not clips:
            return []
        fut = self.batcher.submit(clips, arrived(cancel))
        return await wait(fut, cancel, self.settings.request_timeout_s)
