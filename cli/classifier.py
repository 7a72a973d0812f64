"""`jointspace fit-classifier`: train a fusion classifier on labelled data with the served model,
saved under the data directory for `POST /classify` with `"classifier": NAME`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import err, fail, friendly, out, progress

if TYPE_CHECKING:
    from encoders import Encoder
    from fusion.classifier import Examples

DATA_HELP = ("A folder with a subfolder per label, or a .jsonl/.csv/.parquet table with a label "
             "column and text, image, audio columns.")  # fmt: skip


@friendly
def fit_classifier(
    data: Annotated[Path, typer.Option(help=DATA_HELP)],
    out_name: Annotated[str, typer.Option("--out", help="The classifier's name.")],
    fusion: Annotated[str, typer.Option(help="early, late or attention.")] = "late",
    model: Annotated[str, typer.Option(help="Model spec whose vectors it reads.")] = "house",
    data_dir: Annotated[Path, typer.Option(help="The service's data directory.")] = Path("data"),
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training split.")] = 200,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Fit a classifier over frozen embeddings (80% to train, 20% to calibrate and report)."""
    from encoders import load_encoder
    from fusion.classifier import KINDS, fit
    from fusion.registry import Registry
    from training.fusion.labelled import read_examples

    if fusion not in KINDS[:3]:
        fail(f"--fusion must be one of early, late, attention, not {fusion!r}")
    registry = Registry(data_dir / "classifiers")
    registry.check_name(out_name)
    examples = read_examples(data)
    enc = load_encoder(model)
    ex = embed_with_progress(examples, enc, check=True)
    clf = fit(ex, fusion, seed=seed, epochs=epochs)
    registry.save(out_name, clf, model=enc.name, source=str(data))
    i = clf.info
    figures = "no validation split (too few examples)"
    if "validation_accuracy" in i:
        figures = (f"validation accuracy {i['validation_accuracy']:.3f}, ECE "
                   f"{i['ece_before']:.3f} -> {i['ece_after']:.3f} "
                   f"(temperature {i['temperature']:.2f})")  # fmt: skip
    out.print(f"classifier '{out_name}': {fusion} fusion of {', '.join(ex.modalities)}, "
              f"{len(ex.classes)} labels, {i['train_examples']} training examples; {figures}",
              markup=False, highlight=False, soft_wrap=True)  # fmt: skip


HEAD_DATA_HELP = ("A folder (a subfolder per label; files sharing a stem are the parts of one "
                  "thing), or a .jsonl/.csv/.parquet table with text, image, audio columns and an "
                  "optional group column marking rows of one thing.")  # fmt: skip


@friendly
def fit_fusion_head(
    data: Annotated[Path, typer.Option(help=HEAD_DATA_HELP)],
    out_name: Annotated[str, typer.Option("--out", help="The fusion head's name.")],
    model: Annotated[str, typer.Option(help="Model spec whose vectors it reads.")] = "house",
    data_dir: Annotated[Path, typer.Option(help="The service's data directory.")] = Path("data"),
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training split.")] = 40,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Learn how to fuse the parts of one thing (80% of the things to train, 20% to pick the best
    epoch, equal weights included); used where a multi-part input names it as its `head`."""
    from encoders import load_encoder
    from fusion.head import HeadConfig, train_head
    from fusion.registry import head_registry
    from training.fusion.labelled import read_examples

    registry = head_registry(data_dir)
    registry.check_name(out_name)
    examples = read_examples(data, things=True)
    enc = load_encoder(model)
    ex = embed_with_progress(examples, enc, check=False)
    head = train_head(ex.vectors, ex.present, ex.modalities, ex.labels,
                      HeadConfig(epochs=epochs, seed=seed))  # fmt: skip
    registry.save(out_name, head, model=enc.name, source=str(data))
    out.print(f"fusion head '{out_name}': {head_summary(head.info)}",
              markup=False, highlight=False, soft_wrap=True)  # fmt: skip


def head_summary(i: dict) -> str:
    """A head's training figures in one line."""
    line = f"{i['train_examples']} training examples"
    if i.get("validation_recall_head") is None:
        return f"{line}, no validation split (too few things)"
    kept = (f"epoch {i['best_epoch']} of {i['epochs']}" if i["best_epoch"]
            else "equal weights (no epoch did better)")  # fmt: skip
    return (
        f"{line}; validation leave-one-out recall@1 {i['validation_recall_head']:.3f} "
        f"against equal weights {i['validation_recall_equal']:.3f}; kept {kept}"
    )


def embed_with_progress(examples: list, enc: Encoder, check: bool) -> Examples:
    """training.fusion.labelled.embed_examples with a progress bar over the parts."""
    from training.fusion.labelled import count_parts, embed_examples

    err.print(f"embedding {len(examples)} examples with {enc.name}", highlight=False)
    total = count_parts(examples)
    with progress(total) as bar:
        task = bar.add_task("embedding parts", total=total)
        return embed_examples(examples, enc, check=check, done=lambda n: bar.advance(task, n))
