"""Generation bench: pictures per second with the shipped image decoder on CPU, 25 DDIM steps, at
batch 1 and batch 16 with the default guidance (1: one UNet call per step) and at batch 16 with
guidance 3 (each UNet call sees twice the batch), and the ratio of diffusers' own `DDIMPipeline`
call to our loop (generation.decoder.sample) over the same UNet and scheduler, both unguided (the
pipeline has no guidance) at batch 16, in the same run. Each figure is the best of `--repeats`.

    python bench/generate.py [--repeats 3] [--steps 25]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from torch import nn


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


class Bound(nn.Module):
    """The decoder with its vectors bound, in the shape DDIMPipeline calls: unet(x, t).sample."""

    def __init__(self, decoder, vectors: torch.Tensor) -> None:
        super().__init__()
        self.decoder, self.vectors = decoder, vectors
        cfg = decoder.cfg
        self.config = SimpleNamespace(sample_size=cfg.image_size, in_channels=3)

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def forward(self, x: torch.Tensor, t) -> SimpleNamespace:
        return SimpleNamespace(sample=self.decoder(x, t, self.vectors))


def pipeline_call(decoder, vectors: np.ndarray, steps: int, seed: int) -> np.ndarray:
    from diffusers import DDIMPipeline, DDIMScheduler

    sched = DDIMScheduler(**decoder.cfg.schedule(), clip_sample=True)
    pipe = DDIMPipeline(unet=Bound(decoder, torch.from_numpy(vectors)), scheduler=sched)
    pipe.set_progress_bar_config(disable=True)
    gen = torch.Generator().manual_seed(seed)
    with torch.inference_mode():
        out = pipe(batch_size=len(vectors), generator=gen, num_inference_steps=steps, eta=0.0,
                   output_type="np")  # fmt: skip
    return out.images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=25)
    args = ap.parse_args()
    from encoders import load_encoder
    from generation.decoder import decoder_dir, load_decoder, sample
    from training.captioner.data import fashion_pairs

    enc = load_encoder("house", device="cpu")
    folder = decoder_dir(enc)
    if folder is None:
        sys.exit("models/house/decoder is not built: make house-decoder")
    dec = load_decoder(folder)
    images, _, _, _ = fashion_pairs("test", 16, seed=0)
    v = enc.embed_images(images)
    sample(dec, v[:2], 2)  # warm-up
    steps = args.steps
    one = best(lambda: [sample(dec, v[i : i + 1], steps, 1.0) for i in range(16)], args.repeats)
    ours = best(lambda: sample(dec, v, args.steps, 1.0), args.repeats)
    guided = best(lambda: sample(dec, v, args.steps, 3.0), args.repeats)
    pipe = best(lambda: pipeline_call(dec, v, args.steps, 0), args.repeats)
    mine = sample(dec, v, args.steps, guidance=1.0, seed=0)
    theirs = (pipeline_call(dec, v, args.steps, 0) * 255).round().astype(np.uint8)
    print(f"torch threads: {torch.get_num_threads()}; {args.steps} DDIM steps, 32 px")
    print(f"pictures/s at batch 1 (guidance 1):   {16 / one:7.2f}")
    print(f"pictures/s at batch 16 (guidance 1):  {16 / ours:7.2f}  ({one / ours:.2f}x batch 1)")
    print(f"pictures/s at batch 16 (guidance 3):  {16 / guided:7.2f}  ({guided / ours:.2f}x time)")
    print(f"pictures/s at batch 16, unguided: DDIMPipeline {16 / pipe:7.2f} "
          f"(pipeline / our loop time: {pipe / ours:.2f}x)")  # fmt: skip
    diff = np.abs(mine.astype(int) - theirs.astype(int))
    print(f"same pictures: largest pixel difference {diff.max()} of 255, mean {diff.mean():.3f}")


if __name__ == "__main__":
    main()
