"""Audio bench: decode + embed throughput against decode alone, and the dynamic batcher's gain for
audio through the service (32 concurrent clients, one clip per request, batching against
batch-of-one serving), and the service's clips/s against decode + embed in one process, all
measured in the same run. The clients run in a separate process, as they would.

Clips: the Tux Paint stamps' Ogg Vorbis sound effects when installed (real files, 0.5-10 s),
else synthetic 3 s WAV tones.

    python bench/audio.py [--model house] [--clips 96] [--clients 32]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import statistics
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench.encoders import best_rate
from bench.service import load
from encoders import decode_audio, load_encoder
from encoders.audio import encode_audio
from housedata.sets import TUXPAINT_DIR
from runtime.container import Runtime
from runtime.settings import Settings
from service.runner import running


def sample_clips(n: int) -> tuple[list[bytes], str]:
    files = sorted(TUXPAINT_DIR.rglob("*.ogg")) if TUXPAINT_DIR.exists() else []
    files = [f for f in files if "_desc" not in f.name and f.stem.count("_") < 3][:n]
    if files:
        return [f.read_bytes() for f in files], f"{len(files)} Tux Paint Ogg Vorbis clips"
    t = np.arange(3 * 22_050) / 22_050
    waves = [(0.4 * np.sin(2 * np.pi * (200 + 10 * i) * t)).astype(np.float32) for i in range(n)]
    return [encode_audio(w, 22_050, "WAV") for w in waves], f"{n} synthetic 3 s WAV tones"


def run_load(url: str, bodies: list[dict], clients: int) -> tuple[float, list[float], dict]:
    return asyncio.run(load(url, bodies, clients, timeout=120))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="house")
    ap.add_argument("--clips", type=int, default=96)
    ap.add_argument("--clients", type=int, default=32)
    args = ap.parse_args()
    enc = load_encoder(args.model, device="cpu")
    enc.require("audio")
    clips, what = sample_clips(args.clips)
    waves = [decode_audio(c, enc.audio_rate) for c in clips]
    seconds = sum(w.seconds for w in waves)
    enc.embed_audio(waves[:8])  # warm-up

    decode = best_rate(lambda: [decode_audio(c, enc.audio_rate) for c in clips], len(clips), 3)
    both = best_rate(lambda: enc.embed_audio([decode_audio(c, enc.audio_rate) for c in clips]),
                     len(clips), 3)  # fmt: skip
    one = best_rate(lambda: [enc.embed_audio([w]) for w in waves], len(clips), 3)
    batched = best_rate(lambda: enc.embed_audio(waves), len(clips), 3)
    print(f"# audio bench: {args.model} on {enc.device}, {what} ({seconds:.0f} s of audio)")
    print(f"decode alone            {decode:8.1f} clips/s")
    print(f"decode + embed          {both:8.1f} clips/s  ({both / decode:.2f}x decode alone)")
    print(f"embed, one clip a call  {one:8.1f} clips/s")
    print(f"embed, all in one call  {batched:8.1f} clips/s  ({batched / one:.2f}x one a call)")

    bodies = [{"input": [{"type": "audio", "audio": "data:audio/ogg;base64,"
                          + base64.b64encode(c).decode()}]} for c in clips]  # fmt: skip
    results = {}
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    for name, max_batch in (("batch of one", 1), ("dynamic batching", 64)):
        with tempfile.TemporaryDirectory() as d:
            s = Settings.load({}, model=args.model, data_dir=d, demo=False, max_batch=max_batch,
                              queue_size=4096, max_queue_wait_ms=60_000)  # fmt: skip
            with running(s, Runtime(s, encoder=enc)) as url:
                pool.submit(run_load, url, bodies[:16], 8).result()  # warm-up
                results[name] = pool.submit(run_load, url, bodies * 2, args.clients).result()
    pool.shutdown()
    print(f"service, {args.clients} clients, one clip per request to /v1/embeddings:")
    for name, (r, lat, codes) in results.items():
        p50 = statistics.median(lat) * 1e3
        print(f"  {name:<17} {r:8.1f} clips/s  p50 {p50:7.1f} ms  status {codes}")
    served = results["dynamic batching"][0]
    print(f"  batching gain: {served / results['batch of one'][0]:.2f}x")
    print(f"  service / decode + embed in one process: {served / both:.2f}x")


if __name__ == "__main__":
    main()
