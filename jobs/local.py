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
from encoders.speech import Recogniser
from jobs.decode import Decoded, DecodeOptions, decode_chunk
from jobs.embed import embed_batch, error_record
from jobs.output import Row, write_shard
from jobs.sources import Item, Shard
from jobs.video import VideoOptions

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
    video: VideoOptions = field(default_factory=VideoOptions)
    speech: Recogniser | None = None  # `--speech`: transcribe audio and video inputs
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
            if _size(queue) >= batch_size:
                self._flush(enc, d.modality, window, batch_size)
        self.left -= len(decoded)

    def _flush(self, enc: Encoder, modality: str, window: float | None,
               batch_size: int) -> None:  # fmt: skip
        batch = self.pending.pop(modality, [])
        rows, errors = embed_batch(enc, batch, window, self.video, batch_size, self.speech)
        self.rows += rows
        self.errors += errors

    def finish(self, enc: Encoder, out: Path, window: float | None, batch_size: int) -> None:
        for modality in list(self.pending):
            self._flush(enc, modality, window, batch_size)
        write_shard(out, self.shard.name, self.rows, self.errors, enc.dim)


def _size(queue: list[Decoded]) -> int:
    """A batch's size: its inputs, or for videos their sampled frames."""
    if queue and queue[0].modality == "video":
        return sum(len(d.payload.frames) for d in queue)
    return len(queue)


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
    """A shard's items, CHUNK at a time; a video goes alone (its frames are a chunk's worth)."""
    for shard in shards:
        chunk: list[Item] = []
        for it in shard.items:
            if it.modality == "video" and chunk:
                yield shard, chunk
                chunk = []
            chunk.append(it)
            if it.modality == "video" or len(chunk) == CHUNK:
                yield shard, chunk
                chunk = []
        if chunk:
            yield shard, chunk


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
    speech: Recogniser | None = None,
) -> None:
    """Embed `shards` (not yet written, none empty; listed lazily) into `out`, one parquet file
    per shard. Only the shards with chunks in flight are held."""
    states: dict[str, ShardState] = {}
    for shard, decoded in decoded_chunks(shards, opts, workers):
        st = states.setdefault(shard.name, ShardState(shard, len(shard.items), opts.video,
                                                           speech))  # fmt: skip
        n_err = len(st.errors)
        st.add(decoded, enc, batch_size, window)
        if st.left == 0:
            st.finish(enc, out, window, batch_size)
            del states[shard.name]
        if progress is not None:
            progress(len(decoded), len(st.errors) - n_err)
