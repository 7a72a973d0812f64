"""Crash safety in the spirit of Qdrant's crasher: a writer is killed with SIGKILL at random
moments (snapshots included), the collection is reopened, and invariants are checked every time:
no acknowledged write lost, no acknowledged delete present, no duplicate, no phantom."""

from __future__ import annotations

import importlib.util
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from index import Catalog

CHILD = Path(__file__).with_name("crash_child.py")
KILLS = int(os.environ.get("JOINTSPACE_CRASH_KILLS", "24"))
BATCH = 25


def _load_child():
    """The child module, loaded from its file once (it is a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("crash_child", CHILD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


vector = _load_child().vector


def apply(state: dict, op: str, run: int, b: int) -> None:
    for j in range(BATCH):
        i = f"r{run}-{b * BATCH + j}"
        if op == "U1":
            state[i] = 1
        elif op == "U2":
            state[i] = 2
        elif op == "D":
            state.pop(i, None)


def allowed_states(logs: list[Path]) -> tuple[dict, dict]:
    """Per id: the state after every acknowledged op, and the alternative if the last attempted
    op of its run was cut off (it may or may not have happened)."""
    sure: dict[str, int] = {}
    maybe: dict[str, int | None] = {}
    for run, log in enumerate(logs):
        lines = [ln.split() for ln in log.read_text().splitlines() if ln.strip()]
        pending = None
        for parts in lines:
            if parts[0] == "A":
                pending = parts[1:]
            elif parts[0] == "K":
                assert parts[1:] == pending
                if parts[1] != "S":
                    apply(sure, parts[1], run, int(parts[2]))
                pending = None
        if pending and pending[0] != "S":
            alt = dict(sure)
            apply(alt, pending[0], run, int(pending[1]))
            for j in range(BATCH):
                i = f"r{run}-{int(pending[1]) * BATCH + j}"
                maybe[i] = alt.get(i)
    return sure, maybe


def check_invariants(root: Path, logs: list[Path], rng: random.Random) -> int:
    sure, maybe = allowed_states(logs)
    cat = Catalog(root, auto_maintain=False)
    col = cat.get("crash")
    try:
        db = sqlite3.connect(root / "crash" / "items.sqlite")
        ids = [r[0] for r in db.execute("SELECT id FROM items")]
        db.close()
        assert len(ids) == len(set(ids)), "duplicate ids"
        present = set(ids)
        assert col.count == len(present)
        assert col._ann.ntotal - len(col._ann.dead) == len(present), "index and store disagree"
        for i in set(sure) | set(maybe) | present:
            options = set()
            if i in maybe:
                options.add(maybe[i])
            options.add(sure.get(i))
            if i not in sure and i not in maybe:
                raise AssertionError(f"phantom id {i}")
            item = col.get([i])[0]
            got = None if item is None else item.metadata["v"]
            assert got in options, f"{i}: state {got}, allowed {options}"
            if item is not None:
                np.testing.assert_array_equal(item.vector, vector(i, got))
        for i in rng.sample(sorted(present), min(20, len(present))):
            hit = col.search(col.get([i])[0].vector, k=1)[0][0]
            assert hit.id == i
        return len(present)
    finally:
        cat.close()


@pytest.mark.slow
def test_sigkill_at_random_moments(tmp_path):
    rng = random.Random(1234)
    root = tmp_path / "data"
    logs: list[Path] = []
    in_snapshot = 0
    for run in range(KILLS):
        log = tmp_path / f"run{run}.log"
        log.touch()
        logs.append(log)
        child = subprocess.Popen(
            [sys.executable, str(CHILD), str(root), str(run), str(log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.time() + 60
        while not log.read_text().startswith("R ") and time.time() < deadline:
            assert child.poll() is None, child.stderr.read().decode()
            time.sleep(0.01)
        time.sleep(rng.uniform(0.05, 0.6))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stderr.close()
        last = log.read_text().splitlines()[-1].split()
        in_snapshot += last[:2] == ["A", "S"]
        check_invariants(root, logs, rng)
    n = check_invariants(root, logs, rng)
    assert n > 0
    print(f"{KILLS} kills, {in_snapshot} during a snapshot, {n} items at the end")
