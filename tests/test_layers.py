"""The one-way layering of the packages: each package, imported alone in a fresh interpreter,
loads none of the layers above it (and the library layers load no web framework); and no two
project modules import each other, directly or through others (imports inside functions count)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

# what sits above the library layers (the application packages and the web stack): none of the
# library packages may load it
APP = {"training", "jobs", "runtime", "service", "cli", "fastapi", "uvicorn"}
# package -> project packages and third-party modules it must never load
FORBIDDEN = {
    "encoders": APP | {"index", "fusion", "housedata", "faiss"},
    "index": APP | {"encoders", "fusion", "housedata", "torch"},
    "fusion": APP | {"index", "faiss"},
    "generation": APP | {"index", "fusion", "faiss"},
    "housedata": APP | {"index", "fusion", "generation", "faiss"},
    "training": APP - {"training"} | {"index", "faiss"},
    "jobs": APP - {"jobs"} | {"typer", "ray"},
    "runtime": {"service", "cli", "training", "fastapi", "starlette", "uvicorn", "typer"},
    "service": {"cli", "typer", "training"},
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


# -- no circles between modules ----------------------------------------------------------------
ROOT = Path(__file__).resolve().parent.parent


def project_packages() -> list[str]:
    """The top-level packages the project installs (pyproject's packages.find include)."""
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = conf["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted({p.rstrip("*").rstrip(".") for p in include if (ROOT / p.rstrip("*")).is_dir()})


def module_files() -> dict[str, Path]:
    """Module name -> file, for every .py of the project packages (a package is its __init__)."""
    out = {}
    for pkg in project_packages():
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def imported_names(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module name an import statement of `source` names (inside functions too; not in
    `if TYPE_CHECKING:` blocks): `import a.b` names a.b, `from a import b` names a and a.b."""
    base = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            pkg = node.module or ""
            if node.level:
                anchor = base.split(".")[: len(base.split(".")) - node.level + 1]
                pkg = ".".join([*anchor, *([pkg] if pkg else [])])
            found.add(pkg)
            found.update(f"{pkg}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


def import_graph() -> dict[str, set[str]]:
    """Project module -> the project modules it imports (each name resolved to the longest
    project module it starts with)."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        targets = set()
        for imported in imported_names(path.read_text(), name, is_package):
            parts = imported.split(".")
            while parts and ".".join(parts) not in files:
                parts.pop()
            if parts and ".".join(parts) != name:
                targets.add(".".join(parts))
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of the graph as [a, b, ..., a], or None when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := walk(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := walk(start)):
            return cycle
    return None


def test_no_two_modules_import_each_other():
    cycle = find_cycle(import_graph())
    assert cycle is None, "modules import each other: " + " -> ".join(cycle)


def test_the_cycle_check_sees_a_circle():
    """The check can fail: a circle through three modules is found, a chain is not; imports
    inside functions count and `if TYPE_CHECKING:` blocks do not."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from p.hidden import X\n"
        "def f():\n    from p import late\n    import p.deep.mod\n"
        "from . import sibling\n"
    )
    names = imported_names(source, "p.here")
    assert {"p.late", "p.deep.mod", "p.sibling"} <= names
    assert not any("hidden" in n for n in names)
