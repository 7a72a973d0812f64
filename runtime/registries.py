"""The trained classifiers and fusion heads of the served model: their registries on disk, the
loaded ones kept until retrained (a newer `updated` stamp reloads), and the classifier trainings
in progress.

Imports fusion only.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fusion.classifier import Classifier
from fusion.head import FusionHead
from fusion.registry import Registry, head_registry


class Models:
    def __init__(self, data_dir: Path, model: str, recover: bool = True) -> None:
        self.model = model
        self.classifiers = Registry(Path(data_dir) / "classifiers")
        if recover:  # once per process, at start (not for a model loaded while trainings run)
            self.classifiers.interrupted()  # left 'training' by a process that stopped: failed
        self.heads = head_registry(Path(data_dir))
        self.training: dict[str, asyncio.Task] = {}
        self._loaded: dict[tuple[str, str], tuple[float, Any]] = {}

    def classifier(self, name: str) -> Classifier:
        """The ready classifier `name` for the served model (reloaded when it was retrained)."""
        return self._ready(self.classifiers, name)

    def fusion_head(self, name: str) -> FusionHead:
        """The fusion head `name` for the served model (reloaded when it was retrained)."""
        return self._ready(self.heads, name)

    def _ready(self, registry: Registry, name: str) -> Any:
        stamp = registry.status(name).get("updated", 0.0)
        hit = self._loaded.get((registry.noun, name))
        if hit is None or hit[0] != stamp:
            hit = (stamp, registry.load(name, self.model))
            self._loaded[(registry.noun, name)] = hit
        return hit[1]
