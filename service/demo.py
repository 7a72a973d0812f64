"""The demo collection built on first start: Fashion-MNIST test images in several tints, the Tux
Paint stamps, and (for a model with an audio tower) the stamps' sound effects, embedded by the
served model, with thumbnails and playable clips for the web page.

Skipped with a warning when the Debian data packages are missing. Rebuilt when the served model
changes, or gains an audio tower.
"""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image
from rich.console import Console
from rich.progress import Progress

from encoders import AUDIO
from service.engine import Engine
from training.data import (
    FASHION_CLASSES,
    TUXPAINT_DIR,
    MissingData,
    TuxPaintStamps,
    fashion_mnist,
    tint,
)

log = logging.getLogger("jointspace.demo")
NAME = "demo"
TINTS = ["white", "red", "blue", "green", "yellow"]
PER_CLASS = 25  # test images per Fashion-MNIST class, each in every tint


def demo_items() -> list[tuple[str, Image.Image, dict]]:
    """(id, image, metadata) of every demo item; raises MissingData without the data packages."""
    grey, labels = fashion_mnist("test")
    items = []
    for c in range(len(FASHION_CLASSES)):
        for idx in np.flatnonzero(labels == c)[:PER_CLASS]:
            for colour in TINTS:
                img = Image.fromarray(tint(grey[idx], colour))
                meta = {"source": "fashion-mnist", "item": FASHION_CLASSES[c], "colour": colour,
                        "image": int(idx)}  # fmt: skip
                items.append((f"fmnist-{idx}-{colour}", img, meta))
    stamps = TuxPaintStamps()
    for i, (path, caption) in enumerate(stamps.items):
        key = str(path.relative_to(TUXPAINT_DIR)).removesuffix(".png")
        items.append(
            (f"tuxpaint-{key}", stamps[i].image, {"source": "tuxpaint", "caption": caption})
        )
    return items


def demo_sounds() -> list[tuple[str, bytes, dict]]:
    """(id, Ogg bytes, metadata) of every stamp's sound effect; the metadata names the stamp's
    caption and its picture's item."""
    out = []
    for path, caption in TuxPaintStamps().items:
        sound = path.with_suffix(".ogg")
        if sound.is_file():
            key = str(path.relative_to(TUXPAINT_DIR)).removesuffix(".png")
            meta = {"source": "tuxpaint-sound", "caption": caption, "stamp": f"tuxpaint-{key}"}
            out.append((f"tuxpaint-sound-{key}", sound.read_bytes(), meta))
    return out


def _current(engine: Engine, sounds: list) -> bool:
    col = engine.catalog.get(NAME)
    if col.model != engine.encoder.name or not col.count:
        return False
    return not sounds or col.get([sounds[0][0]])[0] is not None


def ensure_demo(engine: Engine, console: Console | None = None) -> bool:
    """Build the demo collection unless it exists for the served model. True when present."""
    enc = engine.encoder
    try:
        sounds = demo_sounds() if AUDIO in enc.modalities else []
        if NAME in engine.catalog.names():
            if _current(engine, sounds):
                return True
            engine.catalog.drop(NAME)
            engine.drop_media(NAME)
        items = demo_items()
    except MissingData as e:
        log.warning("demo collection skipped: %s", e)
        return False
    col = engine.catalog.create(NAME, enc.dim, model=enc.name)
    console = console or Console(stderr=True)
    with Progress(console=console, transient=False) as bar:
        task = bar.add_task("building the demo collection", total=len(items) + len(sounds))
        for start in range(0, len(items), 256):
            chunk = items[start : start + 256]
            vecs = enc.embed_images([im for _, im, _ in chunk])
            col.upsert([i for i, _, _ in chunk], vecs, [m for _, _, m in chunk], model=enc.name)
            for item_id, im, meta in chunk:
                if meta["source"] == "fashion-mnist":  # 28 px: enlarge, keeping the pixels sharp
                    im = im.resize((112, 112), Image.NEAREST)
                engine.save_media(NAME, item_id, im)
            bar.advance(task, len(chunk))
        for start in range(0, len(sounds), 32):
            chunk = sounds[start : start + 32]
            clips = [engine.read_clip(data, i) for i, data, _ in chunk]
            vecs = enc.embed_audio([c.wave for c in clips])
            col.upsert([i for i, _, _ in chunk], vecs, [m for _, _, m in chunk], model=enc.name)
            for (item_id, _, _), clip in zip(chunk, clips, strict=True):
                engine.save_audio_media(NAME, item_id, clip)
            bar.advance(task, len(chunk))
    col.snapshot()
    return True
