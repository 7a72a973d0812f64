"""The one model-card writer every trained model uses: a card is MODEL_CARD.md beside the model's
files, filled from those files (configuration, training log, eval results) so that no figure is
typed by hand. Each model's card module holds its template and the fill; this module reads the
files, formats the eval rows, writes the card and is the command line of every card module.

Imports nothing of the project; must not import the models, the service or the index.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

CARD = "MODEL_CARD.md"


def read_json(folder: Path, *names: str) -> list[Any]:
    """The JSON content of each named file in the model folder."""
    return [json.loads((folder / name).read_text()) for name in names]


def cell(x: float | None) -> str:
    """A table cell for a figure that may be missing (chance, baseline)."""
    return "" if x is None else f"{x:.3f}"


def write_card(folder: Path, text: str) -> Path:
    """Writes the card's text as the folder's MODEL_CARD.md; returns its path."""
    out = folder / CARD
    out.write_text(text)
    return out


Option = tuple[str, dict[str, Any]]


def card_main(doc: str, write: Callable[[argparse.Namespace], Path],
              options: Sequence[Option] = ()) -> None:  # fmt: skip
    """The command line of a card module: the model folder (`model_dir`), then `options` as
    argparse flags; `write` makes the card and returns its path, which is printed."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("model_dir", type=Path)
    for flag, kwargs in options:
        ap.add_argument(flag, **kwargs)
    print(f"wrote {write(ap.parse_args())}")
