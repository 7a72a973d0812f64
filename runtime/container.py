"""The runtime's parts, built once at start-up from the settings: the encoder, the collections'
catalog, the limits, the decoders, the towers and their batchers, the pipeline, the media store,
the trained classifiers and fusion heads, the speech recogniser, the captioner and the generator.
`Runtime` only holds and starts them; every job lives in a part, and the service hands each route
the parts it uses.

Imports encoders, generation, index and runtime; no web framework.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from pathlib import Path

from encoders import Encoder, load_encoder
from generation.decoder import decoder_dir
from index.backend import open_catalog
from runtime.batcher import Batcher
from runtime.captions import Captions
from runtime.decoders import Decoders
from runtime.generator import Generator
from runtime.limits import Limits
from runtime.media import MediaStore
from runtime.pipeline import Pipeline
from runtime.registries import Models
from runtime.settings import Settings
from runtime.speech import Speech
from runtime.towers import Towers

log = logging.getLogger("jointspace.runtime")


class Runtime:
    def __init__(self, settings: Settings, encoder: Encoder | None = None) -> None:
        self.settings = settings
        self.encoder = encoder or load_encoder(settings.model, device=settings.device)
        data = Path(settings.data_dir)
        self.catalog = open_catalog(
            settings.index_backend, data / "collections", min_free=settings.min_free_bytes,
            token=settings.milvus_token or "", search_device=settings.index_device,
        )  # fmt: skip
        self.media = MediaStore(data / "media")
        self.models = Models(data, self.encoder.name)
        self.limits = Limits.of(settings)
        self.towers = Towers(self.encoder, settings)
        self.decoders = Decoders(self.encoder, self.limits, settings.video_workers)
        self.speech = Speech(settings)
        self.pipeline = Pipeline(self.towers, self.decoders, settings, self.models.fusion_head,
                                 self.speech)  # fmt: skip
        self.captions = Captions(self.encoder, settings)
        self._stopping = False
        self._collecting: asyncio.Future | None = None
        self.generator: Generator | None = None
        if (folder := decoder_dir(self.encoder)) is not None:
            self.generator = Generator(folder, settings)

    @property
    def batchers(self) -> dict[str, Batcher]:
        """Every batcher by what it batches (the metrics report them under these names)."""
        out = dict(self.towers.batchers)
        if self.captions.batcher is not None:
            out["caption"] = self.captions.batcher
        if self.speech.batcher is not None:
            out["speech"] = self.speech.batcher
        if self.generator is not None:
            out["generate"] = self.generator.batcher
        return out

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
        started = time.time()
        self._collecting = asyncio.create_task(asyncio.to_thread(self.collect_media, started))

    async def stop(self) -> None:
        self._stopping = True
        if self._collecting is not None:
            try:  # a collection being collected at the moment finishes first
                await self._collecting
            except Exception:
                log.exception("collecting unreferenced media failed")
        for b in self.batchers.values():
            await b.stop()
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
