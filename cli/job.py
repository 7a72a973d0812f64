"""`jointspace job`: batch embedding jobs (`job embed`) and loading their output into a collection
(`job ingest`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from cli.common import Fps, Pooling, Shots, err, fail, friendly, out

DataDir = Annotated[
    Path | None,
    typer.Option(
        help="Collections go in DATA_DIR/collections (default: JOINTSPACE_DATA_DIR, ./data)."
    ),
]

app = typer.Typer(
    no_args_is_help=True, help="Batch embedding jobs over folders, tar shards and tables."
)


def job_progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]} items/s"),
        TextColumn("errors {task.fields[errors]}"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


@app.command("embed")
@friendly
def embed_cmd(
    src: Annotated[
        list[Path], typer.Argument(help="A folder, .tar shards, or a .parquet/.csv/.jsonl table.")
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Output directory (parquet shards).")],
    model: Annotated[str, typer.Option(help="Model spec.")] = "house",
    runner: Annotated[
        str, typer.Option(help="local (worker processes) or ray (Ray Data).")
    ] = "local",
    workers: Annotated[
        int,
        typer.Option(min=0, help="Decode processes (local; 0: inline) or model actors (ray)."),
    ] = 2,
    batch_size: Annotated[int, typer.Option(min=1, help="Inputs per forward pass.")] = 64,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N inputs.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 (default: auto).")] = None,
    shard_size: Annotated[
        int, typer.Option(min=1, help="Inputs per output shard (folders and tables).")
    ] = 10_000,
    window: Annotated[float | None, typer.Option(min=0.1, help="Audio window, seconds.")] = None,
    interval: Annotated[
        float, typer.Option(min=0.1, max=600, help="Video segment length, seconds.")
    ] = 4.0,
    shots: Shots = False,
    fps: Fps = 1.0,
    pooling: Pooling = "auto",
    video_audio: Annotated[
        str,
        typer.Option(
            help="A video's sound track: off, fuse (into each segment's vector) or separate "
            "(rows of its own, ID@aN); needs an audio tower."
        ),
    ] = "off",
    video_weights: Annotated[
        str | None,
        typer.Option(help="With --video-audio fuse: image=W,audio=W (default 1 each)."),
    ] = None,
    path_column: Annotated[str, typer.Option(help="Tables: the column of file paths.")] = "path",
    text_column: Annotated[str, typer.Option(help="Tables: the column of texts.")] = "text",
    id_column: Annotated[str, typer.Option(help="Tables: the column of ids.")] = "id",
    speech: Annotated[
        bool,
        typer.Option(
            help="Also transcribe audio and video inputs: a row per stretch of speech (ID@sN), "
            "embedded by the text tower."
        ),
    ] = False,
    asr: Annotated[
        str,
        typer.Option(
            envvar="JOINTSPACE_ASR",
            help="With --speech: a Whisper size (tiny.en is packaged) or a directory.",
        ),
    ] = "tiny.en",
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster address (default: RAY_ADDRESS, or local).")
    ] = None,
    ingest_into: Annotated[
        str | None, typer.Option("--ingest", help="Then put the vectors into this collection.")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Embed every input under SRC into parquet shards in --out; rerun the same command to
    resume an interrupted job."""
    from jobs import JobOptions, TableColumns, VideoOptions, embed_job

    video = VideoOptions(fps=fps, interval=interval, shots=shots, pooling=pooling,
                         audio=video_audio, weights=parse_weights(video_weights))  # fmt: skip
    opts = JobOptions(
        runner=runner, workers=workers, batch_size=batch_size, limit=limit, device=device,
        shard_size=shard_size, window=window, ray_address=ray_address, video=video,
        speech=speech, asr=asr,
        columns=TableColumns(path=path_column, text=text_column, id=id_column),
    )  # fmt: skip
    bar = job_progress()
    task = None
    state = {"errors": 0}

    def on_start(started) -> None:
        nonlocal task
        if started.resumed:
            err.print(f"resuming: {started.resumed} of {len(started.plan.sizes)} shards are done",
                      markup=False)  # fmt: skip
        for modality, n in sorted(started.plan.skipped.items()):
            tower = "image" if modality == "video" else modality
            err.print(f"skipping {n} {modality} files: model '{model}' has no {tower} tower",
                      markup=False)  # fmt: skip
        task = bar.add_task("embedding", total=started.pending, rate="-", errors=0)
        bar.start()

    def progress(n: int, n_err: int) -> None:
        state["errors"] += n_err
        bar.advance(task, n)
        speed = bar.tasks[task].speed
        bar.update(task, rate=f"{speed:.0f}" if speed else "-", errors=state["errors"])

    try:
        manifest = embed_job(src, out_dir, model, opts, on_start=on_start, progress=progress,
                             on_migrate=lambda: migrated(out_dir))  # fmt: skip
    except KeyboardInterrupt:
        bar.stop()
        err.print("interrupted: finished shards are kept; run the same command to resume",
                  markup=False)  # fmt: skip
        raise typer.Exit(130) from None
    finally:
        bar.stop()
    run = manifest["last_run"]
    rows = ", ".join(f"{n} {m}" for m, n in sorted(manifest["rows"].items())) or "no rows"
    summary = (
        f"{out_dir}: {rows}; {manifest['errors']} errors (_errors.jsonl); "
        f"this run {run['items']} inputs in {run['seconds']:.1f} s"
    )
    out.print(summary, markup=False, highlight=False)
    if ingest_into:
        ingest_cmd(out_dir, ingest_into, data_dir)


