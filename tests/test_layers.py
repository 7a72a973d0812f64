"""The one-way layering of the packages: each package, imported alone in a fresh interpreter,
loads none of the layers above it (and the library layers load no web framework)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# package -> project packages and third-party modules it must never load
FORBIDDEN = {
    "encoders": {"index", "fusion", "training", "service", "cli", "faiss", "fastapi", "uvicorn"},
    "index": {"encoders", "fusion", "training", "service", "cli", "torch", "fastapi", "uvicorn"},
    "fusion": {"index", "training", "service", "cli", "faiss", "fastapi", "uvicorn"},
    "generation": {"index", "fusion", "training", "service", "cli", "faiss", "fastapi", "uvicorn"},
    "training": {"index", "service", "cli", "faiss", "fastapi", "uvicorn"},
    "jobs": {"fusion", "training", "service", "cli", "fastapi", "uvicorn", "typer", "ray"},
    "runtime": {"service", "cli", "training", "fastapi", "starlette", "uvicorn", "typer"},
    "service": {"cli", "typer"},
}
PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def loaded_by(modules: list[str]) -> set[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, *modules], capture_output=True, text=True,
                         check=True, env={"HF_HUB_OFFLINE": "1", "PATH": ""})  # fmt: skip
    return set(json.loads(out.stdout))


def submodules(package: str) -> list[str]:
    import pkgutil

    pkg = __import__(package)
    found = [package]
    for info in pkgutil.walk_packages(pkg.__path__, package + "."):
        found.append(info.name)
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_no_layer_above_it(package):
    assert loaded_by(submodules(package)) & FORBIDDEN[package] == set()


def test_the_probe_sees_a_violation():
    """The check can fail: the CLI does load the service and typer."""
    assert {"service", "typer"} <= loaded_by(["cli.main"])
