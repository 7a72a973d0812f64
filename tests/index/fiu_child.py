"""A collection writer under injected I/O errors: run by tests/index/test_storage.py as
`fiu-run -x python fiu_child.py DATA MODE`, which preloads libfiu's POSIX wrappers. Faults are
switched on and off here through libfiu's API, so opening and closing run on a healthy disk and
only the writes in between meet them. Prints one JSON line: the outcome of each write.

MODE "sync" or "write": every fsync (or every read and write) fails with EIO for one upsert, then
the faults stop and more writes are tried. MODE "random": each fsync fails with probability 0.05
during 200 single-item upserts, then 200 more with no faults.
"""

from __future__ import annotations

import ctypes
import json
import sys
import zlib

import numpy as np

from index import Catalog, StorageFailed

DIM = 16
EIO = 5
POINTS = {"sync": b"posix/io/sync/*", "write": b"posix/io/rw/*"}


def vector(item_id: str) -> np.ndarray:
    return np.random.default_rng(zlib.crc32(item_id.encode())).normal(size=(1, DIM))


def attempt(fn) -> str:
    try:
        fn()
        return "ok"
    except StorageFailed as e:
        return f"refused: {e}"


def main() -> None:
    data, mode = sys.argv[1:3]
    fiu = ctypes.CDLL("libfiu.so.0")
    fiu.fiu_enable.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint]
    fiu.fiu_enable_random.argtypes = [*fiu.fiu_enable.argtypes, ctypes.c_float]
    fiu.fiu_disable.argtypes = [ctypes.c_char_p]
    cat = Catalog(data, auto_maintain=False)
    col = cat.create("c", DIM)
    for i in range(20):
        col.upsert([f"a{i}"], vector(f"a{i}"))
    out: dict[str, object] = {}
    if mode == "random":
        fiu.fiu_enable_random(POINTS["sync"], 1, ctypes.c_void_p(EIO), 0, 0.05)
        out["puts"] = [
            attempt(lambda i=i: col.upsert([f"r{i}"], vector(f"r{i}"))) for i in range(200)
        ]
        fiu.fiu_disable(POINTS["sync"])
        out["later"] = [
            attempt(lambda i=i: col.upsert([f"s{i}"], vector(f"s{i}"))) for i in range(200)
        ]
    else:
        fiu.fiu_enable(POINTS[mode], 1, ctypes.c_void_p(EIO), 0)
        out["failed"] = attempt(lambda: col.upsert(["b0"], vector("b0")))
        fiu.fiu_disable(POINTS[mode])
        out["after"] = attempt(lambda: col.upsert(["c0"], vector("c0")))
        out["delete"] = attempt(lambda: col.delete(["a0"]))
        out["search"] = col.search(vector("a5"), k=1)[0][0].id
        out["get"] = col.get(["a6"])[0].id
        out["failures"] = cat.failures()
    cat.close()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
