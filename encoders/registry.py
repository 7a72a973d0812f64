"""Model specs: one string names a model everywhere (CLI, config, API).

Owns turning a spec (parsed by encoders.spec: `house` / `house:DIR`, `open_clip:ARCH@TAG_OR_PATH`,
`hf:ID_OR_DIR`, `model:DIR`) into a loaded `Encoder` (a directory through encoders.modeldir), which
models have what (`models_with`, for the messages that send users to one), and listing what can be
loaded. Knows nothing of FAISS or HTTP.
"""

from __future__ import annotations

import os
from pathlib import Path

from encoders.base import Encoder
from encoders.spec import BACKENDS, SPEC_FORMS, ModelSpec, parse_spec

__all__ = ["BACKENDS", "SPEC_FORMS", "ModelSpec", "load_encoder", "models_with", "parse_spec"]

# Which models have each modality or part (for messages that send users to one).
MODELS_WITH = {
    "text": "every model",
    "image": "'house', 'open_clip:' models, and 'hf:' CLIP, SigLIP, SigLIP 2 and ALIGN models",
    "audio": "'house', 'hf:' CLAP checkpoints such as hf:laion/clap-htsat-unfused, and model "
    "directories with an audio part",
    "video": "none yet",
}
PART_NOUNS = {"audio": "an audio part", "temporal": "a temporal head", "captioner": "a captioner",
              "decoder": "an image decoder", "prior": "a prior"}  # fmt: skip


def models_with(what: str) -> str:
    """Which models have the modality or part `what`, and for a part how a user's model gets one."""
    if what in MODELS_WITH:
        return MODELS_WITH[what]
    if what in PART_NOUNS:
        return (f"'house', and model directories with {PART_NOUNS[what]} (model:DIR; train one: "
                f"jointspace train --target {what} --model DIR --data SRC)")  # fmt: skip
    return "none"


def load_encoder(spec: str | ModelSpec, device: str | None = None) -> Encoder:
    """Load the encoder a spec names, on `device` (default: CUDA when present, else CPU)."""
    ms = spec if isinstance(spec, ModelSpec) else parse_spec(spec)
    if ms.backend in ("house", "model"):
        return load_directory(ms, device)
    from encoders.modeldir import load_towers

    return load_towers(ms, device)


def load_directory(ms: ModelSpec, device: str | None) -> Encoder:
    """`model:DIR`, or `house` / `house:DIR`: the shipped folder and a house folder with a
    model.json are model directories; one without (a towers training run) is read by its files."""
    from encoders.house import default_house_dir
    from encoders.modeldir import MODEL_JSON, legacy_house_dir, load_model_dir, read_model_dir

    path = Path(ms.name).expanduser() if ms.name else default_house_dir()
    if ms.backend == "model" or (path / MODEL_JSON).is_file():
        md = read_model_dir(path)
    else:
        md = legacy_house_dir(path)
    return load_model_dir(md, str(ms), device)


def models_dirs() -> list[Path]:
    """Where local checkpoints are looked for: $JOINTSPACE_MODELS_DIR (os.pathsep-separated)."""
    raw = os.environ.get("JOINTSPACE_MODELS_DIR", "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p]


def local_checkpoints(dirs: list[Path] | None = None) -> list[str]:
    """Spec strings for what is found in the models directories.

    A directory holding config.json is a transformers model (hf:DIR). A bare checkpoint file does
    not record its architecture, so it is listed as open_clip:ARCH@FILE for the user to complete.
    """
    from encoders.openclip import CHECKPOINT_SUFFIXES

    found = []
    for d in dirs if dirs is not None else models_dirs():
        if not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            if p.is_dir() and (p / "config.json").is_file():
                found.append(f"hf:{p}")
            elif p.is_file() and p.suffix in CHECKPOINT_SUFFIXES:
                found.append(f"open_clip:ARCH@{p}")
    return found


def open_clip_models() -> dict[str, list[str]]:
    """Each open_clip architecture with its pretrained tags (tags download in the user's env)."""
    import open_clip

    tags: dict[str, list[str]] = {arch: [] for arch in open_clip.list_models()}
    for arch, tag in open_clip.list_pretrained():
        tags.setdefault(arch, []).append(tag)
    return tags
