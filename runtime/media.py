"""The media files kept beside the collections for the web page: an item's thumbnail (PNG), the
audio of an audio item and the video of a video item, as they came (already decoded once, so known
to be sane). One medium per item; file names are a hash of the item's id. A write puts its media
down before the transaction that makes its items visible, and media no item refers to (left by a
crash between the two) are collected when the service starts; a delete removes its items' media.

Imports PIL and runtime.decoders only.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

from runtime.decoders import Clip, VideoClip

#: a medium's file suffix -> its content type
MEDIA_TYPES = {
    ".png": "image/png",
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".gif": "image/gif",
}
AUDIO_SUFFIX = {"WAV": ".wav", "FLAC": ".flac", "Ogg": ".ogg", "MP3": ".mp3", "M4A": ".m4a",
                "AAC": ".aac"}  # fmt: skip
VIDEO_SUFFIX = {"MP4": ".mp4", "WebM": ".webm", "GIF": ".gif"}


def media_stem(item_id: str) -> str:
    return hashlib.sha1(item_id.encode()).hexdigest()[:20]


class MediaStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def save_image(self, collection: str, item_id: str, image: Image.Image) -> str:
        """A small PNG of an item's image; returns its name under /media/{collection}/."""
        thumb = image.copy()
        thumb.thumbnail((256, 256))
        buf = io.BytesIO()
        thumb.save(buf, format="PNG")
        return self._put(collection, item_id, ".png", buf.getvalue())

    def save_audio(self, collection: str, item_id: str, clip: Clip) -> str:
        return self._put(collection, item_id, AUDIO_SUFFIX[clip.kind], clip.data)

    def save_video(self, collection: str, item_id: str, clip: VideoClip) -> str:
        return self._put(collection, item_id, VIDEO_SUFFIX[clip.kind], clip.data)

    def _put(self, collection: str, item_id: str, suffix: str, data: bytes) -> str:
        d = self.root / collection
        d.mkdir(parents=True, exist_ok=True)
        name = media_stem(item_id) + suffix
        tmp = d / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(d / name)
        for old in MEDIA_TYPES:  # an item has one medium: a replaced one of another kind goes
            if old != suffix:
                (d / (media_stem(item_id) + old)).unlink(missing_ok=True)
        return name

    def find(self, collection: str, item_id: str) -> str | None:
        """The file name of an item's medium under /media/{collection}/, or None.

        Called for every search hit: plain string paths, the stem hashed once (an item with no
        medium costs one stat per suffix, about 2 us each)."""
        stem = os.path.join(self.root, collection, media_stem(item_id))
        for suffix in MEDIA_TYPES:
            if os.path.isfile(stem + suffix):
                return os.path.basename(stem) + suffix
        return None

    def path(self, collection: str, file: str) -> Path:
        return self.root / collection / file

    def delete(self, collection: str, item_ids: list[str]) -> None:
        """Remove the media of items deleted, or replaced by items without an image or audio."""
        for item_id in item_ids:
            for suffix in MEDIA_TYPES:
                (self.root / collection / (media_stem(item_id) + suffix)).unlink(missing_ok=True)

    def has(self, collection: str) -> bool:
        """Whether `collection` has any media folder at all."""
        return (self.root / collection).is_dir()

    def collect(self, collection: str, ids: Iterable[str], before: float) -> int:
        """Remove the media files (and half-written temporary files) of `collection` last written
        before `before` (a time.time()) that no id in `ids` refers to; returns how many went.
        Files written since then belong to writes of this process still on their way to their
        transaction, and are left alone."""
        d = self.root / collection
        if not d.is_dir():
            return 0
        live = {media_stem(i) for i in ids}
        gone = 0
        for f in d.iterdir():
            stem = f.name.lstrip(".").split(".")[0]
            orphan = f.name.startswith(".") or (f.suffix in MEDIA_TYPES and stem not in live)
            try:
                if orphan and f.stat().st_mtime < before:
                    f.unlink()
                    gone += 1
            except FileNotFoundError:
                pass  # replaced or removed meanwhile
        return gone

    def drop(self, collection: str) -> None:
        shutil.rmtree(self.root / collection, ignore_errors=True)
