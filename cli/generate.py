"""`jointspace generate`: draw pictures of a prompt or an image (optionally moved by a modification
such as "in blue instead of red") with the model's image decoder, and write them as PNG files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from PIL import Image

from cli.common import fail, friendly, out
from encoders import decode_image, load_encoder
from encoders.errors import InputError
from generation.decoder import DEFAULT_GUIDANCE, MODIFICATION_WEIGHT
from runtime.limits import Limits


@friendly
def generate(
    prompt: Annotated[str | None, typer.Argument(help="What to draw: 'a blue sandal'.")] = None,
    output: Annotated[
        Path, typer.Option("-o", "--out", help="PNG file (with -n over 1: NAME-1.png, ...).")
    ] = Path("generated.png"),
    image: Annotated[Path | None, typer.Option(help="Draw this image's vector instead.")] = None,
    modification: Annotated[
        str | None, typer.Option(help='A phrase such as "in blue instead of red".')
    ] = None,
    n: Annotated[int, typer.Option("-n", min=1, max=64, help="Pictures to draw.")] = 1,
    steps: Annotated[int, typer.Option(min=1, max=1000, help="DDIM steps.")] = 25,
    guidance: Annotated[
        float, typer.Option(min=0.0, max=20.0, help="1: no guidance.")
    ] = DEFAULT_GUIDANCE,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    model: Annotated[str, typer.Option(help="A model with an image decoder.")] = "house",
    device: Annotated[str | None, typer.Option(help="cpu, cuda (default: auto).")] = None,
) -> None:
    """Print one JSON line per picture written: {"file", "seed"}."""
    from fusion import compose, parse_modification
    from generation.decoder import load_decoder, require_decoder, sample
    from generation.prior import has_prior, image_side, load_prior

    if (prompt is None) == (image is None):
        fail(ValueError("give a prompt or --image (one of the two)"))
    if output.suffix.lower() != ".png":
        fail(ValueError(f"--out must name a .png file, not {output.name}"))
    enc = load_encoder(model, device=device)
    folder = require_decoder(enc)
    prior = load_prior(folder) if has_prior(folder) else None

    if image is not None:
        v = enc.embed_images([decode_image(image, max_pixels=Limits.defaults().max_pixels)])[0]
    else:
        v = image_side(prior, enc.embed_text([prompt]))[0]
    if modification:
        terms = parse_modification(modification, weight=MODIFICATION_WEIGHT)
        if not terms:
            raise InputError("the modification has no terms")
        tv = image_side(prior, enc.embed_text([t.text for t in terms]))
        try:
            v = compose(v, tv, [t.weight for t in terms])
        except ValueError as e:
            raise InputError(str(e)) from None
    pixels = sample(load_decoder(folder), np.repeat(v[None], n, 0), steps, guidance, seed)
    output.parent.mkdir(parents=True, exist_ok=True)
    for i, px in enumerate(pixels, 1):
        path = output if n == 1 else output.with_name(f"{output.stem}-{i}.png")
        Image.fromarray(px).save(path)
        out.print(json.dumps({"file": str(path), "seed": seed}), markup=False, highlight=False,
                  soft_wrap=True)  # fmt: skip
