"""Trained things by name under a data directory (classifiers; fusion heads): `<root>/<name>/`
holds the weights, their description and `status.json` (training, ready or failed, with the model
spec it was trained on and its validation figures). Files are written under a temporary name and
renamed into place, so a half-written one is never loaded. Filesystem only: no torch until one is
loaded, no encoders, FAISS or HTTP.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from encoders.errors import JointspaceError
from fusion.classifier import Classifier, ClassifierError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
STATUS = "status.json"


class Unknown(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class Registry:
    """Classifiers by default; `noun`, `loader` and `error` make it a registry of another kind
    (fusion heads)."""

    def __init__(self, root: Path, noun: str = "classifier",
                 loader: Callable[[Path], Any] = Classifier.load,
                 error: type[JointspaceError] = ClassifierError) -> None:  # fmt: skip
        self.root, self.noun, self.loader, self.error = Path(root), noun, loader, error

    def check_name(self, name: str) -> str:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise self.error(
                f"bad {self.noun} name {name!r}: use 1-64 letters, digits, '_', '-' or '.', "
                "starting with a letter or digit"
            )
        return name

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / STATUS).is_file())

    def status(self, name: str) -> dict:
        path = self.root / self.check_name(name) / STATUS
        if not path.is_file():
            raise Unknown(f"no {self.noun} named '{name}'")
        return json.loads(path.read_text())

    def set_status(self, name: str, **fields) -> dict:
        """Merge `fields` into the classifier's status (creating it), written atomically."""
        folder = self.root / self.check_name(name)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / STATUS
        status = json.loads(path.read_text()) if path.is_file() else {"name": name}
        status |= fields | {"updated": time.time()}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(status, indent=2))
        os.replace(tmp, path)
        return status

    def save(self, name: str, obj: Any, model: str, **fields: Any) -> dict:
        """Write the files of `obj` (a Classifier or FusionHead) in place and mark it ready, with
        its `status_fields()` and `fields`."""
        folder = self.root / self.check_name(name)
        tmp = self.root / f".saving-{name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        obj.save(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for f in tmp.iterdir():
            os.replace(f, folder / f.name)
        tmp.rmdir()
        return self.set_status(name, status="ready", model=model, **obj.status_fields(),
                               **fields, error=None)  # fmt: skip

    def load(self, name: str, model: str) -> Any:
        """The ready one named `name`, refused when it was trained on another model's vectors."""
        status = self.status(name)
        if status.get("status") != "ready":
            raise self.error(f"{self.noun} '{name}' is {status.get('status')}, not ready")
        if status.get("model") != model:
            raise self.error(
                f"{self.noun} '{name}' was trained on vectors from '{status.get('model')}', "
                f"not '{model}'"
            )
        return self.loader(self.root / name)

    def delete(self, name: str) -> None:
        self.status(name)
        shutil.rmtree(self.root / name)

    def interrupted(self) -> list[str]:
        """Ones left 'training' by a process that stopped: marked failed, returned."""
        out = []
        for name in self.names():
            if self.status(name).get("status") == "training":
                self.set_status(name, status="failed",
                                error="the service stopped while it was training")  # fmt: skip
                out.append(name)
        return out


def head_registry(data_dir: Path) -> Registry:
    """The fusion heads under a service's data directory."""
    from fusion.head import FusionHead, HeadError

    return Registry(Path(data_dir) / "fusion_heads", "fusion head", FusionHead.load, HeadError)
