"""Labelled data for fusion classifiers, read and embedded with the served model.

Two forms:
- a folder with one subfolder per label; inside, files sharing a stem are the parts of one
  example (`cat1.jpg` + `cat1.txt` + `cat1.ogg`: image, text, sound); a lone `.txt` is a text
  example, a lone image or sound an example of that part alone;
- a table (.jsonl, .csv or .parquet) with a `label` column and any of `text`, `image`, `audio`
  (media paths relative to the table).

For a fusion head (`things=True`) the same files are read, but an example's first element names
the thing it shows instead of a label: a folder example is its own thing (`<label>/<stem>`), and a
table's optional `group` column marks rows of one thing (default: each row its own).

Bad data is refused with what to fix (one label, an empty label, a file of unknown kind, a media
file that does not decode, a part the model has no tower for); nothing is written. Imports the
encoders and fusion, nothing of HTTP or the index.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from encoders import AUDIO, IMAGE, TEXT, Encoder, InputError, decode_audio, decode_image
from fusion.classifier import ClassifierError, Examples, check_examples

IMAGE_EXT = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"}
AUDIO_EXT = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac"}
TABLE_EXT = {".jsonl", ".ndjson", ".csv", ".parquet"}
PARTS = (TEXT, IMAGE, AUDIO)

Example = tuple[str, dict[str, object]]  # (label or thing, {part: text or path})


def count_parts(examples: list[Example]) -> int:
    return sum(len(parts) for _, parts in examples)


def folder_examples(root: Path, things: bool = False) -> list[Example]:
    labels = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not labels:
        raise ClassifierError(f"{root}: no label folders (one subfolder per label)")
    out: list[Example] = []
    for label_dir in labels:
        groups: dict[str, dict[str, object]] = defaultdict(dict)
        for f in sorted(label_dir.rglob("*")):
            if not f.is_file() or f.name.startswith("."):
                continue
            ext, key = f.suffix.lower(), str(f.relative_to(label_dir).with_suffix(""))
            if ext == ".txt":
                groups[key][TEXT] = f.read_text(errors="replace").strip()
            elif ext in IMAGE_EXT:
                groups[key][IMAGE] = f
            elif ext in AUDIO_EXT:
                groups[key][AUDIO] = f
            else:
                raise ClassifierError(
                    f"{f}: unknown kind of file; a label folder holds images "
                    f"({' '.join(sorted(IMAGE_EXT))}), sounds ({' '.join(sorted(AUDIO_EXT))}) "
                    "and .txt texts"
                )
        out.extend((f"{label_dir.name}/{key}" if things else label_dir.name, parts)
                   for key, parts in sorted(groups.items()))  # fmt: skip
    return out


def table_examples(path: Path, things: bool = False) -> list[Example]:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    ext = path.suffix.lower()
    if ext == ".parquet":
        rows = pq.read_table(path).to_pylist()
    elif ext == ".csv":
        rows = pcsv.read_csv(path).to_pylist()
    else:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out: list[Example] = []
    for n, row in enumerate(rows, 1):
        label = row.get("group" if things else "label")
        if things and label in (None, ""):
            label = f"row {n}"
        if label is None or str(label) == "":
            raise ClassifierError(f"{path}: row {n} has no label (a `label` column is required)")
        parts: dict[str, object] = {}
        if row.get(TEXT) not in (None, ""):
            parts[TEXT] = str(row[TEXT])
        for part in (IMAGE, AUDIO):
            if row.get(part) not in (None, ""):
                parts[part] = (path.parent / str(row[part])).resolve()
        if not parts:
            raise ClassifierError(f"{path}: row {n} has none of text, image, audio")
        out.append((str(label), parts))
    return out


def read_examples(path: Path, things: bool = False) -> list[Example]:
    path = Path(path)
    if path.is_dir():
        return folder_examples(path, things)
    if path.is_file() and path.suffix.lower() in TABLE_EXT:
        return table_examples(path, things)
    raise ClassifierError(
        f"{path}: labelled data is a folder with one subfolder per label, or a "
        ".jsonl/.csv/.parquet table with a label column"
    )


def embed_examples(examples: list[Example], enc: Encoder, batch: int = 64, check: bool = True,
                   done: Callable[[int], None] | None = None) -> Examples:  # fmt: skip
    """Every part embedded with `enc`: (n, parts present in the data, d) vectors; the first
    elements become `labels` indexing `classes` (`check`: refused as a classifier's data).
    `done(n)` is told of every n parts embedded."""
    used = tuple(p for p in PARTS if any(p in parts for _, parts in examples))
    missing = [p for p in used if p not in enc.modalities]
    if missing:
        raise ClassifierError(
            f"the data has {', '.join(missing)} parts, which model '{enc.name}' cannot embed "
            f"(it embeds {', '.join(sorted(enc.modalities))})"
        )
    classes = sorted({label for label, _ in examples})
    vectors = np.zeros((len(examples), len(used), enc.dim), np.float32)
    present = np.zeros((len(examples), len(used)), bool)
    for m, part in enumerate(used):
        rows = [i for i, (_, parts) in enumerate(examples) if part in parts]
        for at in range(0, len(rows), batch):
            chunk = rows[at : at + batch]
            vectors[chunk, m] = _embed(enc, part, [examples[i][1][part] for i in chunk])
            present[chunk, m] = True
            if done is not None:
                done(len(chunk))
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[label] for label, _ in examples], int)
    ex = Examples(vectors, present, labels, classes, used)
    if check:
        check_examples(ex)
    return ex


def _embed(enc: Encoder, part: str, values: list) -> np.ndarray:
    try:
        if part == TEXT:
            return enc.encode_text([str(v) for v in values]).vectors
        if part == IMAGE:
            return enc.embed_images([decode_image(p) for p in values])
        return enc.embed_audio([decode_audio(p, enc.audio_rate, name=str(p)) for p in values])
    except (InputError, OSError) as e:
        raise ClassifierError(f"cannot use a labelled {part}: {e}") from None
