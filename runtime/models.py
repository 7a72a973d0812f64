"""The served models: one `ModelParts` per model spec (its encoder, towers and batchers, decoders,
pipeline, trained classifiers and heads, captioner, generator), and `ModelSet`, the registry
that resolves a request's or a collection's model name to its parts, loads a model at start or on
first use, counts the requests holding each one, and unloads the least recently used idle model
when the loaded models together go over the memory cap.

A model's name is its spec as served (`house`, `hf:/models/clip`); the encoder's own name (the
`model` stamp a collection records) resolves to it too. Imports encoders, generation and runtime;
no web framework.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from encoders import Encoder, InputError, ModelSpecError, load_encoder
from encoders.spec import parse_spec
from generation.decoder import decoder_dir
from runtime.batcher import Batcher
from runtime.captions import Captions
from runtime.decoders import Decoders
from runtime.generator import Generator
from runtime.limits import Limits
from runtime.pipeline import Pipeline
from runtime.registries import Models
from runtime.settings import Settings
from runtime.speech import Speech
from runtime.towers import Towers

log = logging.getLogger("jointspace.runtime")


class UnknownModel(LookupError):
    """A request names a model this service does not serve."""


class ModelNotServed(Exception):
    """A collection holds vectors of a model this service does not serve now."""


class ModelUnavailable(Exception):
    """A served model could not be loaded on its first use (the next request tries again)."""


def tensor_bytes(*objs: object) -> int:
    """Bytes of the parameters and buffers of the torch modules held by `objs` (their attributes,
    and their attributes' attributes: a tokenizer wrapper's model counts), each tensor once."""
    seen: set[int] = set()
    total = 0

    def visit(obj: object, depth: int) -> None:
        nonlocal total
        if isinstance(obj, torch.nn.Module):
            for t in [*obj.parameters(), *obj.buffers()]:
                if id(t) not in seen:
                    seen.add(id(t))
                    total += t.numel() * t.element_size()
            return
        if depth == 0 or not hasattr(obj, "__dict__") or isinstance(obj, type):
            return
        for v in vars(obj).values():
            visit(v, depth - 1)

    for o in objs:
        visit(o, 3)
    return total


class ModelParts:
    """Everything one served model needs: built in a worker thread, started on the event loop."""

    def __init__(self, spec: str, settings: Settings, limits: Limits, data_dir: Path,
                 encoder: Encoder | None = None, training: dict | None = None,
                 speech: Speech | None = None) -> None:  # fmt: skip
        self.encoder = encoder or load_encoder(spec, device=settings.device)
        self.towers = Towers(self.encoder, settings)
        self.decoders = Decoders(self.encoder, limits, settings.video_workers)
        self.models = Models(data_dir, self.encoder.name, recover=training is None)
        if training is not None:  # the classifier trainings in progress, whichever model's
            self.models.training = training
        self.pipeline = Pipeline(self.towers, self.decoders, settings, self.models.fusion_head,
                                 speech)  # fmt: skip
        self.captions = Captions(self.encoder, settings)
        self.generator: Generator | None = None
        if (folder := decoder_dir(self.encoder)) is not None:
            self.generator = Generator(folder, settings)
        self._bytes: tuple[bool, int] | None = None

    @property
    def batchers(self) -> dict[str, Batcher]:
        """Every batcher by what it batches (the metrics report them under these names)."""
        out = dict(self.towers.batchers)
        if self.captions.batcher is not None:
            out["caption"] = self.captions.batcher
        if self.generator is not None:
            out["generate"] = self.generator.batcher
        return out

    @property
    def memory_bytes(self) -> int:
        """What the model's weights take now (a captioner counts once it has been loaded);
        counted again only when the captioner's loading changes it."""
        key = self.captions.loaded
        if self._bytes is None or self._bytes[0] != key:
            self._bytes = (key, tensor_bytes(self.encoder, self.captions, self.generator))
        return self._bytes[1]

    def start(self) -> None:
        for b in self.batchers.values():
            b.start()

    async def stop(self) -> None:
        for b in self.batchers.values():
            await b.stop()


