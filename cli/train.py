"""`jointspace train`: train the house towers (resumable)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from cli.common import err, fail, friendly


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
