"""Storage faults through the API: a full disk and the free-space floor answer 507 in the error
shape, reads keep working, /health says degraded (still 200) with ready false, writes resume once
there is space (no restart), and nothing acknowledged is lost."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess

import numpy as np
import pytest
from fastapi.testclient import TestClient

from index import space as space_mod
from runtime.settings import Settings
from service.app import create_app


def items(prefix: str, n: int, dim: int = 24, seed: int = 0) -> list[dict]:
    v = np.random.default_rng(seed).normal(size=(n, dim))
    return [{"id": f"{prefix}{i}", "vector": x.tolist()} for i, x in enumerate(v)]


def err(r, status: int, type_: str) -> str:
    assert r.status_code == status, r.text
    assert (r.json()["error"]["type"], r.json()["error"]["code"]) == (type_, status)
    return r.json()["error"]["message"]


@pytest.fixture
def app_at(tiny_clip_dir):
    def make(data, **kw) -> TestClient:
        s = Settings.load({}, model=f"hf:{tiny_clip_dir}", data_dir=data, demo=False, **kw)
        return TestClient(create_app(s))

    return make


def test_the_floor_refuses_writes_with_507_and_health_degrades(app_at, tmp_path, monkeypatch):
    with app_at(tmp_path, min_free_bytes="64MiB") as c:
        assert c.post("/collections", json={"name": "c"}).status_code == 201
        assert c.put("/collections/c/items", json={"items": items("a", 3)}).status_code == 200
        monkeypatch.setattr(space_mod, "disk_usage", lambda _: (10 * 2**20, 100 * 2**30))
        msg = err(c.put("/collections/c/items", json={"items": items("b", 2)}), 507,
                  "insufficient_storage")  # fmt: skip
        assert msg == (f"writing to collection 'c' refused: the data directory "
                       f"{tmp_path / 'collections'} has 10.0 MiB free, below the 64.0 MiB kept "
                       "free for recovery")  # fmt: skip
        err(c.post("/collections", json={"name": "d"}), 507, "insufficient_storage")
        health = c.get("/health")
        assert health.status_code == 200
        h = health.json()
        assert (h["status"], h["ready"], h["free_bytes"]) == ("degraded", False, 10 * 2**20)
        assert h["reason"] == ("the data directory has 10.0 MiB free, below its floor of 64.0 MiB: "
                               "writes are refused until space is freed")  # fmt: skip
        hits = c.post(
            "/collections/c/search", json={"query": {"vector": items("q", 1)[0]["vector"]}}
        )
        assert hits.status_code == 200 and len(hits.json()["hits"]) == 3  # reads still work
        assert c.delete("/collections/c/items/a0").status_code == 200  # deletes make room
        metrics = c.get("/metrics").text
        assert 'jointspace_writes_refused_total{reason="floor"} 2.0' in metrics
        assert "jointspace_data_free_bytes 1.048576e+07" in metrics
        monkeypatch.setattr(space_mod, "disk_usage", lambda _: (80 * 2**20, 100 * 2**30))
        assert c.put("/collections/c/items", json={"items": items("b", 2)}).status_code == 200
        assert c.get("/health").json()["status"] == "ok"


def test_a_full_disk_is_507_all_or_nothing_and_resumes(app_at, tmp_path):
    with app_at(tmp_path, min_free_bytes=0) as c:
        c.post("/collections", json={"name": "c"})
        assert c.put("/collections/c/items", json={"items": items("a", 3)}).status_code == 200
        store = c.app.state.runtime.catalog.get("c").store
        pages = store._w.execute("PRAGMA page_count").fetchone()[0]
        store._w.execute(f"PRAGMA max_page_count={pages + 1}")  # the file cannot grow: full
        msg = err(c.put("/collections/c/items", json={"items": items("b", 200, seed=1)}), 507,
                  "insufficient_storage")  # fmt: skip
        assert msg.startswith(f"the write failed: the data directory {tmp_path / 'collections'} "
                              "is full (")  # fmt: skip
        assert msg.endswith("free); nothing of it was applied")
        assert c.get("/collections/c").json()["count"] == 3
        store._w.execute("PRAGMA max_page_count=1073741823")
        assert (
            c.put("/collections/c/items", json={"items": items("c", 2, seed=2)}).status_code == 200
        )
    with app_at(tmp_path, min_free_bytes=0) as c:  # after a restart: acknowledged only
        assert c.get("/collections/c").json()["count"] == 5
        assert c.get("/collections/c/items/b0").status_code == 404
        assert c.get("/collections/c/items/c1").status_code == 200


class _FailingCommit:
    """The store's write connection with a disk that fails the next COMMIT's fsync (the real
    thing runs under libfiu in tests/index/test_storage.py)."""

    def __init__(self, conn) -> None:
        self.conn = conn

    def cursor(self):
        conn = self.conn

        class Cursor:
            def execute(self, sql, *args):
                if sql == "COMMIT":
                    e = sqlite3.OperationalError("disk I/O error")
                    e.sqlite_errorcode, e.sqlite_errorname = 1034, "SQLITE_IOERR_FSYNC"
                    raise e
                return cur.execute(sql, *args)

            def __getattr__(self, name):
                return getattr(cur, name)

        cur = conn.cursor()
        return Cursor()

    def __getattr__(self, name):
        return getattr(self.conn, name)


def test_an_io_error_is_503_and_read_only_until_a_restart(app_at, tmp_path):
    with app_at(tmp_path, min_free_bytes=0) as c:
        c.post("/collections", json={"name": "c"})
        assert c.put("/collections/c/items", json={"items": items("a", 3)}).status_code == 200
        store = c.app.state.runtime.catalog.get("c").store
        healthy, store._w = store._w, _FailingCommit(store._w)
        why = (f"collection 'c' is read-only after an I/O error in {tmp_path / 'collections' / 'c'} "
               "(SQLITE_IOERR_FSYNC: disk I/O error): the write was not acknowledged; restart the "
               "service to recover the collection from its log, then repeat the write")  # fmt: skip
        assert err(c.put("/collections/c/items", json={"items": items("b", 2)}), 503,
                   "storage_error") == why  # fmt: skip
        store._w = healthy  # the disk answers again: the collection stays read-only
        assert err(c.put("/collections/c/items", json={"items": items("c", 1)}), 503,
                   "storage_error") == why  # fmt: skip
        assert err(c.delete("/collections/c/items/a0"), 503, "storage_error") == why
        assert c.get("/collections/c/items/a1").status_code == 200  # reads work
        q = {"query": {"vector": items("a", 3)[2]["vector"]}, "k": 1}
        assert c.post("/collections/c/search", json=q).json()["hits"][0]["id"] == "a2"
        h = c.get("/health")
        assert h.status_code == 200
        assert (h.json()["status"], h.json()["ready"], h.json()["reason"]) == (
            "degraded",
            False,
            why,
        )
        assert 'jointspace_writes_refused_total{reason="io_error"} 3.0' in c.get("/metrics").text
        assert c.post("/collections", json={"name": "d"}).status_code == 201  # others still write
    with app_at(tmp_path, min_free_bytes=0) as c:  # the restart recovers it from its log
        assert c.get("/health").json()["status"] == "ok"
        assert c.get("/collections/c").json()["count"] == 3
        assert c.get("/collections/c/items/b0").status_code == 404
        assert c.put("/collections/c/items", json={"items": items("c", 1)}).status_code == 200


def _mount_tmpfs(path, size: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True)  # fmt: skip
    return done.returncode == 0


def test_a_real_full_filesystem(app_at, tmp_path):
    """A small tmpfs as the data directory, filled by puts: 507 (never 500), reads keep working,
    writes resume when space is freed, and every acknowledged item survives a restart."""
    mnt = tmp_path / "small"
    if not _mount_tmpfs(mnt, "6m"):
        pytest.skip("mounting a tmpfs needs root and mount permission")
    try:
        filler = mnt / "filler"
        filler.write_bytes(b"\0" * (2 * 2**20))  # freed later, to make room again
        acked, codes = [], set()
        with app_at(mnt / "data", min_free_bytes=0) as c:
            c.post("/collections", json={"name": "c"})
            for k in range(200):
                batch = items(f"k{k}-", 50, seed=k)
                r = c.put("/collections/c/items", json={"items": batch})
                codes.add(r.status_code)
                if r.status_code == 200:
                    acked += [b["id"] for b in batch]
                else:
                    err(r, 507, "insufficient_storage")
                    break
            assert codes == {200, 507}
            assert c.get("/collections/c/items/" + acked[0]).status_code == 200
            filler.unlink()
            assert (
                c.put("/collections/c/items", json={"items": items("late", 5)}).status_code == 200
            )
            acked += [f"late{i}" for i in range(5)]
        with app_at(mnt / "data", min_free_bytes=0) as c:
            assert c.get("/collections/c").json()["count"] == len(acked)
            for item_id in acked[:: max(1, len(acked) // 50)]:
                assert c.get(f"/collections/c/items/{item_id}").status_code == 200
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
