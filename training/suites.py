"""The one registry of eval suites: every suite module registers its suites here with `@suite`,
and `training.evaluate` (behind `jointspace eval`) reads them, so no suite module imports another.

A suite is a function `(encoder, limit=..., seed=...) -> dict of figures`, registered under its
command-line name with what it needs (an audio tower, or a check such as "has a captioner").
Imports nothing of the project but the `Encoder` type and the audio modality's name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from encoders.base import AUDIO, Encoder

Runner = Callable[..., dict]


@dataclass(frozen=True)
class Suite:
    name: str
    run: Runner
    module: str  # the module that registered it
    needs_audio: bool = False
    available: Callable[[Encoder], bool] | None = None

    def can_run(self, enc: Encoder) -> bool:
        """Whether the model has what the suite needs (the default suites are those it can run)."""
        if self.needs_audio and AUDIO not in enc.modalities:
            return False
        return self.available is None or self.available(enc)


REGISTRY: dict[str, Suite] = {}


def suite(
    name: str, *, needs_audio: bool = False, available: Callable[[Encoder], bool] | None = None
) -> Callable[[Runner], Runner]:
    """Registers the decorated function as the eval suite `name`."""

    def register(run: Runner) -> Runner:
        known = REGISTRY.get(name)
        if known is not None and known.module != run.__module__:
            raise ValueError(f"eval suite {name!r} is registered by {known.module} already")
        REGISTRY[name] = Suite(name, run, run.__module__, needs_audio, available)
        return run

    return register


def ordered(modules: Iterable[str]) -> tuple[str, ...]:
    """The names of the suites these modules registered: module by module, each in the order its
    suites are defined."""
    return tuple(s.name for m in modules for s in REGISTRY.values() if s.module == m)
