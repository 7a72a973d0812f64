"""`jointspace model new|show|add`: model directories (a base towers spec plus trained parts)."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from cli.common import fail, friendly, out
from encoders.modeldir import attach, read_model_dir

app = typer.Typer(no_args_is_help=True, help="Model directories: a base model plus its parts.")


@app.command("new")
@friendly
def new(
    folder: Annotated[Path, typer.Argument(help="The directory to create.")],
    base: Annotated[str, typer.Option(help="The base towers spec, e.g. open_clip:ARCH@TAG.")],
) -> None:
    """Write a model directory with no parts; its base is loaded once to check the spec."""
    from encoders.fingerprint import fingerprint
    from encoders.modeldir import load_base, new_model_dir, resolve_base

    enc = load_base(resolve_base(base, folder.expanduser()))
    md = new_model_dir(folder, base)
    fp = fingerprint(enc)
    out.print(
        f"model directory {md.path}: base {base} ({enc.dim}-d, embeds "
        f"{', '.join(sorted(enc.modalities))}; fingerprint {fp['digest']}); serve it as "
        f"model:{md.path}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _figures(rec: dict, most: int = 6) -> str:
    """The first `most` held-out figures, and how many more `--json` shows."""
    figs = list((rec.get("figures") or {}).items())
    text = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in figs[:most])
    return text + (f" (+{len(figs) - most} more in --json)" if len(figs) > most else "")


@app.command("show")
@friendly
def show(
    folder: Annotated[Path, typer.Argument(help="The model directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The base, each part with its stamp and figures, and whether each stamp matches the base."""
    from encoders import ModelLoadError
    from encoders.fingerprint import fingerprint
    from encoders.modeldir import load_base, part_status, read_model_dir, retrain_command

    md = read_model_dir(folder)
    base_fp, problem = None, None
    try:
        base_fp = fingerprint(load_base(md.base_spec()))
    except ModelLoadError as e:
        problem = str(e)
    parts = part_status(md, base_fp)
    if as_json:
        print(
            json.dumps(
                {
                    "path": str(md.path),
                    "base": md.base,
                    "base_fingerprint": base_fp and base_fp["digest"],
                    "base_error": problem,
                    "parts": parts,
                },
                indent=2,
            )
        )
        return
    say = lambda s: out.print(s, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    say(f"model {md.path}")
    say(f"base: {md.base} ({'fingerprint ' + base_fp['digest'] if base_fp else problem})")
    tuned = md.towers_record()
    if tuned is not None:
        t = tuned.get("training", {})
        say(f"towers: fine-tuned from {tuned.get('from')} (origin {md.origin}) in mode "
            f"{t.get('mode')}, {t.get('steps')} steps on {t.get('data')}; digest "
            f"{tuned.get('digest')} [{md.towers}/]")  # fmt: skip
        after = (tuned.get("figures") or {}).get("after") or {}
        before = (tuned.get("figures") or {}).get("before") or {}
        for suite, figs in after.items():
            shown = [f"{k} {before.get(suite, {}).get(k, float('nan')):.3f} -> {v:.3f}"
                     for k, v in figs.items() if isinstance(v, float)
                     and not k.startswith("chance")][:4]  # fmt: skip
            if shown:
                say(f"  {suite}: {', '.join(shown)}")
    if not parts:
        say("parts: none (train one: jointspace train --target KIND --model DIR --data SRC)")
    for kind, p in parts.items():
        say(f"{kind}: {p['what']} [{p['folder']}/]")
        against = ("the towers before they were fine-tuned" if p.get("stale") == "towers"
                   else "another base")  # fmt: skip
        state = {
            True: "matches the base",
            False: f"STALE: trained against {against}; retrain: {retrain_command(kind, md.path)}",
            None: "not checked",
        }[p["matches"]]
        say(f"  trained against {p.get('base')} (fingerprint {p['base_fingerprint']}): {state}")
        facts = [
            f"{k} {p[k]}"
            for k in ("data", "steps", "seconds", "device", "trained", "installed")
            if p.get(k)
        ]
        say(f"  {'; '.join(facts) or 'no training record'}")
        if p.get("figures"):
            say(f"  held-out: {_figures(p)}")


@app.command("add")
@friendly
def add(
    folder: Annotated[Path, typer.Argument(help="The model directory.")],
    kind: Annotated[str, typer.Argument(help="audio, temporal, captioner, decoder or prior.")],
    source: Annotated[Path, typer.Argument(help="The folder of the trained part's files.")],
    data: Annotated[str, typer.Option(help="What the part was trained on.")] = "",
    steps: Annotated[int | None, typer.Option(min=0)] = None,
    seconds: Annotated[float | None, typer.Option(min=0)] = None,
) -> None:
    """Install a part trained against this directory's base (its files copied into DIR, stamped
    with the base's fingerprint now); refused when the part cannot be loaded beside the base."""
    from encoders.fingerprint import fingerprint
    from encoders.modeldir import FOLDERS, PART_KINDS, install_part, load_base, part_record

    if kind not in PART_KINDS:
        fail(f"unknown part '{kind}' (parts are {', '.join(PART_KINDS)})")
    md = read_model_dir(folder)
    enc = load_base(md.base_spec())
    src = source.expanduser().resolve()
    dest = (md.path / md.parts.get(kind, FOLDERS[kind])).resolve()
    if not src.is_dir():
        fail(f"{source} is not a folder")
    if src != dest:  # copied beside the destination first, so a refused part leaves DIR as it was
        staged = Path(tempfile.mkdtemp(dir=md.path, prefix=f".{kind}-"))
        shutil.copytree(src, staged, dirs_exist_ok=True)
        try:
            attach(enc, kind, staged)
        except Exception:
            shutil.rmtree(staged)
            raise
        shutil.copytree(staged, dest, dirs_exist_ok=True)
        shutil.rmtree(staged)
    else:
        attach(enc, kind, dest)
    figures = _held_out(dest / "eval.json")
    facts = {
        k: v
        for k, v in {"data": data, "steps": steps, "seconds": seconds, "figures": figures}.items()
        if v
    }
    facts["installed"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    install_part(md, kind, part_record(md.base, fingerprint(enc), device=str(enc.device), **facts))
    out.print(
        f"{kind} installed in {md.path} ({md.parts[kind]}/)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _held_out(path: Path) -> dict:
    """The figures of an eval.json beside the part (suite.figure -> value), or none."""
    try:
        suites = json.loads(path.read_text())["suites"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {
        f"{s}.{k}": v
        for s, figs in suites.items()
        for k, v in figs.items()
        if isinstance(v, int | float) and not k.startswith(("n_", "train_", "baseline", "chance"))
    }
