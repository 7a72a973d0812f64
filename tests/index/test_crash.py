"""Crash safety in the spirit of Qdrant's crasher: a writer is killed with SIGKILL at random
moments (snapshots included), the collection is reopened, and invariants are checked every time:
no acknowledged write lost, no acknowledged delete present, no duplicate, no phantom; the keyword
index holds exactly one text per item, that item's current text (never an item without its text
or a text without its item); for float, int8 and binary collections."""

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


_child = _load_child()
vector, text = _child.vector, _child.text


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
        labels = {r[0] for r in db.execute("SELECT label FROM items")}
        text_rows = [r[0] for r in db.execute("SELECT rowid FROM texts")]
        db.close()
        assert len(ids) == len(set(ids)), "duplicate ids"
        assert sorted(text_rows) == sorted(labels), "keyword index and items disagree"
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
                if col.metric == "ip":
                    np.testing.assert_array_equal(item.vector, vector(i, got))
                else:  # (cosine: the unit vector renormalised in float64)
                    np.testing.assert_allclose(item.vector, vector(i, got), rtol=0, atol=1e-6)
                label = col.store.get([i])[i][0]
                want = f"{text(i, got)}\ntag{item.metadata['b']}"
                assert col.store.text_of([label]) == {label: want}
        for i in rng.sample(sorted(present), min(20, len(present))):
            hit = col.search(col.get([i])[0].vector, k=1)[0][0]
            assert hit.id == i
            assert col.keyword_search(f'"{i}"', k=1)[0].id == i
        return len(present)
    finally:
        cat.close()


@pytest.mark.slow
@pytest.mark.parametrize("quantization", ["none", "int8", "binary"])
def test_sigkill_at_random_moments(tmp_path, quantization):
    rng = random.Random(1234)
    root = tmp_path / "data"
    logs: list[Path] = []
    in_snapshot = 0
    kills = KILLS if quantization == "none" else max(4, KILLS // 3)
    for run in range(kills):
        log = tmp_path / f"run{run}.log"
        log.touch()
        logs.append(log)
        child = subprocess.Popen(
            [sys.executable, str(CHILD), str(root), str(run), str(log), quantization],
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
    assert col_kind(root) == quantization
    print(f"{kills} kills, {in_snapshot} during a snapshot, {n} items at the end")


def col_kind(root: Path) -> str:
    cat = Catalog(root, auto_maintain=False)
    try:
        return cat.get("crash").quantization
    finally:
        cat.close()


KILL_AT_TEXT = """
import os, signal, sys
import numpy as np
from index import Catalog
cat = Catalog(sys.argv[1], auto_maintain=False)
col = cat.create("c", 4, text_fields=["brand"])
col.upsert(["a"], np.eye(4, dtype=np.float32)[:1], [{"brand": "acme"}], texts=["red boot"])
def trace(sql):  # the item rows are in; die as the keyword index's row goes in
    if sql.lstrip().startswith("INSERT INTO texts"):
        os.kill(os.getpid(), signal.SIGKILL)
col.store._w.set_trace_callback(trace)
col.upsert(["b", "a"], np.eye(4, dtype=np.float32)[1:3], [{"brand": "zeta"}] * 2,
           texts=["blue shoe", "green hat"])
"""


def test_sigkill_between_an_item_and_its_text_loses_both(tmp_path):
    """Killed after the items' rows are written and before their text is: the transaction is
    one, so neither the new item nor the replaced item's new text exists after the restart."""
    root = tmp_path / "data"
    child = subprocess.run([sys.executable, "-c", KILL_AT_TEXT, str(root)], capture_output=True,
                           cwd=Path(__file__).resolve().parents[2],
                           env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})  # fmt: skip
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    cat = Catalog(root, auto_maintain=False)
    try:
        col = cat.get("c")
        assert [x and x.id for x in col.get(["a", "b"])] == ["a", None]
        assert [h.id for h in col.keyword_search("red acme", 5)] == ["a"]
        assert col.keyword_search("blue OR green OR zeta", 5) == []
        db = sqlite3.connect(root / "c" / "items.sqlite")
        assert db.execute("SELECT rowid, body FROM texts").fetchall() == [(1, "red boot\nacme")]
        db.close()
    finally:
        cat.close()
