"""Snapshots of a collection's FAISS index: written atomically, verified on load.

A snapshot is a directory `snap-<lsn>` holding `index.faiss`, `dead.npy` (labels still inside the
index but deleted: tombstones of index types that cannot remove) and `manifest.json` (lsn, count,
dimension, metric, model spec, factory string, FAISS version, and each file's size and sha256).
It is built under a temporary name, every file and the directory fsynced, then renamed into place
and the parent fsynced: a crash leaves either the whole snapshot or a temporary that is ignored.
Knows nothing of torch or HTTP.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from index.errors import SnapshotError

FORMAT = 1
PREFIX = "snap-"
TMP_PREFIX = ".tmp-snap-"


@dataclass
class Snapshot:
    path: Path
    manifest: dict
    index: faiss.Index | faiss.IndexBinary
    dead: np.ndarray


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def write_snapshot(
    root: Path, index: faiss.Index | faiss.IndexBinary, dead: np.ndarray, info: dict, keep: int = 2
) -> Path:
    """Write a snapshot of `index` at `info["lsn"]`; keep the newest `keep` and drop older ones."""
    root.mkdir(parents=True, exist_ok=True)
    lsn = int(info["lsn"])
    final = root / f"{PREFIX}{lsn:020d}"
    tmp = root / f"{TMP_PREFIX}{lsn:020d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_files(tmp, index, dead, info)
    except BaseException:  # a full disk or an I/O error: no partial snapshot stays behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():  # same lsn again (e.g. after recovering past a corrupt one): replace it
        shutil.rmtree(final)
    os.rename(tmp, final)
    _fsync_path(root)
    for old in list_snapshots(root)[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    for stray in root.glob(f"{TMP_PREFIX}*"):
        if not stray.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(stray, ignore_errors=True)
    return final


def _write_files(tmp: Path, index: faiss.Index, dead: np.ndarray, info: dict) -> None:
    """The index, its tombstones and a manifest with sizes and hashes, all fsynced, in `tmp`."""
    tmp.mkdir()
    if isinstance(index, faiss.IndexBinary):  # a binary collection's index (factory B...)
        faiss.write_index_binary(index, str(tmp / "index.faiss"))
    else:
        faiss.write_index(index, str(tmp / "index.faiss"))
    np.save(tmp / "dead.npy", np.asarray(dead, dtype=np.int64))
    files = {}
    for name in ("index.faiss", "dead.npy"):
        _fsync_path(tmp / name)
        files[name] = {"bytes": (tmp / name).stat().st_size, "sha256": _sha256(tmp / name)}
    manifest = {
        "format": FORMAT,
        **info,
        "faiss_version": faiss.__version__,
        "created": time.time(),
        "files": files,
    }
    with open(tmp / "manifest.json", "w") as f:
        json.dump(manifest, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    _fsync_path(tmp)


def list_snapshots(root: Path) -> list[Path]:
    """Snapshot directories, newest (highest lsn) first."""
    if not root.is_dir():
        return []
    snaps = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX)]
    return sorted(snaps, key=lambda p: p.name, reverse=True)


def read_snapshot(path: Path, expect: dict) -> Snapshot:
    """Load and verify one snapshot; any defect raises SnapshotError naming the bad file."""
    mpath = path / "manifest.json"
    try:
        manifest = json.loads(mpath.read_text())
    except FileNotFoundError:
        raise SnapshotError(f"{mpath}: missing") from None
    except (OSError, ValueError) as e:
        raise SnapshotError(f"{mpath}: unreadable manifest ({e})") from None
    if manifest.get("format") != FORMAT:
        raise SnapshotError(f"{mpath}: unknown snapshot format {manifest.get('format')!r}")
    for key, want in expect.items():
        if manifest.get(key) != want:
            raise SnapshotError(f"{mpath}: {key} is {manifest.get(key)!r}, expected {want!r}")
    for name, meta in manifest.get("files", {}).items():
        fpath = path / name
        if not fpath.is_file():
            raise SnapshotError(f"{fpath}: missing")
        size = fpath.stat().st_size
        if size != meta["bytes"]:
            raise SnapshotError(
                f"{fpath}: truncated or padded ({size} bytes, manifest says {meta['bytes']})"
            )
        if _sha256(fpath) != meta["sha256"]:
            raise SnapshotError(f"{fpath}: checksum mismatch (corrupt file)")
    try:
        binary = str(manifest.get("factory", "")).startswith("B")
        read = faiss.read_index_binary if binary else faiss.read_index
        index = read(str(path / "index.faiss"))
        dead = np.load(path / "dead.npy")
    except Exception as e:  # checksums matched, so this is a format problem
        raise SnapshotError(f"{path / 'index.faiss'}: cannot be read ({e})") from None
    if index.ntotal != manifest["ntotal"]:
        raise SnapshotError(
            f"{path / 'index.faiss'}: holds {index.ntotal} vectors, "
            f"manifest says {manifest['ntotal']}"
        )
    return Snapshot(path, manifest, index, dead)
