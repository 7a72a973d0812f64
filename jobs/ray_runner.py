"""The Ray Data runner: the same job on a Ray cluster (or Ray's local mode), for users who outgrow
one machine.

Owns the Ray pipeline: the planned items become a dataset; decoding runs as Ray tasks
(`map_batches`, one CPU each) with the same `decode_item` the local runner uses; embedding runs in
an actor pool (`map_batches` with a class: each actor loads the model once, one GPU per actor when
the cluster has GPUs) with the same `embed_group`. The rows stream back to this process, which
writes each shard whole as the local runner does, so resume and the output layout are the same.
Paths in the plan must be readable from every node (a shared filesystem). Ray is an optional extra
(`pip install 'jointspace[ray]'`). Must not import the index or anything of HTTP.
"""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path

import numpy as np

from jobs.decode import Decoded, DecodeOptions, decode_item
from jobs.embed import embed_all, error_record
from jobs.errors import JobError
from jobs.local import Progress
from jobs.output import Row, write_shard
from jobs.sources import Shard


def _decode_batch(batch, opts: DecodeOptions):
    """A Ray task: pickled items in, pickled decoded items out."""
    import pyarrow as pa

    items = [pickle.loads(b) for b in batch.column("item").to_pylist()]
    decoded = [pickle.dumps(decode_item(it, opts)) for it in items]
    return pa.table({"shard": batch.column("shard"), "decoded": pa.array(decoded, pa.binary())})


class _Embedder:
    """A Ray actor holding the model; one batch of decoded items in, one row per item out."""

    def __init__(self, spec: str, device: str, window: float | None) -> None:
        from encoders.registry import load_encoder

        self.enc = load_encoder(spec, device=device)
        self.window = window

    def __call__(self, batch):
        import pyarrow as pa

        decoded: list[Decoded] = [pickle.loads(b) for b in batch.column("decoded").to_pylist()]
        results = embed_all(self.enc, decoded, self.window)
        zero = np.zeros(self.enc.dim, np.float32)
        vecs = np.stack([zero if isinstance(r, str) else r for r in results]).astype(np.float32)
        flat = pa.array(vecs.reshape(-1), pa.float32())
        errors = [r if isinstance(r, str) else None for r in results]
        return pa.table(
            {
                "shard": batch.column("shard"),
                "item": pa.array([pickle.dumps(d.item) for d in decoded], pa.binary()),
                "modality": pa.array([d.modality for d in decoded], pa.string()),
                "vector": pa.FixedSizeListArray.from_arrays(flat, self.enc.dim),
                "error": pa.array(errors, pa.string()),
            }
        )


def _ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise JobError(
            "--runner ray needs Ray Data: pip install 'jointspace[ray]' (or 'ray[data]')"
        ) from None
    return ray


def run_ray(
    spec: str,
    dim: int,
    shards: list[Shard],
    out: Path,
    opts: DecodeOptions,
    *,
    workers: int,
    batch_size: int,
    device: str | None,
    window: float | None = None,
    address: str | None = None,
    progress: Progress | None = None,
) -> None:
    """Embed `shards` on Ray: `address` names a cluster (default: a local one, or the one that
    RAY_ADDRESS names); `workers` is the number of model actors."""
    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # shards arrive whole, one after another
    ctx.enable_progress_bars = False
    gpus = 1 if _wants_gpu(ray, device) else 0
    rows = [{"shard": s.index, "item": pickle.dumps(it)} for s in shards for it in s.items]
    by_index = {s.index: s for s in shards}
    left = {s.index: len(s.items) for s in shards}
    buffers: dict[int, tuple[list[Row], list[dict]]] = {s.index: ([], []) for s in shards}
    ds = (
        ray.data.from_items(rows)
        .map_batches(_decode_batch, fn_kwargs={"opts": opts}, batch_format="pyarrow",
                     batch_size=16, num_cpus=1)
        .map_batches(_Embedder, fn_constructor_kwargs={"spec": spec, "window": window,
                     "device": "cuda" if gpus else "cpu"}, batch_format="pyarrow",
                     batch_size=batch_size, concurrency=workers, num_gpus=gpus)
    )  # fmt: skip
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        n_err = _collect(batch, buffers, dim)
        for shard_index, n in Counter(batch.column("shard").to_pylist()).items():
            left[shard_index] -= n
            if left[shard_index] == 0:
                shard_rows, errors = buffers.pop(shard_index)
                write_shard(out, by_index[shard_index].name, shard_rows, errors, dim)
        if progress is not None:
            progress(batch.num_rows, n_err)


def _collect(batch, buffers: dict[int, tuple[list[Row], list[dict]]], dim: int) -> int:
    """File the batch's rows and errors under their shards; returns the errors."""
    cols = batch.to_pydict()
    flat = batch.column("vector").combine_chunks().flatten().to_numpy()
    vecs = np.asarray(flat, np.float32).reshape(-1, dim)
    n_err = 0
    for i, shard_index in enumerate(cols["shard"]):
        item = pickle.loads(cols["item"][i])
        rows, errors = buffers[shard_index]
        if cols["error"][i] is not None:
            d = Decoded(item, cols["modality"][i])
            errors.append(error_record(d, cols["error"][i]))
            n_err += 1
        else:
            rows.append(
                Row(item.index, item.id, item.source, cols["modality"][i], vecs[i], item.metadata)
            )
    return n_err


def _wants_gpu(ray, device: str | None) -> bool:
    if device is not None and device.startswith("cuda"):
        return True
    if device in (None, "auto"):
        return ray.cluster_resources().get("GPU", 0) > 0
    return False
