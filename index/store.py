"""One collection's SQLite file: the write-ahead log, the metadata store and the vectors of record.

SQLite runs in WAL mode with synchronous=FULL, so a write transaction returns only after its log
frames are fsynced: that commit is the acknowledgement. Every write bumps the collection's log
sequence number (lsn) and stamps the rows it touches; labels (FAISS ids) come from AUTOINCREMENT and
are never reused, so replaying "rows added after lsn S" and "labels removed after lsn S" onto a
snapshot taken at S is order-free and idempotent. The keyword index (an FTS5 table `texts`, rowid =
label) is written and deleted in the same transactions as the items it indexes, so a crash can
never leave an item without its text or a text without its item. Knows nothing of FAISS, torch or
HTTP.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.errors import CollectionError, KeywordQueryError, StorageFailed
from index.space import full_error, is_disk_full, is_io_error

SCHEMA = """
CREATE TABLE IF NOT EXISTS items(
    label  INTEGER PRIMARY KEY AUTOINCREMENT,
    id     TEXT NOT NULL UNIQUE,
    vector BLOB NOT NULL,
    meta   TEXT,
    lsn    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS items_lsn ON items(lsn);
CREATE TABLE IF NOT EXISTS tombstones(label INTEGER PRIMARY KEY, lsn INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS tombstones_lsn ON tombstones(lsn);
CREATE TABLE IF NOT EXISTS config(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS texts USING fts5(
    body, tokenize='porter unicode61 remove_diacritics 2'
);
"""
CHUNK = 900  # bound on SQL parameters per statement (SQLite's limit is 32766 on 3.32+)


@dataclass
class WriteResult:
    lsn: int
    added: np.ndarray  # labels written by this transaction, in input order
    removed: np.ndarray  # labels this transaction removed (replaced or deleted)


def _chunks(seq: Sequence, n: int = CHUNK) -> Iterator[Sequence]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


class ItemStore:
    def __init__(self, path: Path, config: dict | None = None) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._wlock = threading.Lock()
        self.failed: str | None = None  # why writes are refused after an I/O error, until reopened
        self._w = self._connect(synchronous="FULL")
        self._w.executescript(SCHEMA)
        if config is not None:
            with self._w:
                self._w.execute("BEGIN IMMEDIATE")
                for k, v in {**config, "lsn": 0}.items():
                    self._w.execute(
                        "INSERT OR IGNORE INTO config VALUES (?, ?)", (k, json.dumps(v))
                    )
        rows = self._w.execute("SELECT key, value FROM config").fetchall()
        self.config = {k: json.loads(v) for k, v in rows}
        self.lsn = int(self.config.pop("lsn", 0))

    def _connect(self, synchronous: str) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        # 16 KiB pages hold several 2 KiB vectors each (4 KiB pages waste half of every page);
        # it takes effect only when the file is created and is ignored afterwards.
        conn.execute("PRAGMA page_size=16384")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        return conn

    @property
    def _r(self) -> sqlite3.Connection:
        """A connection per reading thread: SQLite's WAL lets readers run beside the writer."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect(synchronous="FULL")
        return conn

    # -- writes: one transaction each, fsynced before returning --------------------------------
    @contextlib.contextmanager
    def _transaction(self) -> Iterator[tuple[sqlite3.Cursor, int]]:
        """A write transaction at the next lsn; committed (and fsynced) on leaving the block."""
        with self._wlock:
            if self.failed:
                raise StorageFailed(self.failed)
            cur = self._w.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
                lsn = self.lsn + 1
                yield cur, lsn
                cur.execute("INSERT OR REPLACE INTO config VALUES ('lsn', ?)", (str(lsn),))
                cur.execute("COMMIT")
            except BaseException as e:
                # A failed COMMIT may already have ended the transaction: roll back only what is
                # still open, so the first error is the one that reaches the caller.
                if self._w.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        cur.execute("ROLLBACK")
                if is_disk_full(e):
                    raise full_error(self.path.parent.parent, "the write") from e
                if is_io_error(e):
                    raise self._fail(e) from e
                raise
            self.lsn = lsn

    def _fail(self, e: BaseException) -> StorageFailed:
        """Turn read-only after an I/O error: SQLite would take the next write as if nothing had
        happened, but after a failed fsync the kernel may have dropped what it was writing."""
        name = getattr(e, "sqlite_errorname", None) or type(e).__name__
        self.failed = (
            f"collection '{self.config.get('name', self.path.parent.name)}' is read-only after "
            f"an I/O error in {self.path.parent} ({name}: {e}): the write was not acknowledged; "
            "restart the service to recover the collection from its log, then repeat the write"
        )
        return StorageFailed(self.failed)

    def upsert(
        self, ids: Sequence[str], vectors: np.ndarray, metas: Sequence[str | None],
        remove: Sequence[str] = (), texts: Sequence[str | None] | None = None,
    ) -> WriteResult:  # fmt: skip
        """Insert or replace `ids` and delete `remove` (ids not among them), in one transaction;
        `texts` (one per id, None for none) go into the keyword index in the same transaction."""
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        with self._transaction() as (cur, lsn):
            removed = self._remove(cur, [*ids, *remove], lsn)
            cur.executemany(
                "INSERT INTO items(id, vector, meta, lsn) VALUES (?, ?, ?, ?)",
                ((i, v.tobytes(), m, lsn) for i, v, m in zip(ids, vectors, metas, strict=True)),
            )
            got = dict(cur.execute("SELECT id, label FROM items WHERE lsn = ?", (lsn,)))
            if texts is not None:
                rows = ((got[i], t) for i, t in zip(ids, texts, strict=True) if t)
                cur.executemany("INSERT INTO texts(rowid, body) VALUES (?, ?)", rows)
        added = np.fromiter((got[i] for i in ids), dtype=np.int64, count=len(ids))
        return WriteResult(lsn, added, removed)

    def delete(self, ids: Sequence[str]) -> WriteResult:
        with self._transaction() as (cur, lsn):
            removed = self._remove(cur, ids, lsn)
        return WriteResult(lsn, np.zeros(0, np.int64), removed)

    def _remove(self, cur: sqlite3.Cursor, ids: Sequence[str], lsn: int) -> np.ndarray:
        labels: list[int] = []
        for chunk in _chunks(list(ids)):
            marks = ",".join("?" * len(chunk))
            labels += [
                r[0] for r in cur.execute(f"SELECT label FROM items WHERE id IN ({marks})", chunk)
            ]
        if labels:
            cur.executemany("DELETE FROM items WHERE label = ?", ((x,) for x in labels))
            cur.executemany("DELETE FROM texts WHERE rowid = ?", ((x,) for x in labels))
            cur.executemany("INSERT INTO tombstones VALUES (?, ?)", ((x, lsn) for x in labels))
        return np.array(labels, dtype=np.int64)

    def create_field_index(self, key: str) -> str:
        """An expression index on one metadata key, so filters on it need no full scan."""
        import hashlib

        from index.filters import field_index_sql

        name = "meta_" + hashlib.sha1(key.encode()).hexdigest()[:16]
        with self._wlock:
            self._w.execute(field_index_sql(key, name))
        return name

    def prune_tombstones(self, upto_lsn: int) -> None:
        """Forget removals every kept snapshot already reflects."""
        with self._wlock:
            self._w.execute("DELETE FROM tombstones WHERE lsn <= ?", (upto_lsn,))

    # -- reads ---------------------------------------------------------------------------------
    def count(self) -> int:
        return self._r.execute("SELECT count(*) FROM items").fetchone()[0]

    def ids(self) -> Iterator[str]:
        """Every item's id, from one read view (its own connection)."""
        conn = self._connect(synchronous="FULL")
        try:
            for (i,) in conn.execute("SELECT id FROM items"):
                yield i
        finally:
            conn.close()

    def get(self, ids: Sequence[str]) -> dict[str, tuple[int, np.ndarray, dict | None]]:
        out = {}
        for chunk in _chunks(list(ids)):
            marks = ",".join("?" * len(chunk))
            q = f"SELECT id, label, vector, meta FROM items WHERE id IN ({marks})"
            for i, label, blob, meta in self._r.execute(q, chunk):
                out[i] = (label, np.frombuffer(blob, dtype="<f4"), _meta(meta))
        return out

    def describe(self, labels: Sequence[int]) -> dict[int, tuple[str, dict | None]]:
        """id and metadata of each label still present."""
        out = {}
        for chunk in _chunks([int(x) for x in labels]):
            marks = ",".join("?" * len(chunk))
            q = f"SELECT label, id, meta FROM items WHERE label IN ({marks})"
            for label, i, meta in self._r.execute(q, chunk):
                out[label] = (i, _meta(meta))
        return out

    def vectors(self, labels: Sequence[int], dim: int) -> tuple[np.ndarray, np.ndarray]:
        """(labels found, their vectors), for exact scoring."""
        found, vecs = [], []
        for chunk in _chunks([int(x) for x in labels]):
            marks = ",".join("?" * len(chunk))
            for label, blob in self._r.execute(
                f"SELECT label, vector FROM items WHERE label IN ({marks})", chunk
            ):
                found.append(label)
                vecs.append(blob)
        return _stack(found, vecs, dim)

    def matching(self, where: str, params: list) -> np.ndarray:
        q = f"SELECT label FROM items WHERE {where}"
        try:
            rows = self._r.execute(q, params).fetchall()
        except sqlite3.OperationalError as e:
            raise CollectionError(f"filter could not be evaluated: {e}") from None
        return np.array([r[0] for r in rows], dtype=np.int64)

    def keyword(
        self, match: str, k: int, where: str | None = None, params: Sequence = ()
    ) -> list[tuple[int, float]]:
        """(label, BM25 score; higher is better) of the best k texts matching an FTS5 query,
        among the items passing `where` (a compiled filter) when given. An FTS5 syntax error
        raises KeywordQueryError."""
        q = "SELECT rowid, bm25(texts) FROM texts WHERE texts MATCH ?"
        if where:
            q += f" AND rowid IN (SELECT label FROM items WHERE {where})"
        q += " ORDER BY bm25(texts), rowid LIMIT ?"
        try:
            rows = self._r.execute(q, [match, *params, k]).fetchall()
        except sqlite3.OperationalError as e:
            try:  # the query alone: does it parse? (else the filter was what failed)
                self._r.execute("SELECT rowid FROM texts WHERE texts MATCH ? LIMIT 1", [match])
            except sqlite3.OperationalError as e2:
                raise KeywordQueryError(str(e2)) from None
            raise CollectionError(f"filter could not be evaluated: {e}") from None
        return [(int(label), -float(b)) for label, b in rows]  # FTS5's bm25() is negated

    def text_of(self, labels: Sequence[int]) -> dict[int, str]:
        """The indexed text of each label that has one."""
        out = {}
        for chunk in _chunks([int(x) for x in labels]):
            marks = ",".join("?" * len(chunk))
            q = f"SELECT rowid, body FROM texts WHERE rowid IN ({marks})"
            out.update(dict(self._r.execute(q, chunk).fetchall()))
        return out

    def scan(
        self, dim: int, after_lsn: int = -1, batch: int = 20_000
    ) -> tuple[int, Iterator[tuple[np.ndarray, np.ndarray]]]:
        """The lsn of one consistent read view, and its rows written after `after_lsn`.

        The rows come as (labels, vectors) batches from their own connection and transaction, so a
        long scan (a rebuild) sees one state however many writes land meanwhile.
        """
        conn = self._connect(synchronous="FULL")
        conn.execute("BEGIN")
        view = int(conn.execute("SELECT value FROM config WHERE key = 'lsn'").fetchone()[0])

        def rows() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            try:
                cur = conn.execute(
                    "SELECT label, vector FROM items WHERE lsn > ? ORDER BY label", (after_lsn,)
                )
                while chunk := cur.fetchmany(batch):
                    yield _stack([r[0] for r in chunk], [r[1] for r in chunk], dim)
            finally:
                conn.close()

        return view, rows()

    def labelled(self, path_sql: str, dim: int) -> tuple[np.ndarray, list]:
        """Vectors of the items whose metadata holds a string, number or boolean at the JSON
        path (an SQL literal from index/filters.py), with those values."""
        q = (f"SELECT vector, json_extract(meta, {path_sql}), json_type(meta, {path_sql}) "
             f"FROM items WHERE json_type(meta, {path_sql}) IN "
             "('text', 'integer', 'real', 'true', 'false') ORDER BY label")  # fmt: skip
        rows = self._r.execute(q).fetchall()
        values = [bool(v) if t in ("true", "false") else v for _, v, t in rows]
        vecs = np.frombuffer(b"".join(r[0] for r in rows), dtype="<f4").reshape(len(rows), dim)
        return vecs.astype(np.float32), values

    def removed_since(self, lsn: int) -> np.ndarray:
        rows = self._r.execute("SELECT label FROM tombstones WHERE lsn > ?", (lsn,)).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def close(self) -> None:
        with self._wlock:
            self._w.close()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()


def _meta(raw: str | None) -> dict | None:
    return None if raw is None else json.loads(raw)


def _stack(labels: list[int], blobs: list[bytes], dim: int) -> tuple[np.ndarray, np.ndarray]:
    if not labels:
        return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
    vecs = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(labels), dim)
    return np.array(labels, dtype=np.int64), vecs.astype(np.float32, copy=False)
