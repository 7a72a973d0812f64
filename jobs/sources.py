"""What a batch job reads: a folder, WebDataset tar shards, or a table of paths and texts, planned
as a list of shards of items.

Owns listing a source (recursively for folders, member headers for tars, rows for tables),
grouping files by key (`a/0001.jpg` + `a/0001.txt` + `a/0001.json` is one sample: the media is
the item, the text its caption, the JSON its metadata), the modality of each file by extension,
cutting the items into output shards, and the fingerprint that lets a resumed job prove it reads
the same input. Reads no media bytes. Must not import the index or anything of HTTP.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from jobs.errors import JobError

IMAGE_EXT = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"}
AUDIO_EXT = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac"}
VIDEO_EXT = {".mp4", ".m4v", ".mov", ".webm", ".mkv"}
TEXT_EXT = {".txt"}
META_EXT = {".json"}
TABLE_EXT = {".parquet", ".csv", ".jsonl", ".ndjson"}
MEDIA_EXT = {**dict.fromkeys(IMAGE_EXT, "image"), **dict.fromkeys(AUDIO_EXT, "audio"),
             **dict.fromkeys(VIDEO_EXT, "video")}  # fmt: skip
DEFAULT_SHARD_SIZE = 10_000


@dataclass(slots=True)
class Item:
    """One input. Exactly one of `path` (a file), `tar` (+ `offset`, `size`: a member's bytes)
    or `text` (an inline text) says where its content is."""

    index: int  # position within its shard
    id: str
    source: str
    modality: str  # text | image | audio | video | unknown (a table's path of another extension)
    path: str | None = None
    tar: str | None = None
    offset: int = 0
    size: int = 0
    text: str | None = None
    metadata: dict = field(default_factory=dict)


@dataclass
class Shard:
    index: int
    name: str  # the output file's stem, e.g. shard-00003
    items: list[Item]


@dataclass
class Plan:
    """What a job will do. The shards themselves are not held: `shards()` lists the source again
    and yields them one at a time, so a table of ten million rows costs the planner no more memory
    than one of ten thousand (folders and tars are listed into memory: a folder's files are
    grouped in one sorted order, a tar's members are read from its own index)."""

    kind: str  # folder | tar | table
    sources: list[str]
    sizes: dict[str, int]  # shard name -> items, in plan order
    fingerprint: str
    skipped: dict[str, int]  # modality -> files of a modality the model lacks
    modalities: dict[str, int] = field(default_factory=dict)  # modality -> planned items
    make: Callable[[], Iterator[Shard]] = field(repr=False, default=lambda: iter(()))

    @property
    def n_items(self) -> int:
        return sum(self.sizes.values())

    def shards(self) -> Iterator[Shard]:
        """The shards, listed from the source again; a source that changed since it was planned
        (a shard of another size, or more or fewer shards) stops the job with JobError."""
        names = iter(self.sizes.items())
        for shard in self.make():
            name, size = next(names, (shard.name, None))
            if (shard.name, len(shard.items)) != (name, size):
                planned = "none planned" if size is None else f"{size} planned"
                raise self._changed(f"{shard.name} now has {len(shard.items)} inputs, {planned}")
            yield shard
        if next(names, None) is not None:
            raise self._changed("fewer shards than planned")

    def _changed(self, what: str) -> JobError:
        return JobError(
            f"{', '.join(self.sources)} changed while the job ran ({what}): run it "
            "again on a source that holds still"
        )


@dataclass
class TableColumns:
    path: str = "path"
    text: str = "text"
    id: str = "id"


@dataclass
class _Sample:
    """Files sharing one key: media files, a caption, metadata."""

    media: list[tuple[str, str]] = field(default_factory=list)  # (name, modality)
    caption_of: str | None = None  # name of the .txt
    meta_of: str | None = None  # name of the .json


def plan(
    srcs: list[Path],
    modalities: Iterable[str],
    shard_size: int = DEFAULT_SHARD_SIZE,
    limit: int | None = None,
    columns: TableColumns | None = None,
) -> Plan:
    """List `srcs` (one folder, one table, or tar files) into shards of the model's modalities."""
    if not srcs:
        raise JobError("give a source: a folder, tar shards, or a .parquet/.csv/.jsonl table")
    for s in srcs:
        if not s.exists():
            raise JobError(f"{s}: no such file or folder")
    wanted = set(modalities)
    if "image" in wanted:  # a video's frames go through the image tower
        wanted.add("video")
    if len(srcs) == 1 and srcs[0].is_dir():
        items, skipped = _folder_items(srcs[0], wanted)
        return _planned("folder", srcs, lambda _: _cut(iter(items[:limit]), shard_size), skipped)
    if all(s.is_file() and s.suffix == ".tar" for s in srcs):
        return _tar_plan(srcs, wanted, limit)
    if len(srcs) == 1 and srcs[0].suffix.lower() in TABLE_EXT:
        cols = columns or TableColumns()

        def listing(skipped: dict[str, int]) -> Iterator[Shard]:
            rows = _table_items(srcs[0], wanted, cols, skipped)
            return _cut(itertools.islice(rows, limit), shard_size)

        return _planned("table", srcs, listing, {})
    names = ", ".join(str(s) for s in srcs)
    raise JobError(
        f"cannot read {names}: give one folder, one .parquet/.csv/.jsonl table, or one or "
        "more uncompressed .tar shards"
    )


def _planned(kind: str, srcs: list[Path], listing: Callable[[dict], Iterator[Shard]],
             skipped: dict[str, int]) -> Plan:  # fmt: skip
    """One pass over the listing (counting the files skipped into `skipped`) for the shard sizes
    and the fingerprint; the plan lists again whenever its shards are asked for."""
    h, sizes, kinds = hashlib.sha256(), {}, {}
    for shard in listing(skipped):
        _hash_shard(h, shard)
        sizes[shard.name] = len(shard.items)
        for it in shard.items:
            kinds[it.modality] = kinds.get(it.modality, 0) + 1
    again = functools.partial(listing, {})  # skipped files were counted in the first pass
    return Plan(kind, [str(s) for s in srcs], sizes, h.hexdigest()[:32], skipped, kinds, again)


def _cut(items: Iterator[Item], shard_size: int) -> Iterator[Shard]:
    """Items in shards of `shard_size`, numbered within their shard."""
    for i in itertools.count():
        chunk = list(itertools.islice(items, shard_size))
        if not chunk:
            return
        yield Shard(i, f"shard-{i:05d}", _renumber(chunk))


def _renumber(items: list[Item]) -> list[Item]:
    for i, it in enumerate(items):
        it.index = i
    return items


def _hash_shard(h, s: Shard) -> None:
    """The fingerprint's part for one shard (a resumed job must plan the same ids in the same
    shards)."""
    h.update(f"#{s.name}\n".encode())
    for it in s.items:
        h.update(f"{it.id}\t{it.source}\t{it.size}\n".encode())


def _group(names: Iterable[str], wanted: set[str], skipped: dict[str, int]) -> dict[str, _Sample]:
    """Files by key (the name without its last extension), in sorted order."""
    samples: dict[str, _Sample] = {}
    for name in sorted(names):
        stem, ext = os.path.splitext(name)
        ext = ext.lower()
        if ext in MEDIA_EXT:
            modality = MEDIA_EXT[ext]
            if modality not in wanted:
                skipped[modality] = skipped.get(modality, 0) + 1
                continue
            samples.setdefault(stem, _Sample()).media.append((name, modality))
        elif ext in TEXT_EXT:
            samples.setdefault(stem, _Sample()).caption_of = name
        elif ext in META_EXT:
            samples.setdefault(stem, _Sample()).meta_of = name
    return samples


def _folder_items(root: Path, wanted: set[str]) -> tuple[list[Item], dict[str, int]]:
    names = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = os.path.relpath(dirpath, root)
        for f in filenames:
            if not f.startswith("."):
                names.append(f if rel == "." else f"{rel}/{f}".replace(os.sep, "/"))
    skipped: dict[str, int] = {}
    items: list[Item] = []
    for sample in _group(names, wanted, skipped).values():
        meta = _read_meta(root / sample.meta_of) if sample.meta_of else {}
        caption = _read_text(root / sample.caption_of) if sample.caption_of else None
        items += _sample_items(sample, meta, caption, lambda n: {"path": str(root / n)}, "")
    return items, skipped


def _sample_items(sample: _Sample, meta: dict, caption, where, prefix: str) -> list[Item]:
    """A sample's media as items (its caption in metadata['text']); a caption alone is a text
    item."""
    out = []
    if caption is not None and sample.media:
        meta = {**meta, "text": caption}
    for name, modality in sample.media:
        out.append(Item(0, prefix + name, prefix + name, modality, metadata=meta, **where(name)))
    if not sample.media and sample.caption_of is not None and caption and caption.strip():
        name = sample.caption_of
        out.append(Item(0, prefix + name, prefix + name, "text", text=caption, metadata=meta))
    return out


def _read_meta(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise JobError(f"{path}: not a JSON object of metadata ({e})") from None
    if not isinstance(data, dict):
        raise JobError(f"{path}: metadata must be a JSON object, not {type(data).__name__}")
    return data


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise JobError(f"{path}: not a UTF-8 text ({e})") from None


def _tar_plan(tars: list[Path], wanted: set[str], limit: int | None) -> Plan:
    """One output shard per tar, in the order given; captions and metadata read from the tar."""
    skipped: dict[str, int] = {}
    shards: list[Shard] = []
    left = limit
    for i, path in enumerate(tars):
        items = _tar_items(path, wanted, skipped)
        if left is not None:
            items, left = items[:left], max(0, left - len(items))
        shards.append(Shard(i, f"shard-{i:05d}", _renumber(items)))
    return _planned("tar", tars, lambda _: iter(shards), skipped)


def _tar_items(path: Path, wanted: set[str], skipped: dict[str, int]) -> list[Item]:
    try:
        with tarfile.open(path, "r:") as tf:
            members = {m.name: m for m in tf.getmembers() if m.isfile()}
            samples = _group(members, wanted, skipped)
            items: list[Item] = []
            for sample in samples.values():
                meta = _tar_json(tf, members[sample.meta_of], path) if sample.meta_of else {}
                caption = _tar_text(tf, members[sample.caption_of]) if sample.caption_of else None

                def where(n: str, members=members) -> dict:
                    m = members[n]
                    return {"tar": str(path), "offset": m.offset_data, "size": m.size}

                items += _sample_items(sample, meta, caption, where, f"{path.name}/")
            return items
    except tarfile.ReadError as e:
        raise JobError(f"{path}: not an uncompressed tar file ({e})") from None


def _tar_text(tf: tarfile.TarFile, m: tarfile.TarInfo) -> str | None:
    try:
        return tf.extractfile(m).read().decode("utf-8").strip()
    except UnicodeDecodeError:
        return None


def _tar_json(tf: tarfile.TarFile, m: tarfile.TarInfo, path: Path) -> dict:
    try:
        data = json.loads(tf.extractfile(m).read())
    except ValueError as e:
        raise JobError(f"{path}:{m.name}: not JSON ({e})") from None
    if not isinstance(data, dict):
        raise JobError(f"{path}:{m.name}: metadata must be a JSON object")
    return data


def _table_items(
    path: Path, wanted: set[str], cols: TableColumns, skipped: dict[str, int]
) -> Iterator[Item]:
    """Rows with a path are media items (the text column is then their caption); rows with only
    a text are text items; relative paths are relative to the table's folder. Streamed from the
    table in batches."""
    row_no = 0
    for rows in _table_batches(path):
        if row_no == 0 and rows and cols.path not in rows[0] and cols.text not in rows[0]:
            raise JobError(
                f"{path}: has neither a '{cols.path}' nor a '{cols.text}' column "
                f"(columns: {', '.join(sorted(rows[0]))})"
            )
        for row in rows:
            item = _row_item(path, row_no, row, wanted, cols, skipped)
            row_no += 1
            if item is not None:
                yield item


def _row_item(path: Path, row_no: int, row: dict, wanted: set[str], cols: TableColumns,
              skipped: dict[str, int]) -> Item | None:  # fmt: skip
    source = f"{path.name}:{row_no}"
    item_id = str(_cell(row, cols.id) or source)
    meta = {k: v for k, v in row.items() if k not in (cols.path, cols.text, cols.id)}
    meta = {k: v for k, v in meta.items() if v is not None}
    media, text = _cell(row, cols.path), _cell(row, cols.text)
    if not media:
        return Item(0, item_id, source, "text", text=str(text or ""), metadata=meta)
    modality = MEDIA_EXT.get(os.path.splitext(str(media))[1].lower(), "unknown")
    if modality in ("image", "audio", "video") and modality not in wanted:
        skipped[modality] = skipped.get(modality, 0) + 1
        return None
    full = os.path.join(os.path.dirname(path), str(media))  # an absolute path stays as it is
    if text:
        meta["text"] = str(text)
    return Item(0, item_id, source, modality, path=full, metadata=meta)


def _cell(row: dict, key: str):
    """A cell's value; an empty string (a CSV's empty cell) counts as missing."""
    value = row.get(key)
    return None if isinstance(value, str) and not value.strip() else value


def _table_batches(path: Path) -> Iterator[list[dict]]:
    """The table's rows, a batch at a time (parquet by its batches, CSV and JSON Lines by
    pyarrow's streaming readers)."""
    import pyarrow as pa

    try:
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            batches = pq.ParquetFile(path).iter_batches(batch_size=8192)
        elif suffix == ".csv":
            import pyarrow.csv as pcsv

            batches = pcsv.open_csv(path)
        else:
            import pyarrow.json as pjson

            batches = pjson.open_json(path)
        for batch in batches:
            yield batch.to_pylist()
    except (pa.ArrowInvalid, OSError) as e:
        raise JobError(f"{path}: cannot read the table ({str(e).splitlines()[0]})") from None
