"""The `jointspace` command line.

Owns argument parsing, progress display, output files and the mapping of library errors to one
line on stderr and exit code 2. All real work is library code in encoders/ (and later index/,
training/, jobs/); nothing here computes a vector itself.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from encoders import DEFAULT_MAX_PIXELS, JointspaceError, decode_image, load_encoder
from encoders.base import batches, check_texts

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="jointspace: embed text and images into one vector space.",
)
err = Console(stderr=True)
out = Console()


def fail(e: Exception) -> NoReturn:
    """A caller-fixable error: one line on stderr, exit code 2, no traceback."""
    err.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2) from None


def friendly(fn: Callable) -> Callable:
    """Turn the library's caller-fixable errors into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except JointspaceError as e:
            fail(e)

    return wrapper


@app.command()
@friendly
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the architectures and local checkpoints jointspace can load."""
    from encoders.hf import FAMILIES
    from encoders.registry import local_checkpoints, models_dirs, open_clip_models

    arches = open_clip_models()
    local = local_checkpoints()
    if as_json:
        data = {"open_clip": arches, "hf_families": sorted(FAMILIES), "local": local}
        print(json.dumps(data, indent=2))
        return
    out.print(
        "[bold]open_clip[/bold] architectures: open_clip:ARCH@TAG (downloads where the hub is "
        "reachable) or open_clip:ARCH@/path/to/checkpoint.pt"
    )
    for arch, tags in arches.items():
        out.print(
            f"  {arch}: {', '.join(tags) if tags else '(checkpoint file only)'}", markup=False
        )
    out.print(
        f"[bold]transformers[/bold] families (hf:HUB_ID_OR_DIR): {', '.join(sorted(FAMILIES))}"
    )
    where = ", ".join(str(d) for d in models_dirs()) or "set JOINTSPACE_MODELS_DIR"
    out.print(f"[bold]local checkpoints[/bold] ({where}):", markup=True, highlight=False)
    for spec in local or ["(none)"]:
        out.print(f"  {spec}", markup=False, highlight=False)


def _progress(total: int) -> Progress:
    """A bar only when the inputs would not fit on one screen."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=total <= max(err.size.height, 24),
    )


@app.command()
@friendly
def embed(
    model: Annotated[
        str, typer.Option(help="Model spec, e.g. open_clip:ViT-B-32@laion2b_s34b_b79k")
    ],
    text: Annotated[list[str] | None, typer.Option(help="A text to embed (repeatable).")] = None,
    image: Annotated[list[Path] | None, typer.Option(help="An image file (repeatable).")] = None,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write vectors to .npy or .parquet.")
    ] = None,
    similarity: Annotated[bool, typer.Option(help="Print the cosine similarity matrix.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Inputs per forward pass.")] = 32,
    max_pixels: Annotated[int, typer.Option(min=1)] = DEFAULT_MAX_PIXELS,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 (default: auto).")] = None,
) -> None:
    """Embed texts and images; texts come first in the output, each group in the order given."""
    texts, paths = list(text or []), list(image or [])
    if not texts and not paths:
        raise typer.BadParameter("give at least one --text or --image")
    if out_path is not None and out_path.suffix not in (".npy", ".parquet"):
        raise typer.BadParameter(f"--out must end in .npy or .parquet, not '{out_path.suffix}'")
    # Validate every input before the model loads, so a bad one fails in milliseconds.
    check_texts(texts)
    for p in paths:
        decode_image(p, max_pixels=max_pixels)
    enc = load_encoder(model, device=device)
    vectors, truncated = [], []
    with _progress(len(texts) + len(paths)) as bar:
        task = bar.add_task("embedding", total=len(texts) + len(paths))
        for chunk in batches(texts, batch_size):
            res = enc.encode_text(chunk)
            vectors.append(res.vectors)
            truncated.extend(res.truncated)
            bar.advance(task, len(chunk))
        for chunk in batches(paths, batch_size):
            imgs = [decode_image(p, max_pixels=max_pixels) for p in chunk]
            vectors.append(enc.embed_images(imgs))
            truncated.extend([False] * len(chunk))
            bar.advance(task, len(chunk))
    matrix = np.concatenate(vectors)
    for i, cut in enumerate(truncated[: len(texts)]):
        if cut:
            err.print(
                f"warning: text {i} was longer than the model's {enc.context_length}-token context "
                "and was truncated",
                markup=False,
            )
    ids = [f"text-{i}" for i in range(len(texts))] + [str(p) for p in paths]
    modalities = ["text"] * len(texts) + ["image"] * len(paths)
    if out_path is not None:
        write_vectors(out_path, ids, modalities, matrix, truncated)
        err.print(
            f"wrote {matrix.shape[0]} x {matrix.shape[1]} vectors to {out_path}", markup=False
        )
    if similarity:
        print_similarity(ids, texts, paths, matrix)
    if out_path is None and not similarity:
        np.savetxt(sys.stdout, matrix, fmt="%.6f")


def write_vectors(
    path: Path, ids: list[str], modalities: list[str], matrix: np.ndarray, truncated: list[bool]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, matrix)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    flat = pa.array(matrix.reshape(-1), type=pa.float32())
    table = pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "modality": pa.array(modalities, pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(flat, matrix.shape[1]),
            "truncated": pa.array(truncated, pa.bool_()),
        }
    )
    pq.write_table(table, path)


