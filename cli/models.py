"""`jointspace models`: what can be loaded (open_clip architectures, transformers families, local
checkpoints)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cli.common import friendly, out


@friendly
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the architectures and local checkpoints jointspace can load."""
    from encoders.hf import FAMILIES
    from encoders.registry import local_checkpoints, models_dirs, open_clip_models

    arches = open_clip_models()
    local = local_checkpoints()
    if as_json:
        data = {"open_clip": arches, "hf_families": sorted(FAMILIES), "local": local}
        print(json.dumps(data, indent=2))
        return
    out.print(
        "[bold]open_clip[/bold] architectures: open_clip:ARCH@TAG (downloads where the hub is "
        "reachable) or open_clip:ARCH@/path/to/checkpoint.pt"
    )
    for arch, tags in arches.items():
        out.print(
            f"  {arch}: {', '.join(tags) if tags else '(checkpoint file only)'}", markup=False
        )
    out.print(
        f"[bold]transformers[/bold] families (hf:HUB_ID_OR_DIR): {', '.join(sorted(FAMILIES))}"
    )
    where = ", ".join(str(d) for d in models_dirs()) or "set JOINTSPACE_MODELS_DIR"
    out.print(f"[bold]local checkpoints[/bold] ({where}):", markup=True, highlight=False)
    for spec in local or ["(none)"]:
        out.print(f"  {spec}", markup=False, highlight=False)
