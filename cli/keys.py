"""`jointspace keys new`: make an API key for the keys file. The key is printed once; only its
SHA-256 goes into the file's JSON entry."""

from __future__ import annotations

import json
import re
import secrets
from typing import Annotated

import typer

from cli.common import err, fail
from service.access import ROLES

app = typer.Typer(no_args_is_help=True, help="Make keys for JOINTSPACE_KEYS_FILE.")


@app.command("new")
def new(
    name: Annotated[str, typer.Option(help="A name for the key: audit log and metrics show it.")],
    role: Annotated[str, typer.Option(help="read, write or admin.")] = "read",
    collection: Annotated[
        list[str] | None,
        typer.Option(help="A collection it may use (repeatable; default: all)."),
    ] = None,
    rate: Annotated[float | None, typer.Option(min=0.001, help="Requests per second.")] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(help="A served model it may use (repeatable; default: all)."),
    ] = None,
) -> None:
    """Print a new key (once) and the entry to add to the keys file's "keys" list."""
    import hashlib

    if role not in ROLES:
        fail(f"unknown role '{role}' (roles: {', '.join(ROLES)})")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        fail(f"bad key name '{name}': use 1-64 letters, digits, '_', '-' or '.'")
    key = "js_" + secrets.token_urlsafe(32)
    entry = {"name": name, "sha256": hashlib.sha256(key.encode()).hexdigest(), "role": role,
             "collections": list(collection or ["*"])}  # fmt: skip
    if rate is not None:
        entry["rate"] = rate
    if model:
        entry["models"] = list(model)
    print(key)
    err.print("the key above is shown only this once; add this entry to the keys file:",
              markup=False)  # fmt: skip
    print(json.dumps(entry))
