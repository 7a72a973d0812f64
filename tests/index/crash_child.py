"""The writer the crash test kills: upserts, updates, deletes and snapshots, logging each operation
before it starts ("A") and after it is acknowledged ("K"). Each item has a text (keyword index)
and a `tag` metadata field the keyword index holds too. Run: crash_child.py DATA_DIR RUN LOG
[QUANTIZATION]"""

from __future__ import annotations

import os
import sys
import zlib

import numpy as np

from index import Catalog

DIM = 16
BATCH = 25


def vector(item_id: str, version: int) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(item_id.encode()) * 10 + version)
    v = rng.normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def text(item_id: str, version: int) -> str:
    return f"{item_id} version{version}"


def main() -> None:
    root, run, log_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    quantization = sys.argv[4] if len(sys.argv) > 4 else "none"
    metric = "ip" if quantization == "none" else "cosine"  # (quantization needs cosine)
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives until the process is killed

    def say(line: str) -> None:
        log.write(line + "\n")  # one write() per line: a kill cannot tear it
        log.flush()

    cat = Catalog(root, snapshot_every=60)  # background snapshots too
    col = cat.create("crash", DIM, metric=metric, exist_ok=True, text_fields=["tag"],
                     quantization=quantization)  # fmt: skip
    say(f"R {run} {os.getpid()}")
    b = 0
    while True:
        ids = [f"r{run}-{b * BATCH + j}" for j in range(BATCH)]
        say(f"A U1 {b}")
        col.upsert(
            ids,
            np.stack([vector(i, 1) for i in ids]),
            [{"b": b, "v": 1, "tag": f"tag{b}"}] * BATCH,
            texts=[text(i, 1) for i in ids],
        )
        say(f"K U1 {b}")
        if b % 3 == 2:  # delete an earlier, acknowledged batch
            say(f"A D {b - 2}")
            col.delete([f"r{run}-{(b - 2) * BATCH + j}" for j in range(BATCH)])
            say(f"K D {b - 2}")
        if b % 4 == 3:  # update the previous batch to version 2
            prev = [f"r{run}-{(b - 1) * BATCH + j}" for j in range(BATCH)]
            say(f"A U2 {b - 1}")
            col.upsert(prev, np.stack([vector(i, 2) for i in prev]),
                       [{"b": b - 1, "v": 2, "tag": f"tag{b - 1}"}] * BATCH,
                       texts=[text(i, 2) for i in prev])  # fmt: skip
            say(f"K U2 {b - 1}")
        if b % 2 == 1:
            say(f"A S {b}")
            col.snapshot()
            say(f"K S {b}")
        b += 1


if __name__ == "__main__":
    main()
