"""Image generation: the served model's decoder and prior, loaded at start-up, behind their own
batcher, so that generation has its own queue limit, wait budget and metrics and never holds up
embedding.

One request is one job and runs alone (`max_batch=1`): a picture's pixels then depend only on the
request (vectors, steps, guidance, seed), never on what else was queued, so the same request with
the same seed returns the same bytes. PNG encoding happens in the same worker thread. Knows nothing
of HTTP.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from encoders import Encoder
from generation.decoder import load_decoder, require_decoder, sample
from generation.prior import has_prior, image_side, load_prior
from runtime.batcher import Batcher
from runtime.settings import Settings
from runtime.waiting import arrived, wait


@dataclass(frozen=True)
class Draw:
    vectors: np.ndarray  # (n, d) image-space vectors, one picture each
    steps: int
    guidance: float
    seed: int


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


class Generator:
    def __init__(self, folder: Path, settings: Settings) -> None:
        self.decoder = load_decoder(folder)
        self.prior = load_prior(folder) if has_prior(folder) else None
        self.batcher = Batcher(
            self._run, max_batch=1, max_wait_ms=0, queue_size=settings.generate_queue,
            max_queue_wait_ms=settings.max_generate_wait_ms,
        )  # fmt: skip
        self.on_images = lambda n: None  # the metrics' counter of pictures drawn
        self.timeout = settings.request_timeout_s

    def _run(self, jobs: list[Draw]) -> list[list[bytes]]:
        (job,) = jobs
        pixels = sample(self.decoder, job.vectors, job.steps, job.guidance, job.seed)
        self.on_images(len(pixels))
        return [[png(p) for p in pixels]]

    async def generate(self, job: Draw, cancel: asyncio.Event | None = None) -> list[bytes]:
        """PNG bytes of the job's pictures, through the generation batcher."""
        fut = self.batcher.submit([job], arrived(cancel))
        return (await wait(fut, cancel, self.timeout))[0]

    def image_vectors(self, text_vectors: np.ndarray) -> np.ndarray:
        """Text vectors moved into the image space by the prior (as they are without one)."""
        return image_side(self.prior, text_vectors)


def require_generator(gen: Generator | None, encoder: Encoder) -> Generator:
    """The generator, or NoDecoder naming the models that have one."""
    if gen is None:
        require_decoder(encoder)
    return gen
