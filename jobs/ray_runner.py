"""The Ray runner: the same job on a Ray cluster (or Ray's local mode), for users who outgrow
one machine.

Owns the Ray side of a job: a pool of model actors (each loads the model once; one GPU per actor
when the cluster has GPUs), each given whole shards. An actor decodes its shard's items (with
the same `decode_chunk` as the local runner, in a few threads), embeds them through the same
`ShardState` and writes the shard whole into the output directory itself (temporary name, fsync,
rename), so the output and resume are the local runner's. The driver only lists the plan a shard
at a time, keeps at most two shards per actor in flight, and hears back each shard's name and
counts: what passes through it does not grow with the vectors, and its memory does not grow with
the input. Paths in the plan and the output directory must be reachable from every node (a shared
filesystem). Ray is an optional extra (`pip install 'jointspace[ray]'`). Must not import the index
or anything of HTTP.
"""

from __future__ import annotations

import pickle
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from jobs.decode import DecodeOptions, decode_chunk
from jobs.errors import JobError
from jobs.local import Progress, ShardState, chunks
from jobs.sources import Shard

INFLIGHT_PER_ACTOR = 2  # one shard being embedded, one waiting: enough to keep an actor busy
DECODE_THREADS = 2  # per actor: PIL and FFmpeg release the GIL while they decode


class ShardWriter:
    """The actor: a shard in, its rows written to `out`, (name, items, errors) back."""

    def __init__(self, spec: str, device: str, out: str, opts: DecodeOptions, batch_size: int,
                 window: float | None, asr: str | None = None) -> None:  # fmt: skip
        from encoders.registry import load_encoder
        from encoders.speech import Recogniser

        self.enc = load_encoder(spec, device=device)
        self.speech = Recogniser(Path(asr)) if asr is not None else None
        self.out, self.opts = Path(out), opts
        self.batch_size, self.window = batch_size, window
        self.pool = ThreadPoolExecutor(DECODE_THREADS)

    def run(self, shard: Shard) -> tuple[str, int, int]:
        st = ShardState(shard, len(shard.items), self.opts.video, self.speech)
        inflight: deque[Future] = deque()  # a few chunks ahead of the model, no more
        for _, items in chunks([shard]):
            inflight.append(self.pool.submit(decode_chunk, items, self.opts))
            if len(inflight) > 2 * DECODE_THREADS:
                st.add(inflight.popleft().result(), self.enc, self.batch_size, self.window)
        while inflight:
            st.add(inflight.popleft().result(), self.enc, self.batch_size, self.window)
        st.finish(self.enc, self.out, self.window, self.batch_size)
        return shard.name, len(shard.items), len(st.errors)


def _ray():
    try:
        import ray
    except ImportError:
        raise JobError(
            "--runner ray needs Ray: pip install 'jointspace[ray]' (or 'ray[data]')"
        ) from None
    return ray


def run_ray(
    spec: str,
    dim: int,
    shards: Iterable[Shard],
    out: Path,
    opts: DecodeOptions,
    *,
    workers: int,
    batch_size: int,
    device: str | None,
    window: float | None = None,
    address: str | None = None,
    progress: Progress | None = None,
    asr: str | None = None,
) -> int:
    """Embed `shards` (listed lazily) on Ray: `address` names a cluster (default: a local one,
    or the one that RAY_ADDRESS names); `workers` is the number of model actors. `dim` is the
    model's (the actors load the same model); `asr` is the recogniser's directory with
    `--speech` (each actor loads it, so it must be reachable from every node). Returns the bytes
    the driver received (the pickled answers of the actors; bench/jobs.py reports them)."""
    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    gpus = 1 if _wants_gpu(ray, device) else 0
    actor = ray.remote(num_gpus=gpus, num_cpus=1)(ShardWriter)
    actors = [actor.remote(spec, "cuda" if gpus else "cpu", str(out), opts, batch_size, window,
                           asr) for _ in range(workers)]  # fmt: skip
    idle = [a for a in actors for _ in range(INFLIGHT_PER_ACTOR)]
    running: dict = {}  # object ref -> the actor it runs on
    source, received = iter(shards), 0
    try:
        while True:
            while idle and (shard := next(source, None)) is not None:
                a = idle.pop(0)
                running[a.run.remote(shard)] = a
            if not running:
                return received
            (ref,), _ = ray.wait(list(running), num_returns=1)
            idle.append(running.pop(ref))
            answer = ray.get(ref)
            received += len(pickle.dumps(answer))
            _name, n_items, n_err = answer
            if progress is not None:
                progress(n_items, n_err)
    finally:
        for a in actors:
            ray.kill(a)


def _wants_gpu(ray, device: str | None) -> bool:
    if device is not None and device.startswith("cuda"):
        return True
    if device in (None, "auto"):
        return ray.cluster_resources().get("GPU", 0) > 0
    return False
