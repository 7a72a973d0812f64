"""A finished job's vectors into a collection: `jointspace job ingest` and `job embed --ingest`.

Owns reading the shards in batches (memory bounded by the batch, not the output), creating the
collection stamped with the job's model (and its towers' stamp, refusing a collection of other
towers), upserting with each row's source and modality in its metadata (a video's rows replacing
the segments stored before, index.children; a speech row's transcript into the keyword index, as
the API's), and, for outputs large enough, building the IVF
index the collection's 'auto' setting asks for (trained on a sample, by the index package) before
the final snapshot. Must not import torch or anything of HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from index import Catalog, check_towers
from index.children import stale_segments, stale_speech
from jobs.errors import JobError
from jobs.output import MANIFEST, iter_vectors, migrate, read_manifest


def finished_job(out: Path, on_migrate: Callable[[], None] | None = None) -> dict:
    """The manifest of the finished job in `out`, or JobError saying why there is none. A
    directory in the first layout is migrated first (`on_migrate` is called once if so)."""
    try:
        if out.is_dir() and migrate(out) and on_migrate is not None:
            on_migrate()
    except OSError as e:
        raise JobError(f"{out}: written by an earlier release and cannot be renamed to today's "
                       f"layout ({e.strerror}): run `job embed` on it where it can be written, "
                       "or copy it") from None  # fmt: skip
    manifest = read_manifest(out)
    if manifest is None:
        raise JobError(f"{out}: no {MANIFEST}: not the output of `jointspace job embed`")
    if not manifest.get("complete"):
        raise JobError(f"{out}: the job has not finished: run the same `job embed` command again")
    return manifest


def stale_children(col, ids: list[str], metas: list[dict]) -> list[str]:
    """The segments, sound segments and speech segments that the stored versions of `ids` have
    and their new rows do not (a video re-cut into fewer segments, an item that was a video):
    removed in the same write, as the API's upsert does."""
    now, sound = {}, {}
    for item_id, meta in zip(ids, metas, strict=True):
        if meta.get("video_id") == item_id:
            now[item_id] = meta.get("segments", 0)
            sound[item_id] = meta.get("sound_segments", 0)
    old = col.get(ids)
    taken = set(ids)
    stale = stale_segments(old, now, sound) + stale_speech(old, {})
    return [s for s in stale if s not in taken]


def ingest(
    out: Path,
    catalog: Catalog,
    name: str,
    progress: Callable[[int], None] | None = None,
    on_migrate: Callable[[], None] | None = None,
) -> dict:
    """Upsert every row of the job in `out` into collection `name` (created when missing)."""
    manifest = finished_job(out, on_migrate)
    stamp, dim = manifest["encoder"], int(manifest["dim"])
    digest = manifest.get("model_digest")
    if name in catalog.names():
        col = catalog.get(name)
        check_towers(col, digest)  # the collection holds the vectors of the towers before
    else:
        col = catalog.create(name, dim, model=stamp, model_digest=digest)
    if col.dim != dim:
        raise JobError(f"collection '{name}' holds {col.dim}-d vectors; the job made {dim}-d")
    n = 0
    for ids, vecs, metas in iter_vectors(out, dim):
        last = {item_id: i for i, item_id in enumerate(ids)}  # a repeated id: the last row wins
        keep = sorted(last.values())
        ids_k, metas_k = [ids[i] for i in keep], [metas[i] for i in keep]
        stale = stale_children(col, ids_k, metas_k)
        said = [m.get("transcript") if m.get("modality") == "speech" else None for m in metas_k]
        col.upsert(ids_k, vecs[keep], metas_k, model=stamp, remove=stale, texts=said)
        n += len(ids)
        if progress is not None:
            progress(len(ids))
    col.settle()
    return {"collection": name, "rows": n, "count": col.count, "index": col.index_factory}
