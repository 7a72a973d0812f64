"""The local runner: decode workers (processes) feed the model in this process, shard by shard.

Owns the pipeline on one machine: chunks of items go to a pool of spawned worker processes, at
most a fixed number of chunks in flight (so memory does not grow with the input), decoded items
wait per modality until a batch is full, and each shard is written whole as soon as its last item
is in. Must not import the index or anything of HTTP.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from encoders.base import Encoder
from jobs.decode import Decoded, DecodeOptions, decode_chunk
from jobs.embed import embed_batch, error_record
from jobs.output import Row, write_shard
from jobs.sources import Item, Shard

CHUNK = 16  # items per round trip to a worker
INFLIGHT_PER_WORKER = 4  # chunks queued per worker: enough to keep it busy, no more

Progress = Callable[[int, int], None]  # (items finished, errors) since the last call


@dataclass
class ShardState:
    """One shard on its way: decoded items wait per modality until a batch is full; the shard
    is written whole when its last item is in. Both runners use it, so they write the same rows
    and errors in the same order."""

    shard: Shard
    left: int
    rows: list[Row] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    pending: dict[str, list[Decoded]] = field(default_factory=dict)

    def add(self, decoded: list[Decoded], enc: Encoder, batch_size: int,
            window: float | None) -> None:  # fmt: skip
        """Take a decoded chunk, embedding every batch it fills."""
        for d in decoded:
            if d.error is not None:
                self.errors.append(error_record(d, d.error))
                continue
            queue = self.pending.setdefault(d.modality, [])
            queue.append(d)
            if len(queue) >= batch_size:
                self._flush(enc, d.modality, window)
        self.left -= len(decoded)

    def _flush(self, enc: Encoder, modality: str, window: float | None) -> None:
        rows, errors = embed_batch(enc, self.pending.pop(modality, []), window)
        self.rows += rows
        self.errors += errors

    def finish(self, enc: Encoder, out: Path, window: float | None) -> None:
        for modality in list(self.pending):
            self._flush(enc, modality, window)
        write_shard(out, self.shard.name, self.rows, self.errors, enc.dim)


def _worker_init(parent: int) -> None:
    """Ctrl-C is the parent's to handle (it stops the pool); a worker whose parent died (kill -9)
    exits instead of waiting forever on its queue; one torch thread per worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    import torch

    torch.set_num_threads(1)


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def chunks(shards: Iterable[Shard]) -> Iterator[tuple[Shard, list[Item]]]:
    for shard in shards:
        for at in range(0, len(shard.items), CHUNK):
            yield shard, shard.items[at : at + CHUNK]


def decoded_chunks(
    shards: Iterable[Shard], opts: DecodeOptions, workers: int
) -> Iterator[tuple[Shard, list[Decoded]]]:
    """Decoded chunks in plan order; `workers` processes (0: in this process)."""
    if workers == 0:
        for shard, items in chunks(shards):
            yield shard, decode_chunk(items, opts)
        return
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
    pool = ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_worker_init, initargs=(os.getpid(),)
    )
    inflight: deque[tuple[Shard, Future]] = deque()
    try:
        source = chunks(shards)
        for shard, items in source:
            inflight.append((shard, pool.submit(decode_chunk, items, opts)))
            if len(inflight) >= workers * INFLIGHT_PER_WORKER:
                done_shard, fut = inflight.popleft()
                yield done_shard, fut.result()
        while inflight:
            done_shard, fut = inflight.popleft()
            yield done_shard, fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_local(
    enc: Encoder,
    shards: Iterable[Shard],
    out: Path,
    opts: DecodeOptions,
    *,
    workers: int,
    batch_size: int,
    window: float | None = None,
    progress: Progress | None = None,
) -> None:
    """Embed `shards` (not yet written, none empty; listed lazily) into `out`, one parquet file
    per shard. Only the shards with chunks in flight are held."""
    states: dict[str, ShardState] = {}
    for shard, decoded in decoded_chunks(shards, opts, workers):
        st = states.setdefault(shard.name, ShardState(shard, len(shard.items)))
        n_err = len(st.errors)
        st.add(decoded, enc, batch_size, window)
        if st.left == 0:
            st.finish(enc, out, window)
            del states[shard.name]
        if progress is not None:
            progress(len(decoded), len(st.errors) - n_err)
