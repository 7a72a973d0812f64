"""Storage faults in the index layer: a full disk (SQLite's max_page_count makes the file full on
any filesystem), the free-space floor, snapshots that fail without leaving partial files, and
failing I/O (read, write and fsync errors injected with libfiu's fiu-run)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from index import Catalog, StorageFull
from index import space as space_mod
from index.space import parse_floor


def vecs(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def fill_up(col) -> None:
    """Cap the collection's SQLite file at its current size plus one page."""
    pages = col.store._w.execute("PRAGMA page_count").fetchone()[0]
    col.store._w.execute(f"PRAGMA max_page_count={pages + 1}")


def test_a_full_disk_refuses_the_write_whole_and_writes_resume(tmp_path):
    cat = Catalog(tmp_path)
    col = cat.create("c", dim=64)
    col.upsert(["a"], vecs(1))
    fill_up(col)
    with pytest.raises(StorageFull) as e:
        col.upsert([f"x{i}" for i in range(500)], vecs(500, seed=1))
    assert e.value.reason == "full"
    assert str(e.value).startswith(f"the write failed: the data directory {tmp_path} is full (")
    assert str(e.value).endswith("free); nothing of it was applied")
    assert col.count == 1 and col.get(["x0"]) == [None]  # all or nothing
    assert not col.store._w.in_transaction  # the failed transaction is gone, no second error
    col.store._w.execute("PRAGMA max_page_count=1073741823")  # space again: no restart needed
    col.upsert(["b"], vecs(1, seed=2))
    assert col.count == 2
    cat.close()
    reopened = Catalog(tmp_path).get("c")
    assert reopened.count == 2 and reopened.get(["x0"]) == [None]


def test_the_floor_refuses_upserts_and_creates_but_not_deletes(tmp_path, monkeypatch):
    cat = Catalog(tmp_path, min_free="64MiB")
    col = cat.create("c", dim=64)
    col.upsert(["a", "b"], vecs(2))
    monkeypatch.setattr(space_mod, "disk_usage", lambda _: (10 * 2**20, 100 * 2**30))
    with pytest.raises(StorageFull) as e:
        col.upsert(["c"], vecs(1))
    assert e.value.reason == "floor"
    assert str(e.value) == (f"writing to collection 'c' refused: the data directory {tmp_path} "
                            "has 10.0 MiB free, below the 64.0 MiB kept free for recovery")  # fmt: skip
    with pytest.raises(StorageFull):
        cat.create("d", dim=64)
    assert col.delete(["a"]) == 1  # deletes and drops make room, so they are not held back
    monkeypatch.setattr(space_mod, "disk_usage", lambda _: (65 * 2**20, 100 * 2**30))
    col.upsert(["c"], vecs(1))
    assert col.count == 2
    cat.close()


@pytest.mark.parametrize(("text", "want"), [
    ("268435456", (268435456, 0.0)), ("256MiB", (256 * 2**20, 0.0)), ("1.5g", (int(1.5 * 2**30), 0.0)),
    ("5%", (0, 0.05)), (0, (0, 0.0)),
])  # fmt: skip
def test_parse_floor(text, want):
    assert parse_floor(text) == want


def test_parse_floor_refuses_nonsense():
    with pytest.raises(ValueError, match="is not a size"):
        parse_floor("lots")
    with pytest.raises(ValueError, match="at most 100%"):
        parse_floor("120%")


