"""The runtime's parts, built once at start-up from the settings: the collections' catalog, the
limits, the media store, the speech recogniser (one, whichever model reads the words) and the
served models (runtime/models.py: per model its encoder, towers and batchers, decoders, pipeline,
trained classifiers and fusion heads, captioner and generator). `Runtime` only holds and starts
them; every job lives in a part, and the service hands each route the parts it uses. The default
model's parts are at hand as `encoder`, `pipeline`, ... for the callers that serve one model.

Imports encoders, index and runtime; no web framework.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from pathlib import Path

from encoders import Encoder
from index.backend import open_catalog
from runtime.batcher import Batcher
from runtime.captions import Captions
from runtime.decoders import Decoders
from runtime.generator import Generator
from runtime.limits import Limits
from runtime.media import MediaStore
from runtime.models import ModelParts, ModelSet, Observer
from runtime.pipeline import Pipeline
from runtime.registries import Models
from runtime.settings import Settings
from runtime.speech import Speech
from runtime.towers import Towers

log = logging.getLogger("jointspace.runtime")


class Runtime:
    def __init__(self, settings: Settings, encoder: Encoder | None = None) -> None:
        self.settings = settings
        data = Path(settings.data_dir)
        self.limits = Limits.of(settings)
        self.speech = Speech(settings)  # one recogniser, whichever model reads the words
        self.served = ModelSet(settings, self.limits, data, encoder, self.speech)
        self.catalog = open_catalog(
            settings.index_backend, data / "collections", min_free=settings.min_free_bytes,
            token=settings.milvus_token or "", search_device=settings.index_device,
        )  # fmt: skip
        self.media = MediaStore(data / "media")
        self._stopping = False
        self._collecting: asyncio.Future | None = None

    # -- the default model's parts ----------------------------------------------------------------
    @property
    def default(self) -> ModelParts:
        parts = self.served.default.parts
        if parts is None:
            raise RuntimeError(f"the default model '{self.served.default.id}' is not loaded")
        return parts

    @property
    def encoder(self) -> Encoder:
        return self.default.encoder

    @property
    def pipeline(self) -> Pipeline:
        return self.default.pipeline

    @property
    def towers(self) -> Towers:
        return self.default.towers

    @property
    def decoders(self) -> Decoders:
        return self.default.decoders

    @property
    def models(self) -> Models:
        return self.default.models

    @property
    def captions(self) -> Captions:
        return self.default.captions

    @property
    def generator(self) -> Generator | None:
        return self.default.generator

    @property
    def batchers(self) -> dict[str, Batcher]:
        """The default model's batchers by what they batch, and the speech recogniser's."""
        out = dict(self.default.batchers)
        if self.speech.batcher is not None:
            out["speech"] = self.speech.batcher
        return out

    def observe(self, on_batch, on_shed, on_wait, on_video=None, on_images=None) -> None:
        """Report every batch (model, modality, n, seconds), every shed job (model, modality, n,
        reason) and every job's wait from its request's arrival to its batch (model, modality,
        seconds), of the models loaded now and of those loaded later. The recogniser's batches
        carry its own name (`JOINTSPACE_ASR`) where a model's name would be."""
        self.served.observe(Observer(on_batch, on_shed, on_wait, on_video, on_images))
        if (b := self.speech.batcher) is not None:
            asr = self.settings.asr
            b.on_batch = functools.partial(on_batch, asr, "speech")
            b.on_shed = functools.partial(on_shed, asr, "speech")
            b.on_wait = functools.partial(on_wait, asr, "speech")

    async def start(self) -> None:
        self.served.start()
        if self.speech.batcher is not None:
            self.speech.batcher.start()
        started = time.time()
        self._collecting = asyncio.create_task(asyncio.to_thread(self.collect_media, started))

    async def stop(self) -> None:
        self._stopping = True
        if self._collecting is not None:
            try:  # a collection being collected at the moment finishes first
                await self._collecting
            except Exception:
                log.exception("collecting unreferenced media failed")
        await self.served.stop()
        if self.speech.batcher is not None:
            await self.speech.batcher.stop()
        self.catalog.close()

    async def wait_for_media(self) -> None:
        """Until the start-up collection of unreferenced media has finished."""
        if self._collecting is not None:
            await asyncio.shield(self._collecting)

    def collect_media(self, started: float) -> int:
        """At start, in a worker thread: the media files written before `started` that no item
        refers to (a crash between a write's media and its transaction) go; returns how many.
        Only collections with a media folder are opened."""
        gone = 0
        for name in self.catalog.names():
            if self._stopping:
                break
            if not self.media.has(name):
                continue
            try:
                gone += self.media.collect(name, self.catalog.get(name).ids(), started)
            except Exception:
                log.exception("collecting the media of collection '%s' failed", name)
        if gone:
            log.info("removed %d media files that no item refers to", gone)
        return gone
