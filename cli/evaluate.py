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
    model: Annotated[
        list[str] | None,
        typer.Option(
            help="Model spec to evaluate (default house); repeat it to compare "
            "models in one table (before and after a fine-tune: --model house "
            "--model model:DIR)."
        ),
    ] = None,
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

    models = model or ["house"]
    if len(models) > 1:
        return compare(models, suite, limit, seed, out_path, device)
    enc = load_encoder(models[0], device=device)
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


def compare(models: list[str], suite, limit, seed: int, out_path: Path | None, device) -> None:
    """Several models through the same suites: one row per figure, one column per model."""
    from housedata.sets import MissingData
    from training.evaluate import evaluate
    from training.metrics import metric_rows

    results = []
    for spec in models:
        enc = load_encoder(spec, device=device)
        try:
            results.append(evaluate(enc, tuple(suite) if suite else None, limit=limit, seed=seed))
        except (ValueError, MissingData) as e:
            fail(e)
        del enc
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(results, indent=2) + "\n")
    values = [{(s, k): v for s, k, v, _, _ in metric_rows(r)} for r in results]
    chance = {(s, k): c for r in results for s, k, _, c, _ in metric_rows(r)}
    table = Table(title=f"seed {seed}")
    for col in ("suite", "metric", *(r["model"] for r in results), "chance"):
        table.add_column(col, justify="left" if col in ("suite", "metric") else "right")
    for key in dict.fromkeys(k for v in values for k in v):
        cells = [f"{v[key]:.3f}" if key in v else "" for v in values]
        c = chance.get(key)
        table.add_row(*key, *cells, f"{c:.3f}" if c is not None else "")
    out.print(table)