def test_a_failed_shutdown_snapshot_leaves_no_partial_files_and_the_log_covers(
    tmp_path, monkeypatch, caplog
):
    import faiss

    cat = Catalog(tmp_path)
    col = cat.create("c", dim=64)
    col.upsert(["a", "b"], vecs(2))
    col.snapshot()
    before = sorted(p.name for p in col.snapshot_dir.iterdir())
    col.upsert(["c"], vecs(1, seed=3))

    def no_space(*_):
        raise RuntimeError("Error in faiss::FileIOWriter: write error: No space left on device")

    monkeypatch.setattr(faiss, "write_index", no_space)
    with caplog.at_level(logging.ERROR, logger="jointspace.index"):
        cat.close()  # does not raise
    assert any("shutdown snapshot failed, the log replay will cover it" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    assert sorted(p.name for p in col.snapshot_dir.iterdir()) == before  # previous kept, no tmp
    monkeypatch.undo()
    again = Catalog(tmp_path).get("c")
    assert again.count == 3 and again.get(["c"])[0] is not None


def test_creating_on_a_full_disk_is_storage_full_and_leaves_nothing(tmp_path, monkeypatch):
    cat = Catalog(tmp_path)

    def full(*_a, **_k):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr("index.catalog.ItemStore", full)
    with pytest.raises(StorageFull) as e:
        cat.create("c", dim=8)
    assert str(e.value).startswith(
        f"creating collection 'c' failed: the data directory {tmp_path} is full"
    )
    assert cat.names() == [] and [p.name for p in tmp_path.iterdir()] == [".lock"]


FIU = shutil.which("fiu-run")
needs_fiu = pytest.mark.skipif(FIU is None, reason="fiu-run is missing (Debian package fiu-utils)")
CHILD = Path(__file__).with_name("fiu_child.py")
ROOT = Path(__file__).resolve().parents[2]


def run_under_faults(data: Path, mode: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        [FIU, "-x", sys.executable, str(CHILD), str(data), mode],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def reopened(data: Path):
    cat = Catalog(data, auto_maintain=False)
    return cat, cat.get("c")


@needs_fiu
@pytest.mark.parametrize(
    ("mode", "error"), [("sync", "SQLITE_IOERR_FSYNC"), ("write", "SQLITE_IOERR_WRITE")]
)
def test_an_io_error_refuses_the_write_and_turns_the_collection_read_only(tmp_path, mode, error):
    """Under libfiu, one write meets EIO (a failed fsync, or failed writes): it is refused, and
    so is every write after it although the disk is healthy again (no retrying and pretending),
    while reads go on; a restart recovers the collection from its log with every acknowledged
    write and nothing refused, and takes writes again."""
    from tests.index.fiu_child import vector

    out = run_under_faults(tmp_path, mode)
    why = (
        f"collection 'c' is read-only after an I/O error in {tmp_path / 'c'} ({error}: disk I/O "
        "error): the write was not acknowledged; restart the service to recover the collection "
        "from its log, then repeat the write"
    )
    assert out == {
        "failed": f"refused: {why}", "after": f"refused: {why}", "delete": f"refused: {why}",
        "search": "a5", "get": "a6", "failures": {"c": why},
    }  # fmt: skip
    cat, col = reopened(tmp_path)
    assert (col.count, col.recovery_errors, cat.failures()) == (20, [], {})
    assert col.get(["b0", "c0"]) == [None, None]
    for i in range(20):
        np.testing.assert_allclose(
            col.get([f"a{i}"])[0].vector, unit(vector(f"a{i}"))[0], atol=1e-6
        )
    col.upsert(["d0"], vector("d0"))
    assert col.count == 21
    cat.close()


@needs_fiu
def test_random_fsync_failures_lose_nothing_acknowledged(tmp_path):
    from tests.index.fiu_child import vector

    out = run_under_faults(tmp_path, "random")
    puts, later = out["puts"], out["later"]
    first = next((i for i, p in enumerate(puts) if p != "ok"), None)
    assert first is not None, "no fsync failed: the fault injection did not run"
    assert all(p.startswith("refused: ") for p in puts[first:] + later)  # read-only from then on
    cat, col = reopened(tmp_path)
    assert col.count == 20 + first
    for i in range(first):
        np.testing.assert_allclose(
            col.get([f"r{i}"])[0].vector, unit(vector(f"r{i}"))[0], atol=1e-6
        )
    cat.close()


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