def parse_weights(text: str | None) -> dict[str, float] | None:
    """`image=1,audio=2` as a dict; a malformed one is a one-line error."""
    if text is None:
        return None
    out = {}
    for part in text.split(","):
        name, eq, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            eq = ""
        if not eq or not name.strip():
            fail(f"--video-weights takes name=number pairs such as image=1,audio=2, not '{text}'")
    return out


def migrated(out_dir: Path) -> None:
    err.print(f"{out_dir}: renamed manifest.json, errors/ and errors.jsonl to _manifest.json, "
              "_errors/ and _errors.jsonl, so that data tools read the directory as a dataset",
              markup=False)  # fmt: skip


@app.command("ingest")
@friendly
def ingest_cmd(
    job_dir: Annotated[Path, typer.Argument(help="The --out directory of a finished job.")],
    collection: Annotated[str, typer.Argument(help="Collection name (created when missing).")],
    data_dir: DataDir = None,
    index_backend: Annotated[
        str | None,
        typer.Option(help="faiss (default), milvus:PATH.db or milvus:http://HOST:19530."),
    ] = None,
) -> None:
    """Put a finished job's vectors into a collection (upsert by id)."""
    from index import (
        CollectionError,
        CollectionExists,
        IndexUnavailable,
        StorageFailed,
        StorageFull,
    )
    from index.backend import open_catalog
    from jobs import ingest
    from jobs.ingest import finished_job
    from runtime.settings import Settings, SettingsError

    # before any data directory is touched
    total = sum(finished_job(job_dir, lambda: migrated(job_dir))["rows"].values())
    try:  # the service's data directory and free-space floor, from the same variables
        settings = Settings.load(data_dir=data_dir, index_backend=index_backend)
    except SettingsError as e:
        fail(e)
    bar = job_progress()
    task = bar.add_task("ingesting", total=total, rate="-", errors=0)
    try:
        catalog = open_catalog(
            settings.index_backend, settings.data_dir / "collections",
            min_free=settings.min_free_bytes, token=settings.milvus_token or "",
        )  # fmt: skip
        try:
            with bar:
                res = ingest(job_dir, catalog, collection, progress=lambda n: bar.advance(task, n))
        finally:
            catalog.close()
    except (CollectionError, CollectionExists, IndexUnavailable, StorageFailed, StorageFull) as e:
        fail(e)
    out.print(f"collection '{res['collection']}': {res['count']} items, index {res['index']} "
              f"({res['rows']} rows read)", markup=False, highlight=False)  # fmt: skip
