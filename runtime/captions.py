"""The served model's captioner: found beside the model, its language model loaded on first use
(it takes seconds), behind its own batcher; jobs with the same options decode together.

Imports encoders, generation and runtime; no web framework.
"""

from __future__ import annotations

import asyncio

import numpy as np

from encoders import Encoder
from generation.captioner import (
    Captioner,
    captioner_dir,
    load_captioner,
    read_config,
    require_captioner,
)
from runtime.batcher import Batcher
from runtime.settings import Settings
from runtime.waiting import arrived, wait


class Captions:
    def __init__(self, encoder: Encoder, settings: Settings) -> None:
        self.encoder, self.settings = encoder, settings
        self.folder = captioner_dir(encoder)
        self._captioner: Captioner | None = None
        #: prefix positions one caption's vector becomes (from the captioner's config)
        self.prefix = 0
        self.batcher: Batcher | None = None
        if self.folder is not None:
            self.prefix = int(read_config(self.folder)["prefix"])
            self.batcher = Batcher(
                self._captions, max_batch=settings.caption_batch,
                max_wait_ms=settings.max_wait_ms, queue_size=settings.caption_queue,
                max_queue_wait_ms=settings.max_queue_wait_ms,
            )  # fmt: skip

    def require(self) -> None:
        if self.folder is None:
            require_captioner(self.encoder)  # raises NoCaptioner with the models that have one

    @property
    def loaded(self) -> bool:
        """Whether the captioner's language model has been loaded."""
        return self._captioner is not None

    def captioner(self) -> Captioner:
        """The model's captioner, loaded on first use."""
        if self._captioner is None:
            self._captioner = load_captioner(self.folder)
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

    async def caption(self, vectors: np.ndarray, max_tokens: int, beams: int,
                      cancel: asyncio.Event | None = None) -> list[tuple[str, int]]:  # fmt: skip
        """(caption, tokens) per vector, through the captions' batcher."""
        self.require()
        jobs = [(v, max_tokens, beams) for v in vectors]
        fut = self.batcher.submit(jobs, arrived(cancel))
        return await wait(fut, cancel, self.settings.request_timeout_s)
