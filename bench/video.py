"""Video bench, all in one run on the same clips: decoding every frame to RGB against the decoder's
1 frame/s sampling (every frame is still decoded, only the sampled ones are converted and
scaled), the cut detector's cost, and decode + embed against decode alone (the embed path should
cost little next to decoding), both one after the other and overlapped as the service runs them
(the next clip decoding in a worker while the model embeds the last one's frames).

Clips: synthetic H.264 MP4s, 320x240 at 24 frames/s, a coloured square moving over a gradient,
a cut every 5 s.

    python bench/video.py [--model house] [--clips 6] [--seconds 20]
"""

from __future__ import annotations

import argparse
import io
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench.encoders import best_rate
from encoders import load_encoder
from encoders.video import decode_video
from housedata.writer import write_video

FPS, W, H = 24, 320, 240


def make_clip(seconds: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, W, dtype=np.float32)[None, :, None]
    frames = []
    for _ in range(0, seconds, 5):
        colour, bg = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        base = (ramp * bg / 255).repeat(H, 0).astype(np.uint8)
        for i in range(5 * FPS):
            f = base.copy()
            x, y = (i * 3) % (W - 60), (i * 2) % (H - 60)
            f[y : y + 60, x : x + 60] = colour
            frames.append(f)
    return write_video(frames[: seconds * FPS], FPS)


def every_frame(data: bytes) -> int:
    """The baseline: every frame decoded and converted to RGB at full size."""
    import av

    with av.open(io.BytesIO(data)) as c:
        return sum(f.to_ndarray(format="rgb24").size > 0 for f in c.decode(c.streams.video[0]))


def overlapped(enc, clips: list[bytes]) -> None:
    """Decode each clip in a worker thread while the model embeds the clip before it."""
    with ThreadPoolExecutor(1) as pool:
        ahead = pool.submit(decode_video, clips[0])
        for nxt in [*clips[1:], None]:
            video = ahead.result()
            if nxt is not None:
                ahead = pool.submit(decode_video, nxt)
            enc.encode_video([video])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="house")
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--seconds", type=int, default=20)
    args = ap.parse_args()
    enc = load_encoder(args.model, device="cpu")
    clips = [make_clip(args.seconds, i) for i in range(args.clips)]
    secs = args.clips * args.seconds
    frames = secs * FPS
    enc.encode_video([decode_video(clips[0])])  # warm-up

    full = best_rate(lambda: [every_frame(c) for c in clips], secs, 3)
    sampled = best_rate(lambda: [decode_video(c) for c in clips], secs, 3)
    shots = best_rate(lambda: [decode_video(c, shots=True) for c in clips], secs, 3)
    both = best_rate(lambda: enc.encode_video([decode_video(c) for c in clips]), secs, 3)
    piped = best_rate(lambda: overlapped(enc, clips), secs, 3)
    videos = [decode_video(c) for c in clips]
    embed = best_rate(lambda: enc.encode_video(videos), secs, 3)
    print(f"# video bench: {args.model} on {enc.device}, {args.clips} H.264 clips of "
          f"{args.seconds} s, {W}x{H} at {FPS} fps ({frames:,} frames)")  # fmt: skip
    print("rates in seconds of video per second (x24 for frames decoded per second)")
    print(f"decode every frame to RGB   {full:8.1f}")
    print(f"decode, sample 1 fps        {sampled:8.1f}  ({sampled / full:.2f}x every frame)")
    print(f"decode, 1 fps + cut detect  {shots:8.1f}  ({shots / sampled:.2f}x without)")
    print(f"embed the sampled frames    {embed:8.1f}")
    print(f"decode 1 fps + embed        {both:8.1f}  ({both / sampled:.2f}x decode alone)")
    print(f"  overlapped, as served     {piped:8.1f}  ({piped / sampled:.2f}x decode alone)")


if __name__ == "__main__":
    main()
