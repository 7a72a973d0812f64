"""The demo collection built on first start: Fashion-MNIST test images in several tints, the Tux
Paint stamps, (for a model with an audio tower) the stamps' sound effects, and a few generated
video clips stored as segments, embedded by the served model, with thumbnails and playable clips
and videos for the web page.

Skipped with a warning when the Debian data packages are missing. Rebuilt when the served model
changes, or gains an audio tower, or when it was built before it had videos.
"""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image
from rich.console import Console
from rich.progress import Progress

from encoders import AUDIO
from housedata.clips import ClipSpec, render, shot_clip, to_video
from housedata.sets import (
    FASHION_CLASSES,
    TUXPAINT_DIR,
    MissingData,
    TuxPaintStamps,
    fashion_mnist,
    tint,
)
from runtime.container import Runtime
from runtime.videos import video_rows

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


def demo_clips() -> list[tuple[str, bytes, dict, bool]]:
    """(id, WebM bytes, metadata, cut at shots) of the generated clips: two of four shots of
    tinted garments, and a dress turning from red to blue and back."""
    grey, labels = fashion_mnist("test")
    rng = np.random.default_rng(3)
    out = []
    for i in range(2):
        data, truth = shot_clip(grey, labels, rng, kind="WebM")
        title = ", then ".join(name for *_, name in truth)
        out.append((f"clip-shots-{i}", data, {"source": "video", "title": title}, True))
    dress = int(np.flatnonzero(labels == 3)[0])
    for a, b in (("red", "blue"), ("blue", "red")):
        frames = render(grey[dress], ClipSpec(dress, 3, a, b, "zoom-in", 8))
        meta = {"source": "video", "title": f"a dress turning from {a} to {b}"}
        out.append((f"clip-dress-{a}-to-{b}", to_video(frames, kind="WebM"), meta, False))
    return out


def _current(engine: Runtime, sounds: list) -> bool:
    col = engine.catalog.get(NAME)
    if col.model != engine.encoder.name or not col.count:
        return False
    if col.model_digest is not None and col.model_digest != engine.encoder.model_digest:
        return False  # built with the towers before a fine-tune
    firsts = [sounds[0][0]] if sounds else []
    return all(item is not None for item in col.get([*firsts, "clip-shots-0"]))


DEMO_TEXT_FIELDS = ["item", "colour", "caption", "title"]


def ensure_demo(engine: Runtime, console: Console | None = None) -> bool:
    """Build the demo collection unless it exists for the served model. True when present."""
    enc = engine.encoder
    try:
        sounds = demo_sounds() if AUDIO in enc.modalities else []
        if NAME in engine.catalog.names():
            if _current(engine, sounds):
                return True
            engine.catalog.drop(NAME)
            engine.media.drop(NAME)
        items = demo_items()
        videos = demo_clips()
    except MissingData as e:
        log.warning("demo collection skipped: %s", e)
        return False
    # the words of its metadata are in the keyword index: the page's keyword and hybrid search
    col = engine.catalog.create(NAME, enc.dim, model=enc.name, text_fields=DEMO_TEXT_FIELDS,
                                model_digest=enc.model_digest)  # fmt: skip
    console = console or Console(stderr=True)
    with Progress(console=console, transient=False) as bar:
        task = bar.add_task("building the demo collection",
                            total=len(items) + len(sounds) + len(videos))  # fmt: skip
        for start in range(0, len(items), 256):
            chunk = items[start : start + 256]
            vecs = enc.embed_images([im for _, im, _ in chunk])
            col.upsert([i for i, _, _ in chunk], vecs, [m for _, _, m in chunk], model=enc.name)
            for item_id, im, meta in chunk:
                if meta["source"] == "fashion-mnist":  # 28 px: enlarge, keeping the pixels sharp
                    im = im.resize((112, 112), Image.NEAREST)
                engine.media.save_image(NAME, item_id, im)
            bar.advance(task, len(chunk))
        for start in range(0, len(sounds), 32):
            chunk = sounds[start : start + 32]
            clips = [engine.decoders.read_clip(data, i) for i, data, _ in chunk]
            vecs = enc.embed_audio([c.wave for c in clips])
            col.upsert([i for i, _, _ in chunk], vecs, [m for _, _, m in chunk], model=enc.name)
            for (item_id, _, _), clip in zip(chunk, clips, strict=True):
                engine.media.save_audio(NAME, item_id, clip)
            bar.advance(task, len(chunk))
        for item_id, data, meta, shots in videos:
            _add_clip(engine, col, item_id, data, meta, shots)
            bar.advance(task)
    col.snapshot()
    return True


def _add_clip(engine: Runtime, col, item_id: str, data: bytes, meta: dict, shots: bool) -> None:
    """A video item as the service stores one: a row per segment and one for the whole video."""
    enc = engine.encoder
    clip = engine.decoders.read_video(data, item_id, shots=shots)
    emb = enc.encode_video([clip.video], engine.settings.video_interval_s, shots=shots,
                           pooling=engine.pipeline.pooling(None))[0]  # fmt: skip
    rows = video_rows(item_id, meta, clip.video.frames, clip.video.duration, emb)
    col.upsert(rows.ids, np.stack(rows.vectors), rows.metadata, model=enc.name)
    engine.media.save_video(NAME, item_id, clip)
    for sid, thumb in rows.thumbs:
        engine.media.save_image(NAME, sid, thumb.resize((112, 112), Image.NEAREST))
