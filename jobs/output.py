"""A job's output directory: parquet shards, their errors, and the manifest that ties them to one
model and one input.

Layout: `shard-NNNNN.parquet` (one per planned shard, written whole: a temporary file, fsync,
rename, so a shard exists completely or not at all), and beside them side files whose names begin
with `_`, which Spark, Hive, pyarrow, pandas, Polars, DuckDB and Ray skip when they read the
directory as a dataset: `_manifest.json`, `_errors/shard-NNNNN.jsonl` (written before its shard,
so a finished shard always has its errors) and `_errors.jsonl`, all of them together, rewritten
when a run ends. Temporary files begin with `.`. A directory in the first layout (`manifest.json`,
`errors/`, `errors.jsonl`) is migrated when a job resumes it or `job ingest` reads it. Must not
import torch, the encoders' models, the index or HTTP.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jobs.errors import JobError

MANIFEST = "_manifest.json"
ERRORS_DIR = "_errors"
ERRORS = "_errors.jsonl"
#: the first layout's names -> today's (`migrate`)
OLD_NAMES = {"manifest.json": MANIFEST, "errors": ERRORS_DIR, "errors.jsonl": ERRORS}
FORMAT = 1


@dataclass
class Row:
    index: int  # the item's position in its shard
    id: str
    source: str
    modality: str
    vector: np.ndarray
    metadata: dict
    start: float | None = None
    end: float | None = None


def schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            ("id", pa.string()),
            ("source", pa.string()),
            ("modality", pa.string()),
            ("vector", pa.list_(pa.float32(), dim)),
            ("metadata", pa.string()),  # a JSON object
            ("start", pa.float64()),
            ("end", pa.float64()),
        ]
    )


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def shard_path(out: Path, name: str) -> Path:
    return out / f"{name}.parquet"


def done_shards(out: Path) -> set[str]:
    return {p.stem for p in out.glob("shard-*.parquet")}


def write_shard(out: Path, name: str, rows: list[Row], errors: list[dict], dim: int) -> None:
    """Errors first, then the shard: a shard on disk always has its errors beside it."""
    (out / ERRORS_DIR).mkdir(exist_ok=True)
    lines = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in errors).encode()
    _atomic_write(out / ERRORS_DIR / f"{name}.jsonl", lambda f: f.write(lines))
    rows = sorted(rows, key=lambda r: r.index)  # stable: a video's rows stay in their order
    vecs = np.stack([r.vector for r in rows]).astype(np.float32) if rows else np.zeros((0, dim))
    flat = pa.array(vecs.reshape(-1).astype(np.float32), type=pa.float32())
    table = pa.table(
        [
            pa.array([r.id for r in rows], pa.string()),
            pa.array([r.source for r in rows], pa.string()),
            pa.array([r.modality for r in rows], pa.string()),
            pa.FixedSizeListArray.from_arrays(flat, dim),
            pa.array([json.dumps(r.metadata, default=str) for r in rows], pa.string()),
            pa.array([r.start for r in rows], pa.float64()),
            pa.array([r.end for r in rows], pa.float64()),
        ],
        schema=schema(dim),
    )
    _atomic_write(shard_path(out, name), lambda f: pq.write_table(table, f))


def read_manifest(out: Path) -> dict | None:
    path = out / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise JobError(f"{path}: not a job manifest ({e})") from None


def write_manifest(out: Path, manifest: dict) -> None:
    text = (json.dumps(manifest, indent=2) + "\n").encode()
    _atomic_write(out / MANIFEST, lambda f: f.write(text))


def migrate(out: Path) -> bool:
    """Rename the side files of a directory in the first layout to today's names; True when
    there was anything to rename. Each rename is atomic, and a directory left half renamed by a
    crash is finished the next time."""
    moved = False
    for old, new in OLD_NAMES.items():
        if (out / old).exists() and not (out / new).exists():
            os.replace(out / old, out / new)
            moved = True
    return moved


def claim(
    out: Path, model: str, dim: int, plan_info: dict, on_migrate: Callable[[], None] | None = None
) -> dict:
    """The manifest of a new job, or of the interrupted one this run resumes; a directory that
    holds another model's vectors or another input's is refused. A directory in the first layout
    is migrated first (`on_migrate` is called once if so)."""
    out.mkdir(parents=True, exist_ok=True)
    if migrate(out) and on_migrate is not None:
        on_migrate()
    for stale in [*out.glob(".shard-*.tmp"), *out.glob(f"{ERRORS_DIR}/.shard-*.tmp")]:
        stale.unlink()  # a write a killed run left half done
    old = read_manifest(out)
    if old is None:
        if any(out.glob("shard-*.parquet")):
            raise JobError(f"{out} holds shards but no {MANIFEST}: choose an empty --out")
        manifest = {"format": FORMAT, "model": model, "dim": dim, **plan_info}
        manifest |= {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        manifest |= {"complete": False}
        write_manifest(out, manifest)
        return manifest
    if old.get("model") != model:
        raise JobError(
            f"{out} holds vectors from model '{old.get('model')}'; this job uses '{model}': "
            "choose another --out"
        )
    theirs, ours = old.get("model_digest"), plan_info.get("model_digest")
    if theirs is not None and ours is not None and theirs != ours:
        raise JobError(
            f"{out} holds vectors from the towers model '{model}' had before they were "
            f"fine-tuned (towers {theirs}; now {ours}): choose another --out"
        )
    if old.get("video", plan_info.get("video")) != plan_info.get("video", old.get("video")):
        raise JobError(
            f"{out} holds videos cut and embedded with other options ({_options(old['video'])}); "
            f"this job asks for {_options(plan_info['video'])}: give the same options, or "
            "choose another --out"
        )
    if old.get("speech") != plan_info.get("speech"):
        theirs, ours = (_speech(m.get("speech")) for m in (old, plan_info))
        raise JobError(f"{out} holds a job {theirs}; this one is {ours}: give the same "
                       "--speech and --asr, or choose another --out")  # fmt: skip
    if old.get("fingerprint") != plan_info["fingerprint"]:
        raise JobError(
            f"{out} holds a job over other input ({old.get('items')} items from "
            f"{', '.join(old.get('sources', []))}); this one plans {plan_info['items']} items "
            f"from {', '.join(plan_info['sources'])}: choose another --out"
        )
    return old


def _speech(speech: dict | None) -> str:
    return "without speech" if speech is None else f"with speech (asr {speech['asr']})"


def _options(video: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in video.items() if v is not None)


def merge_errors(out: Path, names: list[str]) -> int:
    """_errors.jsonl from the shards' error files, in shard order, copied a file at a time (the
    errors of a large job need not fit in memory); returns the count."""
    n = 0

    def copy(f) -> None:
        nonlocal n
        for name in names:
            path = out / ERRORS_DIR / f"{name}.jsonl"
            if path.is_file():
                data = path.read_bytes()
                n += data.count(b"\n")
                f.write(data)

    _atomic_write(out / ERRORS, copy)
    return n


def shard_counts(out: Path, names: list[str]) -> dict[str, int]:
    """Rows per modality over the finished shards (from the parquet, not from memory)."""
    counts: dict[str, int] = {}
    for name in names:
        path = shard_path(out, name)
        if path.is_file():
            col = pq.read_table(path, columns=["modality"]).column("modality").to_pylist()
            for m in col:
                counts[m] = counts.get(m, 0) + 1
    return counts


def iter_vectors(
    out: Path, dim: int, batch_rows: int = 4096
) -> Iterator[tuple[list[str], np.ndarray, list[dict]]]:
    """(ids, vectors, metadata) in batches over every shard, for ingesting; the metadata holds the
    row's source and modality (and start/end) beside its own fields."""
    for path in sorted(out.glob("shard-*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
            cols = batch.to_pydict()
            flat = batch.column("vector").values.to_numpy(zero_copy_only=False)
            vecs = np.asarray(flat, np.float32).reshape(-1, dim)
            metas = []
            for i, text in enumerate(cols["metadata"]):
                meta = json.loads(text) if text else {}
                meta |= {"source": cols["source"][i], "modality": cols["modality"][i]}
                if cols["start"][i] is not None:
                    meta |= {"start": cols["start"][i], "end": cols["end"][i]}
                metas.append(meta)
            yield cols["id"], vecs, metas
