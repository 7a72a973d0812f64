"""The tower trainer's own pair sources: a caption folder (CSV or JSONL next to the images) and
webdataset-style tar shards (KEY.jpg + KEY.txt), each a sequence of `housedata.sets.Pair` split by
the same key hashing as the Debian-packaged sets.

Imports housedata and encoders.decode; nothing of the service, the index or the other models.
"""

from __future__ import annotations

import csv
import json
import tarfile
from collections.abc import Sequence
from pathlib import Path

from encoders.decode import decode_image
from housedata.sets import Pair, in_split


class CaptionFolder(Sequence[Pair]):
    """Images in a folder with captions in `captions.csv` (columns image,caption) or
    `captions.jsonl` ({"image": ..., "caption": ...} per line); image paths are relative."""

    def __init__(self, root: str | Path, split: str | None = None, seed: int = 0) -> None:
        self.root = Path(root)
        rows: list[tuple[str, str]] = []
        if (self.root / "captions.csv").is_file():
            with open(self.root / "captions.csv", newline="") as f:
                rows = [(r["image"], r["caption"]) for r in csv.DictReader(f)]
        elif (self.root / "captions.jsonl").is_file():
            with open(self.root / "captions.jsonl") as f:
                for line in f:
                    if line.strip():
                        r = json.loads(line)
                        rows.append((r["image"], r["caption"]))
        else:
            raise FileNotFoundError(f"{self.root}: no captions.csv or captions.jsonl")
        self.rows = [r for r in rows if split is None or in_split(r[0], split, seed)]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Pair:
        name, caption = self.rows[i]
        return Pair(decode_image(self.root / name), caption)


class TarShards(Sequence[Pair]):
    """webdataset-style shards: members KEY.{jpg,jpeg,png,webp} and KEY.txt in each tar."""

    IMAGE_EXT = (".jpg", ".jpeg", ".png", ".webp")

    def __init__(self, shards: Sequence[str | Path], split: str | None = None, seed: int = 0):
        self.samples: list[tuple[str, bytes, str]] = []
        for shard in shards:
            groups: dict[str, dict[str, bytes]] = {}
            with tarfile.open(shard) as tar:
                for m in tar:
                    if not m.isfile():
                        continue
                    key, _, ext = m.name.rpartition(".")
                    groups.setdefault(key, {})["." + ext.lower()] = tar.extractfile(m).read()
            for key, parts in sorted(groups.items()):
                img = next((parts[e] for e in self.IMAGE_EXT if e in parts), None)
                if img is None or ".txt" not in parts:
                    continue
                if split is None or in_split(f"{Path(shard).name}/{key}", split, seed):
                    self.samples.append((key, img, parts[".txt"].decode().strip()))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Pair:
        key, data, caption = self.samples[i]
        return Pair(decode_image(data, name=key), caption)
