"""The engine: one loaded encoder behind a dynamic batcher per modality, plus the collections.

Runs without the web stack (tests and the CLI drive it directly); the FastAPI app only translates
HTTP to these calls. Owns input limits that are not about HTTP (text length, image pixels) and the
media files kept beside the collections for the web page.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from encoders import Encoder, InputError, decode_image, load_encoder
from index import Catalog
from service.batcher import Batcher, Overloaded
from service.settings import Settings


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


class Engine:
    def __init__(self, settings: Settings, encoder: Encoder | None = None) -> None:
        self.settings = settings
        self.encoder = encoder or load_encoder(settings.model, device=settings.device)
        self.catalog = Catalog(
            Path(settings.data_dir) / "collections", min_free=settings.min_free_bytes,
            search_device=settings.index_device,
        )  # fmt: skip
        self.media_dir = Path(settings.data_dir) / "media"
        self.batchers = {
            "text": self._batcher(self._texts),
            "image": self._batcher(self._images),
        }

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

    # -- model calls, run in the batchers' worker threads -------------------------------------
    def _texts(self, texts: list[str]) -> list[tuple[np.ndarray, int, bool]]:
        res = self.encoder.encode_text(texts)
        return list(zip(res.vectors, res.n_tokens, res.truncated, strict=True))

    def _images(self, images: list[Image.Image]) -> list[np.ndarray]:
        return list(self.encoder.embed_images(images))

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
        return decode_image(data, max_pixels=self.settings.max_pixels, name=name)

    async def embed_images(
        self, images: list[Image.Image], cancel: asyncio.Event | None = None
    ) -> np.ndarray:
        out = await self._wait(self.batchers["image"].submit(images, _arrived(cancel)), cancel)
        return np.stack(out)

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
        name = media_name(item_id)
        d = self.media_dir / collection
        d.mkdir(parents=True, exist_ok=True)
        thumb = image.copy()
        thumb.thumbnail((256, 256))
        thumb.save(d / name)
        return name

    def delete_media(self, collection: str, item_ids: list[str]) -> None:
        """Remove the thumbnails of items deleted, or replaced by items without an image."""
        for item_id in item_ids:
            (self.media_dir / collection / media_name(item_id)).unlink(missing_ok=True)

    def drop_media(self, collection: str) -> None:
        shutil.rmtree(self.media_dir / collection, ignore_errors=True)


def media_name(item_id: str) -> str:
    return hashlib.sha1(item_id.encode()).hexdigest()[:20] + ".png"
