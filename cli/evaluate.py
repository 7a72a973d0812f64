"""`jointspace eval`: held-out figures of any model spec, beside chance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli import search_suite  # noqa: F401 - registers the hybrid-search suite
from cli.common import fail, friendly, out
from encoders import load_encoder
from training.evaluate import known_suites


@friendly
def eval_cmd(
    model: Annotated[str, typer.Option(help="Model spec to evaluate.")] = "house",
    suite: Annotated[
        list[str] | None,
        typer.Option(help=f"{', '.join(known_suites())} (default: all the model can run)."),
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
    from housedata.sets import MissingData
    from training.evaluate import evaluate
    from training.metrics import metric_rows

    enc = load_encoder(model, device=device)
    try:
        res = evaluate(enc, tuple(suite) if suite else None, limit=limit, seed=seed)
    except (ValueError, MissingData) as e:
        fail(e)
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(res, indent=2) + "\n")
    table = Table(title=f"{res['model']} (seed {seed})")
    for col in ("suite", "metric", "value", "chance", "baseline"):
        table.add_column(col, justify="left" if col in ("suite", "metric") else "right")
    for name, key, val, chance, base in metric_rows(res):
        cells = [f"{x:.3f}" if x is not None else "" for x in (val, chance, base)]
        table.add_row(name, key, *cells)
    out.print(table)
