"""The served model's towers behind one dynamic batcher each (text, image, and audio where the
model has it): what a batch of decoded inputs becomes. The model calls run in the batchers' worker
threads; the async methods wait on behalf of a request (its cancel event, the time limit).

Imports encoders and runtime's batcher, settings and waiting; no web framework.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from PIL import Image

from encoders import AUDIO, Encoder, Waveform
from runtime.batcher import Batcher
from runtime.settings import Settings, SettingsError
from runtime.waiting import arrived, wait

#: batches up to this size run on one intra-op thread (see `cores_for`)
SMALL_BATCH = 2


@contextlib.contextmanager
def cores_for(n: int) -> Iterator[None]:
    """A batch of one or two runs on one core: at that size a second intra-op thread costs more
    in waking it for every operation than it saves, and the other core stays with the event loop
    and decoding. Larger batches use every intra-op thread."""
    if n > SMALL_BATCH or torch.get_num_threads() == 1:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def batcher(settings: Settings, fn: Callable[[list], list]) -> Batcher:
    s = settings

    def run(batch: list) -> list:
        with cores_for(len(batch)):
            return fn(batch)

    return Batcher(
        run, max_batch=s.max_batch, max_wait_ms=s.max_wait_ms, queue_size=s.queue_size,
        max_queue_wait_ms=s.max_queue_wait_ms,
    )  # fmt: skip


class Towers:
    def __init__(self, encoder: Encoder, settings: Settings) -> None:
        self.encoder, self.settings = encoder, settings
        self.batchers: dict[str, Batcher] = {
            "text": batcher(settings, self._texts),
            "image": batcher(settings, self._images),
        }
        if AUDIO in encoder.modalities:
            self.batchers["audio"] = batcher(settings, self._audio)
            longest = encoder.max_audio_window
            if settings.audio_window_s and longest and settings.audio_window_s > longest:
                raise SettingsError(
                    f"audio_window_s ({settings.audio_window_s:g}) is longer than model "
                    f"'{encoder.name}' takes ({longest:g} s)"
                )

    # -- model calls, run in the batchers' worker threads -------------------------------------
    def _texts(self, texts: list[str]) -> list[tuple[np.ndarray, int, bool]]:
        res = self.encoder.encode_text(texts)
        return list(zip(res.vectors, res.n_tokens, res.truncated, strict=True))

    def _images(self, images: list[Image.Image]) -> list[np.ndarray]:
        return list(self.encoder.embed_images(images))

    def _audio(self, clips: list[Waveform]) -> list[tuple]:
        res = self.encoder.encode_audio(clips, self.settings.audio_window_s)
        return list(zip(res.vectors, res.segments, res.segment_vectors, strict=True))

    # -- async API ------------------------------------------------------------------------------
    async def run(self, modality: str, batch: list, cancel: asyncio.Event | None,
                  fresh: bool = False) -> list[Any]:  # fmt: skip
        """One submission of `batch` to the `modality` tower's batcher; its results in order.
        Its queue wait counts from the request's arrival, or from now with `fresh` (a stage that
        follows other model work, such as the texts of a transcript)."""
        fut = self.batchers[modality].submit(batch, None if fresh else arrived(cancel))
        return await wait(fut, cancel, self.settings.request_timeout_s)
