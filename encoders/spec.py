"""The model spec string and its parsing: `house` / `house:DIR`, `open_clip:ARCH@TAG_OR_PATH`,
`hf:ID_OR_DIR` and `model:DIR`. Every malformed spec gets a one-line message that says what was
expected. Imports nothing of the project but its errors.
"""

from __future__ import annotations

from dataclasses import dataclass

from encoders.errors import ModelSpecError

SPEC_FORMS = (
    "'house', 'house:DIR', 'open_clip:ARCH@TAG_OR_CHECKPOINT', 'hf:HUB_ID_OR_DIR' or 'model:DIR'"
)
BACKENDS = ("open_clip", "hf", "house", "model")


@dataclass(frozen=True)
class ModelSpec:
    backend: str
    name: str  # open_clip architecture, or hub id / directory for hf
    source: str | None = None  # open_clip pretrained tag, checkpoint path or random-init

    def __str__(self) -> str:
        if self.backend == "house":
            return f"house:{self.name}" if self.name else "house"
        if self.backend == "open_clip":
            return f"open_clip:{self.name}@{self.source}"
        return f"{self.backend}:{self.name}"


def parse_spec(spec: str) -> ModelSpec:
    """Parse a spec string; raise ModelSpecError naming what is wrong."""
    if not isinstance(spec, str) or not spec.strip():
        raise ModelSpecError(f"empty model spec: expected {SPEC_FORMS}")
    spec = spec.strip()
    if spec == "house":
        return ModelSpec("house", "")
    backend, sep, rest = spec.partition(":")
    if not sep or backend not in BACKENDS:
        raise ModelSpecError(f"unknown model spec '{spec}': expected {SPEC_FORMS}")
    if not rest:
        raise ModelSpecError(f"model spec '{spec}' names no model after '{backend}:'")
    if backend in ("hf", "house", "model"):
        return ModelSpec(backend, rest)
    arch, at, source = rest.partition("@")
    if not at or not arch or not source:
        raise ModelSpecError(
            f"model spec '{spec}' needs ARCH@TAG_OR_CHECKPOINT, "
            "e.g. open_clip:ViT-B-32@laion2b_s34b_b79k or open_clip:ViT-B-32@/path/to/model.pt"
        )
    return ModelSpec("open_clip", arch, source)
