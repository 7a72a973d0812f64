"""`jointspace caption`: a sentence for each image or audio file, from the model's captioner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cli.common import friendly, out
from encoders import decode_audio, decode_image, load_encoder
from encoders.audio import sniff_audio
from encoders.base import AUDIO
from encoders.errors import InputError
from runtime.limits import Limits


@friendly
def caption(
    files: Annotated[list[Path], typer.Argument(help="Image or audio files.")],
    model: Annotated[str, typer.Option(help="A model with a captioner.")] = "house",
    max_tokens: Annotated[int, typer.Option(min=1, max=256)] = 30,
    beams: Annotated[int, typer.Option(min=1, max=16, help="1: greedy decoding.")] = 1,
    device: Annotated[str | None, typer.Option(help="cpu, cuda (default: auto).")] = None,
) -> None:
    """Print one JSON line per file: {"file", "caption"}, in the order given."""
    from generation.captioner import load_captioner, require_captioner

    kinds = [_kind(f) for f in files]  # every file checked before the models load
    enc = load_encoder(model, device=device)
    folder = require_captioner(enc)
    if "audio" in kinds:
        enc.require(AUDIO)
    limits = Limits.defaults()
    images = [decode_image(f, max_pixels=limits.max_pixels)
              for f, k in zip(files, kinds, strict=True) if k == "image"]  # fmt: skip
    clips = [decode_audio(f, enc.audio_rate, limits=limits.audio, name=str(f))
             for f, k in zip(files, kinds, strict=True) if k == "audio"]  # fmt: skip
    vectors = {"image": iter(enc.embed_images(images)) if images else iter(()),
               "audio": iter(enc.embed_audio(clips)) if clips else iter(())}  # fmt: skip
    ordered = [next(vectors[k]) for k in kinds]
    captions = load_captioner(folder).caption(ordered, max_tokens=max_tokens, beams=beams)
    for f, text in zip(files, captions, strict=True):
        out.print(
            json.dumps({"file": str(f), "caption": text}),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def _kind(path: Path) -> str:
    try:
        head = path.open("rb").read(16)
    except OSError as e:
        raise InputError(f"{path}: {e.strerror or e}") from None
    return "audio" if sniff_audio(head) else "image"
