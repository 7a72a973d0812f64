"""Training one part of a model directory against its frozen base, then installing it.

The base's vectors of the training inputs are computed once and cached in the run directory
(keyed by the base's fingerprint and the inputs), so a resumed run and a second target on the
same data skip the base's forward passes. Each target reuses its own trainer: the captioner's
(training.captioner.train), the decoder's and prior's (training.decoder.train), the temporal
head's (training.temporal.train, on the house's rendered clips) and the audio tower's
(training.audio.train). When training ends the part's files are copied into the directory and
stamped (encoders.modeldir.install_part) with the base's fingerprint and the run's facts.

Takes its data as decoded pairs (`Pairs`); reading sources is the caller's (the CLI reads the
batch jobs' sources). Imports encoders, generation and training; nothing of jobs, the service or
the index.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from encoders.base import IMAGE, TEXT, Encoder
from encoders.modeldir import FOLDERS, ModelDir, install_part, part_record

TARGETS = ("audio", "temporal", "captioner", "decoder", "prior")
#: what each target trains against: the base towers it cannot do without
NEEDS = {
    "audio": (TEXT,),
    "temporal": (IMAGE,),
    "captioner": (IMAGE, TEXT),
    "decoder": (IMAGE,),
    "prior": (IMAGE, TEXT),
}


class BadData(ValueError):
    """Training data or a target that cannot be used; nothing is installed."""


@dataclass
class Pairs:
    """Decoded training inputs: images or clips (mono float32 at the base's audio rate), each
    with its caption (None where it has none), and a label of where they came from."""

    source: str
    images: list[Image.Image] = field(default_factory=list)
    clips: list[np.ndarray] = field(default_factory=list)
    captions: list[str | None] = field(default_factory=list)
    #: per input the preset it came from (fashion, tuxpaint, emoji) or "user"
    sources: list[str] = field(default_factory=list)
    #: a stable description of the inputs for the vector cache (paths and sizes, or a recipe)
    key: str = ""


def towers(modalities, joint: str) -> str:
    """'an image tower', 'a text tower and an image tower'."""
    return f" {joint} ".join(f"{'an' if m[0] in 'aeiou' else 'a'} {m} tower" for m in modalities)


def check_target(target: str, base: Encoder) -> None:
    """Refuse a target the base cannot serve, naming the tower it lacks."""
    if target not in TARGETS:
        raise BadData(
            f"--target with --model must be one of towers, {', '.join(TARGETS)}, not {target!r}"
        )
    missing = [m for m in NEEDS[target] if m not in base.modalities]
    if missing:
        raise BadData(
            f"the {target} part needs a base with {towers(missing, 'and')}; "
            f"'{base.name}' embeds {', '.join(sorted(base.modalities))}"
        )


def cached(run: Path, base_fp: dict, what: str, key: str, compute: Callable[[], np.ndarray]):
    """`compute()` once per base and inputs: kept as RUN/cache/<what>-<hash>.npy."""
    h = hashlib.sha256(f"{base_fp['digest']}|{what}|{key}".encode()).hexdigest()[:20]
    path = run / "cache" / f"{what}-{h}.npy"
    if path.is_file():
        return np.load(path)
    vecs = np.asarray(compute(), np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path.with_suffix(".tmp.npy"), vecs)
    path.with_suffix(".tmp.npy").replace(path)
    return vecs


def captioned(pairs: Pairs, target: str) -> list[str]:
    """Every caption, or BadData naming how many inputs have none."""
    lacking = sum(c is None or not c.strip() for c in pairs.captions)
    if lacking:
        who = "fine-tuning the towers" if target == "towers" else f"the {target} part"
        raise BadData(
            f"{pairs.source}: {lacking} of {len(pairs.captions)} inputs have no caption; "
            f"{who} trains on captioned pairs (a same-stem .txt, or --text-column)"
        )
    return [c.strip() for c in pairs.captions]


def install(md: ModelDir, kind: str, files: Path, base_fp: dict, facts: dict) -> Path:
    """Copy the run's part files into the directory and stamp it; returns the part's folder."""
    dest = md.path / md.parts.get(kind, FOLDERS[kind])
    dest.mkdir(parents=True, exist_ok=True)
    for f in files.iterdir():
        if f.is_file():
            shutil.copy2(f, dest / f.name)
    facts = {**facts, "trained": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    install_part(md, kind, part_record(md.base, base_fp, **facts))
    return dest
