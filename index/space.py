"""Free space in a data directory, and the floor below which writes are refused before SQLite or
FAISS hit a full disk (so that there is always room left to roll back, snapshot and log).

Deletes and drops are not held to the floor: they are how an operator makes room. Knows nothing of
FAISS, torch or HTTP.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

from index.errors import StorageFull

SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%|b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$", re.I)
UNITS = {"b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20, "mib": 2**20,
         "g": 2**30, "gb": 2**30, "gib": 2**30}  # fmt: skip


def parse_floor(text: str | int) -> tuple[int, float]:
    """(bytes, fraction of the filesystem) from "268435456", "256MiB", "1.5G" or "5%"."""
    m = SIZE.match(str(text))
    if not m:
        raise ValueError(f"{text!r} is not a size: give bytes (e.g. 268435456, 256MiB) or 5%")
    value, unit = float(m[1]), (m[2] or "b").lower()
    if unit == "%":
        if value > 100:
            raise ValueError(f"{text!r}: a percentage of the disk is at most 100%")
        return 0, value / 100
    return int(value * UNITS[unit]), 0.0


def human(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} bytes"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            break
    return f"{n:.1f} {unit}"


def disk_usage(path: Path) -> tuple[int, int]:
    """(free, total) bytes of the filesystem holding `path`."""
    usage = shutil.disk_usage(path)
    return usage.free, usage.total


class SpaceGuard:
    """Refuses writes while the free space of `root` is below the floor."""

    def __init__(self, root: Path, floor: str | int = 0) -> None:
        self.root = Path(root)
        self.floor_bytes, self.floor_fraction = parse_floor(floor)

    def status(self) -> tuple[int, int]:
        """(free bytes, floor bytes) now."""
        free, total = disk_usage(self.root)
        return free, max(self.floor_bytes, int(self.floor_fraction * total))

    def check(self, what: str) -> None:
        free, floor = self.status()
        if free < floor:
            raise StorageFull(
                f"{what} refused: the data directory {self.root} has {human(free)} free, below "
                f"the {human(floor)} kept free for recovery", reason="floor",
            )  # fmt: skip


def is_disk_full(e: BaseException) -> bool:
    """An SQLite or OS error that means no space was left."""
    if isinstance(e, sqlite3.Error):
        return getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or (
            "database or disk is full" in str(e)
        )
    return isinstance(e, OSError) and e.errno == 28  # ENOSPC


def is_io_error(e: BaseException) -> bool:
    """An SQLite or OS error that means the disk failed (EIO and SQLite's SQLITE_IOERR family:
    a failed read, write or fsync), as opposed to a full disk or bad input."""
    if isinstance(e, sqlite3.Error):
        code = getattr(e, "sqlite_errorcode", None)
        return code is not None and code & 0xFF == sqlite3.SQLITE_IOERR
    return isinstance(e, OSError) and e.errno == 5  # EIO


def full_error(root: Path, what: str) -> StorageFull:
    free, _ = disk_usage(root)
    return StorageFull(f"{what} failed: the data directory {root} is full ({human(free)} free); "
                       "nothing of it was applied", reason="full")  # fmt: skip