def print_similarity(ids: list[str], texts: list[str], paths: list[Path], m: np.ndarray) -> None:
    """Texts against images when both are given, otherwise everything against everything."""
    if texts and paths:
        rows, cols = list(range(len(texts))), list(range(len(texts), len(ids)))
        row_names, col_names = texts, [p.name for p in paths]
    else:
        rows = cols = list(range(len(ids)))
        row_names = col_names = texts or [p.name for p in paths]
    sims = m[rows] @ m[cols].T
    table = Table(title="cosine similarity", show_lines=False)
    table.add_column("")
    for name in col_names:
        table.add_column(name, justify="right")
    for name, row in zip(row_names, sims, strict=True):
        best = int(row.argmax())
        cells = [f"[bold]{v:.3f}[/bold]" if j == best else f"{v:.3f}" for j, v in enumerate(row)]
        table.add_row(name, *cells)
    out.print(table)


@app.command()
@friendly
def train(
    config: Annotated[
        Path | None, typer.Option(help="TOML or JSON file of training options.")
    ] = None,
    out: Annotated[str | None, typer.Option(help="Run directory (checkpoint, model).")] = None,
    loss: Annotated[str | None, typer.Option(help="siglip or clip.")] = None,
    steps: Annotated[int | None, typer.Option(min=1)] = None,
    batch_size: Annotated[int | None, typer.Option(min=2)] = None,
    lr: Annotated[float | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    data: Annotated[
        str | None,
        typer.Option(help="Comma-separated: fashion-mnist, tuxpaint, emoji, folder:DIR, tar:GLOB."),
    ] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Chunked sigmoid loss block size.")] = None,
    eval_every: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """Train the house towers; resumes from the run directory's checkpoint when there is one."""
    from training.data import MissingData
    from training.trainer import TrainConfig, Trainer

    try:
        cfg = TrainConfig.load(
            str(config) if config else None, out=out, loss=loss, steps=steps,
            batch_size=batch_size, lr=lr, seed=seed, chunk_size=chunk_size,
            eval_every=eval_every, data=data.split(",") if data else None,
        )  # fmt: skip
        trainer = Trainer(cfg, log=err.print)
    except (ValueError, MissingData, FileNotFoundError) as e:
        fail(e)
    resumed = trainer.resume()
    if trainer.rank == 0:
        what = f"resumed at step {trainer.step}" if resumed else "new run"
        err.print(
            f"{cfg.out}: {what}; {len(trainer.mixture):,} samples, loss={cfg.loss}", markup=False
        )

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"), console=err, disable=trainer.rank != 0,
    ) as bar:  # fmt: skip
        task = bar.add_task("training", total=cfg.steps, completed=trainer.step, status="")

        def show(rec: dict) -> None:
            status = f"loss {rec['loss']:.3f}"
            if "zero_shot_top1" in rec:
                status += f" zero-shot {rec['zero_shot_top1']:.3f}"
                err.print(f"step {rec['step']}: {status}", markup=False)
            bar.update(task, completed=rec["step"], status=status)

        trainer.run(progress=show)
    if trainer.rank == 0:
        err.print(f"model written to {Path(cfg.out) / 'model'} (load it as house:{cfg.out}/model)")


@app.command("eval")
@friendly
def eval_cmd(
    model: Annotated[str, typer.Option(help="Model spec to evaluate.")] = "house",
    suite: Annotated[
        list[str] | None,
        typer.Option(help="fashion-zero-shot, fashion-tinted, tuxpaint, emoji (default: all)."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Fashion-MNIST test images to use.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the held-out splits and tints.")] = 0,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write the results as JSON.")
    ] = None,
    device: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Zero-shot top-1 and retrieval Recall@1/5/10 of any model on the held-out splits."""
    from training.data import MissingData
    from training.eval import SUITES, evaluate, metric_rows

    enc = load_encoder(model, device=device)
    try:
        res = evaluate(enc, tuple(suite or SUITES), limit=limit, seed=seed)
    except (ValueError, MissingData) as e:
        fail(e)
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(res, indent=2) + "\n")
    table = Table(title=f"{res['model']} (seed {seed})")
    for col in ("suite", "metric", "value", "chance"):
        table.add_column(col, justify="left" if col in ("suite", "metric") else "right")
    for name, key, val, chance in metric_rows(res):
        table.add_row(name, key, f"{val:.3f}", f"{chance:.3f}" if chance is not None else "")
    out.print(table)


@app.command()
def serve(
    model: Annotated[str | None, typer.Option(help="Model spec (default: house).")] = None,
    host: Annotated[str | None, typer.Option(help="Default 127.0.0.1.")] = None,
    port: Annotated[int | None, typer.Option(help="Default 8000.")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Collections and media (default ./data).")
    ] = None,
    demo: Annotated[
        bool | None, typer.Option(help="Build the demo collection on first start.")
    ] = None,
    device: Annotated[str | None, typer.Option()] = None,
    index_device: Annotated[
        str | None, typer.Option(help="auto, cpu or gpu: where unfiltered searches run.")
    ] = None,
) -> None:
    """Run the HTTP service. Every option can also come from JOINTSPACE_* environment variables."""
    import uvicorn

    from service.app import create_app
    from service.settings import Settings, SettingsError

    try:
        settings = Settings.load(
            model=model, host=host, port=port, data_dir=data_dir, demo=demo, device=device,
            index_device=index_device,
        )  # fmt: skip
        application = create_app(settings)
    except SettingsError as e:
        fail(e)
    shown = "localhost" if settings.host in ("127.0.0.1", "::1") else settings.host
    err.print(f"jointspace: serving {settings.model} at http://{shown}:{settings.port}/ "
              "(the page), /docs (the API)", markup=False, highlight=False)  # fmt: skip
    uvicorn.run(
        application, host=settings.host, port=settings.port, log_level="info",
        timeout_graceful_shutdown=30,
    )  # fmt: skip


def main() -> None:
    app()


if __name__ == "__main__":
    main()
