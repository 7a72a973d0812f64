"""Batch job bench: items/s of the decode workers alone against the whole job (decode, model,
writing parquet) on the same images with the same workers, the job's peak memory on N and on
10x N inputs, and (with --ray) the local and the Ray runner on the same input: items/s and the
bytes the driver received, beside the bytes of the rows written (what a driver that writes the
shards itself must receive), all measured in the same run.

Images: the Tux Paint stamps' PNGs when installed (real pictures, repeated to reach N), else
synthetic 256 px JPEGs. Each figure is the best of `--repeats` runs.

    python bench/jobs.py [--model house] [--items 2000] [--workers 2] [--batch-size 64] [--ray]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from housedata.sets import TUXPAINT_DIR


def image_files(tmp: Path, n: int) -> tuple[list[str], str]:
    files = sorted(str(p) for p in TUXPAINT_DIR.rglob("*.png")) if TUXPAINT_DIR.exists() else []
    if files:
        return files, f"{len(files)} Tux Paint stamp PNGs"
    rng = np.random.default_rng(0)
    made = []
    for i in range(min(n, 500)):
        path = tmp / f"{i:04d}.jpg"
        Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(path)
        made.append(str(path))
    return made, f"{len(made)} synthetic 256 px JPEGs"


def table(tmp: Path, files: list[str], n: int) -> Path:
    """A parquet table of n rows over the files (repeated), each row its own id."""
    paths = [files[i % len(files)] for i in range(n)]
    path = tmp / f"items-{n}.parquet"
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(n)], "path": paths}), path)
    return path


def child(src: str, out: str, model: str, workers: int, batch_size: int) -> None:
    """One whole job in this process; prints its peak memory and its workers'."""
    from jobs import JobOptions, embed_job

    embed_job([Path(src)], Path(out), model, JobOptions(workers=workers, batch_size=batch_size,
                                                        shard_size=1000))  # fmt: skip
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"self_mib": me, "worker_mib": kids}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="house")
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default=None)
    ap.add_argument("--ray", action="store_true", help="also compare the local and Ray runners")
    ap.add_argument("--child", nargs=2, metavar=("SRC", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(*args.child, args.model, args.workers, args.batch_size)

    from bench.encoders import best_rate
    from encoders import load_encoder
    from jobs.decode import DecodeOptions
    from jobs.local import decoded_chunks, run_local
    from jobs.sources import plan

    tmp = Path(tempfile.mkdtemp(prefix="jobs-bench-"))
    files, what = image_files(tmp, args.items)
    src = table(tmp, files, args.items)
    enc = load_encoder(args.model, device=args.device)
    shards = list(plan([src], enc.modalities, shard_size=1000).shards())
    opts = DecodeOptions(modalities=frozenset(enc.modalities), image_prefit=enc.image_prefit)
    n = sum(len(s.items) for s in shards)

    def decode_only() -> None:
        got = sum(len(d) for _, d in decoded_chunks(shards, opts, args.workers))
        assert got == n

    runs = iter(range(1_000))

    def whole_job() -> None:
        out = tmp / f"out-{next(runs)}"
        out.mkdir()
        run_local(enc, shards, out, opts, workers=args.workers, batch_size=args.batch_size)

    enc.embed_images([Image.new("RGB", (32, 32))])  # warm-up
    decode = best_rate(decode_only, n, args.repeats)
    job = best_rate(whole_job, n, args.repeats)
    print(f"# jobs bench: {args.model} on {enc.device}, {args.workers} decode workers, "
          f"{n} inputs from {what}")  # fmt: skip
    print(f"decode workers alone   {decode:8.1f} items/s")
    print(f"whole job              {job:8.1f} items/s  "
          f"({job / decode:.2f}x decode alone; target >= 0.9)")  # fmt: skip

    peaks = {}
    for size in (args.items, 10 * args.items):
        big = table(tmp, files, size)
        res = subprocess.run(
            [sys.executable, __file__, "--child", str(big), str(tmp / f"mem-{size}"),
             "--model", args.model, "--workers", str(args.workers),
             "--batch-size", str(args.batch_size)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        peaks[size] = json.loads(res.stdout.strip().splitlines()[-1])
    small, large = peaks[args.items], peaks[10 * args.items]
    print(f"peak memory, {args.items} inputs: job {small['self_mib']:.0f} MiB, "
          f"largest worker {small['worker_mib']:.0f} MiB")  # fmt: skip
    print(f"peak memory, {10 * args.items} inputs: job {large['self_mib']:.0f} MiB, "
          f"largest worker {large['worker_mib']:.0f} MiB "
          f"({large['self_mib'] / small['self_mib']:.2f}x the job's at 1x)")  # fmt: skip
    if args.ray:
        runners(tmp, src, files, args)


def runners(tmp: Path, src: Path, files: list[str], args) -> None:
    """The same job through both runners (Ray started and warmed up on a small job first, so its
    start-up is not counted); items/s from each manifest, and the driver's bytes."""
    import ray

    from jobs import JobOptions, embed_job

    ray.init(include_dashboard=False, log_to_driver=False)
    small = table(tmp, files[:8], 32)
    opts = dict(workers=args.workers, batch_size=args.batch_size, shard_size=1000)
    embed_job([small], tmp / "warm", args.model, JobOptions(runner="ray", **opts))
    got = {}
    for runner in ("local", "ray"):
        out = tmp / f"runner-{runner}"
        got[runner] = embed_job([src], out, args.model, JobOptions(runner=runner, **opts))
    rows_bytes = sum(pq.read_table(p).nbytes for p in (tmp / "runner-ray").glob("shard-*.parquet"))
    local, remote = got["local"]["last_run"], got["ray"]["last_run"]
    print(f"local runner           {local['items_per_s']:8.1f} items/s")
    print(
        f"ray runner             {remote['items_per_s']:8.1f} items/s "
        f"({remote['items_per_s'] / local['items_per_s']:.2f}x local; {args.workers} actors)"
    )
    print(f"ray driver received    {remote['driver_bytes_received']:8d} bytes for "
          f"{remote['items']} items; the rows written are {rows_bytes} bytes "
          f"({rows_bytes / max(1, remote['driver_bytes_received']):.0f}x)")  # fmt: skip
    ray.shutdown()


if __name__ == "__main__":
    main()
