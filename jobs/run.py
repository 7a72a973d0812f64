"""One batch embedding job from start to end: plan, claim the output directory, run the pending
shards on the chosen runner, and close the manifest.

Owns the order of a job and what a resumed one skips (shards already on disk), the figures in the
manifest (items, rows per modality, errors, seconds, items/s), and the choice of runner. Must not
import anything of HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from encoders.base import AUDIO
from encoders.registry import load_encoder, parse_spec
from encoders.speech import PACKAGED
from jobs.decode import DecodeOptions
from jobs.errors import JobError
from jobs.local import Progress, run_local
from jobs.output import (
    claim,
    done_shards,
    merge_errors,
    shard_counts,
    write_manifest,
    write_shard,
)
from jobs.sources import DEFAULT_SHARD_SIZE, Plan, Shard, TableColumns, plan
from jobs.speech import recogniser
from jobs.video import VideoOptions

RUNNERS = ("local", "ray")


@dataclass
class JobOptions:
    runner: str = "local"
    workers: int = 2
    batch_size: int = 64
    limit: int | None = None
    device: str | None = None
    shard_size: int = DEFAULT_SHARD_SIZE
    window: float | None = None
    columns: TableColumns = field(default_factory=TableColumns)
    ray_address: str | None = None
    video: VideoOptions = field(default_factory=VideoOptions)
    speech: bool = False  # transcribe audio and video inputs, a row per stretch of speech
    asr: str = PACKAGED  # the recogniser: a Whisper size or a CTranslate2 directory


@dataclass
class Started:
    """What the caller learns before the work starts (for its progress bar)."""

    plan: Plan
    pending: int  # items in shards still to do
    resumed: int  # shards already on disk


def embed_job(
    srcs: list[Path],
    out: Path,
    spec: str,
    opts: JobOptions,
    on_start=None,
    progress: Progress | None = None,
    on_migrate=None,
) -> dict:
    """Run (or resume) the job; returns the final manifest. `on_migrate` is called once when `out`
    was in the first layout and its side files were renamed (jobs.output.migrate)."""
    if opts.runner not in RUNNERS:
        raise JobError(f"unknown runner '{opts.runner}': use one of {', '.join(RUNNERS)}")
    model = str(parse_spec(spec))
    enc = load_encoder(spec, device="cpu" if opts.runner == "ray" else opts.device)
    video = opts.video.resolved(enc)
    rec, asr_dir = recogniser(opts.asr, enc) if opts.speech else (None, None)
    the_plan = plan(srcs, enc.modalities, opts.shard_size, opts.limit, opts.columns)
    info = {
        "encoder": enc.name, "model_digest": enc.model_digest, "kind": the_plan.kind,
        "sources": the_plan.sources,
        "items": the_plan.n_items, "shards": len(the_plan.sizes),
        "shard_size": opts.shard_size, "fingerprint": the_plan.fingerprint,
        "skipped": the_plan.skipped,
    }  # fmt: skip
    if the_plan.modalities.get("video") or the_plan.modalities.get("unknown"):
        info["video"] = video.manifest()  # a resumed job must cut its videos the same way
    if opts.speech:
        info["speech"] = {"asr": opts.asr}
    manifest = claim(out, model, enc.dim, info, on_migrate)
    done = done_shards(out)
    pending = {name: n for name, n in the_plan.sizes.items() if name not in done}
    n_items = sum(pending.values())
    if on_start is not None:
        on_start(Started(the_plan, n_items, len(done)))
    dec = DecodeOptions(
        audio_rate=enc.audio_rate if AUDIO in enc.modalities else 16_000,
        modalities=frozenset(enc.modalities),
        image_prefit=enc.image_prefit,
        video=video,
        speech=opts.speech,
    )
    t0 = time.perf_counter()
    work, received = _work(the_plan, pending, out, enc.dim), None
    if n_items and opts.runner == "local":
        run_local(enc, work, out, dec, workers=opts.workers, batch_size=opts.batch_size,
                  window=opts.window, progress=progress, speech=rec)  # fmt: skip
    elif n_items:
        from jobs.ray_runner import run_ray

        received = run_ray(spec, enc.dim, work, out, dec, workers=max(1, opts.workers),
                           batch_size=opts.batch_size, device=opts.device, window=opts.window,
                           address=opts.ray_address, progress=progress,
                           asr=asr_dir)  # fmt: skip
    for _ in work:  # the empty shards after the last one with items
        pass
    seconds = time.perf_counter() - t0
    names = list(the_plan.sizes)
    rows = shard_counts(out, names)
    manifest |= {
        "complete": True,
        "rows": rows,
        "errors": merge_errors(out, names),
        "last_run": {
            "runner": opts.runner, "workers": opts.workers, "batch_size": opts.batch_size,
            "shards": len(pending), "items": n_items, "seconds": round(seconds, 3),
            "items_per_s": round(n_items / seconds, 1) if seconds > 0 else None,
            "driver_bytes_received": received,  # Ray: the actors' answers; local: None
        },
    }  # fmt: skip
    write_manifest(out, manifest)
    return manifest


def _work(the_plan: Plan, pending: dict[str, int], out: Path, dim: int) -> Iterator[Shard]:
    """The pending shards with items, listed from the source one at a time; a pending shard
    with none (a tar with nothing to embed, or a shard cut to nothing by --limit) is written
    empty on the way."""
    for s in the_plan.shards():
        if s.name not in pending:
            continue
        if not s.items:
            write_shard(out, s.name, [], [], dim)
            continue
        yield s