@dataclass
class Slot:
    """One served model: its names, its parts while loaded, and who holds it."""

    id: str  # the spec as served
    name: str  # the encoder's name, the stamp its collections record
    parts: ModelParts | None = None
    info: dict | None = None  # the encoder's info, kept once known (for /v1/models)
    holders: int = 0
    last_used: float = 0.0
    last_bytes: int = 0
    loading: asyncio.Future | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Observer:
    """The metrics' callbacks, given to each model's parts when they load."""

    on_batch: Callable
    on_shed: Callable
    on_wait: Callable
    on_video: Callable | None = None
    on_images: Callable | None = None


class ModelSet:
    def __init__(self, settings: Settings, limits: Limits, data_dir: Path,
                 encoder: Encoder | None = None, speech: Speech | None = None) -> None:  # fmt: skip
        self.settings, self.limits, self.data_dir = settings, limits, data_dir
        self.speech = speech  # the recogniser every model's pipeline shares
        self.cap = settings.memory_cap
        self.slots: dict[str, Slot] = {}
        for spec in settings.served:
            ms = parse_spec(spec)  # a bad spec stops start-up with its message
            self.slots[spec.strip()] = Slot(spec.strip(), str(ms))
        self.default = next(iter(self.slots.values()))
        #: the classifiers and fusion heads on disk (each model's parts read them for their model)
        self.registry = Models(data_dir, self.default.name)
        self.training = self.registry.training
        if encoder is not None:  # given (tests, the CLI): it is the default model
            self.default.name = encoder.name
            self._loaded(self.default, ModelParts(self.default.id, settings, limits, data_dir,
                                                  encoder, self.training, speech))  # fmt: skip
        if not settings.lazy_models:
            for slot in self.slots.values():
                if slot.parts is None:
                    self._loaded(slot, self._build(slot))
        self.observer: Observer | None = None

    def _build(self, slot: Slot) -> ModelParts:
        log.info("loading model %s", slot.id)
        return ModelParts(slot.id, self.settings, self.limits, self.data_dir,
                          training=self.training, speech=self.speech)  # fmt: skip

    def _loaded(self, slot: Slot, parts: ModelParts) -> None:
        slot.parts, slot.info = parts, parts.encoder.info() | {"base": parts.encoder.base}
        slot.name = parts.encoder.name
        slot.last_used = time.monotonic()
        slot.last_bytes = parts.memory_bytes

    # -- names ----------------------------------------------------------------------------------
    @property
    def ids(self) -> list[str]:
        return list(self.slots)

    def resolve(self, name: str | None) -> Slot:
        """The slot a request's model name (its spec or its encoder's name) names; the default
        for None; UnknownModel naming the served models otherwise."""
        if name is None:
            return self.default
        slot = self.slots.get(name.strip()) or self._by_name(name)
        if slot is None:
            raise UnknownModel(f"model '{name}' is not served here (serving {', '.join(self.ids)})")
        return slot

    def _by_name(self, name: str) -> Slot | None:
        for s in self.slots.values():
            if s.name == name:
                return s
        try:
            canonical = str(parse_spec(name))
        except ModelSpecError:  # not a spec at all: no served model has that name
            return None
        return next((s for s in self.slots.values() if canonical in (s.id, s.name)), None)

    def for_collection(self, collection: str, holds: str | None, asked: str | None) -> Slot:
        """The model a collection's items and searches embed with: the one it holds (`holds`,
        its model stamp; the default for a collection without one). ModelNotServed when that
        model is not served; a request naming another model is refused with InputError."""
        slot = self.default if holds is None else self._by_name(holds)
        if slot is None:
            raise ModelNotServed(
                f"collection '{collection}' holds vectors of model '{holds}', which is not served "
                f"now (serving {', '.join(self.ids)}): serve that model again to use it; its "
                "data is kept"
            )
        if asked is not None and self.resolve(asked) is not slot:
            raise InputError(
                f"collection '{collection}' holds vectors of model '{slot.id}', not '{asked}': "
                "leave model out, or name its own"
            )
        return slot

    # -- loading, holding and unloading ---------------------------------------------------------
    async def acquire(self, slot: Slot) -> ModelParts:
        """The slot's parts, loaded first when they are not (the caller waits; other models keep
        serving), held until `release`: a held model is never unloaded."""
        slot.holders += 1
        try:
            while slot.parts is None:
                if slot.loading is None:
                    slot.loading = asyncio.ensure_future(self._load(slot))
                await asyncio.shield(slot.loading)
        except BaseException:
            slot.holders -= 1
            raise
        slot.last_used = time.monotonic()
        return slot.parts

    async def release(self, slot: Slot) -> None:
        """The request holding `slot` is done; over the cap, idle models go (least recently
        used first) now that one more may be idle."""
        slot.holders -= 1
        slot.last_used = time.monotonic()
        if self.cap is not None and self.loaded_bytes() > self.cap:
            await self._make_room(None, 0)

    async def _load(self, slot: Slot) -> None:
        try:
            await self._make_room(slot, slot.last_bytes)
            try:
                parts = await asyncio.to_thread(self._build, slot)
            except Exception as e:
                log.exception("loading model %s failed", slot.id)
                raise ModelUnavailable(f"model '{slot.id}' could not be loaded: {e}") from e
            self._watch(parts, slot.id)
            parts.start()
            self._loaded(slot, parts)
            await self._make_room(slot, 0)
        finally:
            slot.loading = None

    async def _make_room(self, keep: Slot | None, need: int) -> None:
        """Unload idle models, least recently used first, until the loaded ones and `need` fit
        under the cap (as far as idle models allow)."""
        if self.cap is None:
            return
        while self.loaded_bytes() + need > self.cap:
            idle = [s for s in self.slots.values()
                    if s is not keep and s.parts is not None and s.holders == 0]  # fmt: skip
            if not idle:
                log.warning("models take %d bytes, over the cap of %d; none is idle",
                            self.loaded_bytes() + need, self.cap)  # fmt: skip
                return
            await self.unload(min(idle, key=lambda s: s.last_used))

    async def unload(self, slot: Slot) -> None:
        parts, slot.parts = slot.parts, None
        if parts is None:
            return
        slot.last_bytes = parts.memory_bytes
        log.info("unloading model %s (%d bytes)", slot.id, slot.last_bytes)
        await parts.stop()
        del parts
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def loaded_bytes(self) -> int:
        return sum(s.parts.memory_bytes for s in self.slots.values() if s.parts is not None)

    async def describe(self, slot: Slot) -> dict:
        """The slot's encoder info (loading it once when it was never loaded)."""
        if slot.info is None:
            await self.acquire(slot)
            await self.release(slot)
        return slot.info

    # -- metrics and lifetime -------------------------------------------------------------------
    def observe(self, observer: Observer) -> None:
        self.observer = observer
        for slot in self.slots.values():
            if slot.parts is not None:
                self._watch(slot.parts, slot.id)

    def _watch(self, parts: ModelParts, model: str) -> None:
        o = self.observer
        if o is None:
            return
        for modality, b in parts.batchers.items():
            b.on_batch = functools.partial(o.on_batch, model, modality)
            b.on_shed = functools.partial(o.on_shed, model, modality)
            b.on_wait = functools.partial(o.on_wait, model, modality)
        if o.on_video is not None:
            parts.decoders.on_video = o.on_video
        if o.on_images is not None and parts.generator is not None:
            parts.generator.on_images = o.on_images

    def loaded(self) -> list[tuple[Slot, ModelParts]]:
        return [(s, s.parts) for s in self.slots.values() if s.parts is not None]

    def start(self) -> None:
        for _, parts in self.loaded():
            parts.start()

    async def stop(self) -> None:
        for _, parts in self.loaded():
            await parts.stop()
