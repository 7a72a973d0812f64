"""Trained classifiers by name under a data directory: `<root>/<name>/` holds the weights, the
classifier's description and `status.json` (training, ready or failed, with the model spec the
classifier was trained on and its validation figures). A classifier is written under a temporary
name and renamed into place, so a half-written one is never loaded. Filesystem only: no torch
until a classifier is loaded, no encoders, FAISS or HTTP.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

from fusion.classifier import Classifier, ClassifierError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
STATUS = "status.json"


class UnknownClassifier(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @staticmethod
    def check_name(name: str) -> str:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ClassifierError(
                f"bad classifier name {name!r}: use 1-64 letters, digits, '_', '-' or '.', "
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
            raise UnknownClassifier(f"no classifier named '{name}'")
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

    def save(self, name: str, clf: Classifier, model: str, fusion: str, source: str) -> dict:
        """Write the classifier's files in place and mark it ready."""
        folder = self.root / self.check_name(name)
        tmp = self.root / f".saving-{name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        clf.save(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for f in tmp.iterdir():
            os.replace(f, folder / f.name)
        tmp.rmdir()
        return self.set_status(
            name, status="ready", model=model, fusion=fusion, source=source,
            classes=clf.classes, modalities=list(clf.modalities), metrics=clf.info, error=None,
        )  # fmt: skip

    def load(self, name: str, model: str) -> Classifier:
        """The ready classifier `name`, refused when it was trained on another model's vectors."""
        status = self.status(name)
        if status.get("status") != "ready":
            raise ClassifierError(f"classifier '{name}' is {status.get('status')}, not ready")
        if status.get("model") != model:
            raise ClassifierError(
                f"classifier '{name}' was trained on vectors from '{status.get('model')}', "
                f"not '{model}'"
            )
        return Classifier.load(self.root / name)

    def delete(self, name: str) -> None:
        self.status(name)
        shutil.rmtree(self.root / name)

    def interrupted(self) -> list[str]:
        """Classifiers left 'training' by a process that stopped: marked failed, returned."""
        out = []
        for name in self.names():
            if self.status(name).get("status") == "training":
                self.set_status(name, status="failed",
                                error="the service stopped while it was training")  # fmt: skip
                out.append(name)
        return out
