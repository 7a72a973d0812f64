"""The one checkpoint helper of every trainer: `<out>/checkpoint.pt`, holding the state dicts of a
run's parts (model, loss, optimiser, EMA...) beside its loop state (step, history, RNG state),
written atomically, and resumed only by a run with the same settings when the trainer records them.

Imports torch; nothing of the models, the data, the service or the index.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


def save_checkpoint(state: dict, path: Path) -> None:
    """Written to a temporary file, fsynced, then renamed: a kill leaves the old or the new one."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path, config: dict, device: torch.device | None) -> dict | None:
    """The checkpoint at `path` (None when there is none), refused when it was written with
    settings other than `config`."""
    if not path.is_file():
        return None
    state = torch.load(path, map_location=device, weights_only=False)
    if state["config"] != config:
        diff = sorted(k for k, v in config.items() if state["config"].get(k) != v)
        raise ValueError(
            f"{path} was written with other settings ({', '.join(diff)}): "
            "use another --out or the same settings"
        )
    return state


class Checkpoint:
    """A run's checkpoint: `parts` (name -> anything with state_dict/load_state_dict) are saved and
    restored under their names; `config`, when given, is saved too and must match on resume."""

    def __init__(self, out: str | Path, parts: dict[str, Any], config: dict | None = None,
                 device: torch.device | None = None) -> None:  # fmt: skip
        self.path = Path(out) / "checkpoint.pt"
        self.parts, self.config, self.device = parts, config, device

    def save(self, **loop: Any) -> None:
        """The parts' state dicts and the loop state given (step, history, ...)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        state = {name: part.state_dict() for name, part in self.parts.items()} | loop
        if self.config is not None:
            state["config"] = self.config
        save_checkpoint(state, self.path)

    def restore(self) -> dict | None:
        """Loads the parts from the checkpoint and returns the whole state (None: none yet)."""
        if self.config is not None:
            state = load_checkpoint(self.path, self.config, self.device)
        elif self.path.is_file():
            state = torch.load(self.path, map_location=self.device, weights_only=False)
        else:
            state = None
        if state is not None:
            for name, part in self.parts.items():
                part.load_state_dict(state[name])
        return state


class GeneratorLoop:
    """Resume and save for a trainer whose loop state is a torch Generator (`gen`), its `step`,
    its `losses` and its `seconds`, kept in `self.checkpoint` (a Checkpoint)."""

    checkpoint: Checkpoint
    gen: torch.Generator
    step: int
    losses: list
    seconds: float

    def resume(self) -> bool:
        st = self.checkpoint.restore()
        if st is None:
            return False
        self.gen.set_state(st["gen"])
        self.step, self.losses, self.seconds = st["step"], st["losses"], st["seconds"]
        return True

    def save_checkpoint(self) -> None:
        self.checkpoint.save(gen=self.gen.get_state(), step=self.step, losses=self.losses,
                             seconds=self.seconds)  # fmt: skip
