"""What every command shares: the consoles, the one-line error exit, the progress bar."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from encoders import JointspaceError

#: the video options `embed` and `job embed` share
Shots = Annotated[bool, typer.Option(help="Cut videos at shot boundaries instead of intervals.")]
Fps = Annotated[float, typer.Option(min=0.01, max=30, help="Video frames sampled a second.")]
Pooling = Annotated[
    str,
    typer.Option(
        help="Video frames to a vector: mean, temporal (the model's trained head) or auto (the "
        "head when the model has one)."
    ),
]

err = Console(stderr=True)
out = Console()


def fail(e: Exception | str) -> NoReturn:
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


def progress(total: int) -> Progress:
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


def steps_with_progress(run, trainer, total: int, loss_format: str):
    """`run(trainer, progress)` (a resumable step loop that reports {"step", "loss"}) under a
    progress bar; returns what it returns."""
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"), console=err,
    ) as bar:  # fmt: skip
        task = bar.add_task("training", total=total, completed=trainer.step, status="")

        def report(rec: dict) -> None:
            status = "loss " + loss_format.format(rec["loss"])
            bar.update(task, completed=rec["step"], status=status)

        return run(trainer, report)
