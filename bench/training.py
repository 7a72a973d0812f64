"""Training bench.

1. Samples/s of our training step (towers -> normalised features -> our loss -> backward -> clip ->
   AdamW) against open_clip's own forward + ClipLoss + backward + AdamW, same architecture, batch
   and random inputs, measured alternately in the same run (target: ratio >= 1.0).
2. Peak memory of the chunked sigmoid loss against the plain one at batch 4096 on CPU, forward and
   backward, each in a fresh process measured by its peak RSS growth (target: ratio <= 0.25).
3. Fine-tuning (`jointspace train --target towers`): samples/s of each mode's step (lora, full,
   lit, head: training.towers.adapt on a random-init open_clip model of the architecture, the
   Tuner's own step) against open_clip's own full training step on the same architecture and
   batch, and each one's peak memory (CUDA: the allocator's peak; CPU: peak RSS growth of a
   fresh process).

    python bench/training.py [--arch ViT-B-32] [--batch 32] [--steps 4] [--loss-batch 4096]
    python bench/training.py --modes [--arch ViT-B-32] [--batch 32] [--steps 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss as OCClipLoss
from torch import nn

from training.core import make_optimizer, train_step
from training.losses import ClipLoss, SigLipLoss


class OpenClipTowers(nn.Module):
    """An open_clip model seen as two towers that return normalised features."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, tokens: torch.Tensor):
        return (
            F.normalize(self.model.encode_image(images), dim=-1),
            F.normalize(self.model.encode_text(tokens), dim=-1),
        )


def step_rates(arch: str, batch: int, steps: int) -> tuple[float, float]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    ours_model = open_clip.create_model(arch, pretrained=None).to(device).train()
    ref_model = open_clip.create_model(arch, pretrained=None).to(device).train()
    ref_model.load_state_dict(ours_model.state_dict())
    size = ours_model.visual.image_size
    size = size if isinstance(size, int) else size[0]
    images = torch.randn(batch, 3, size, size, device=device)
    tokens = open_clip.get_tokenizer(arch)([f"a photo of thing {i}" for i in range(batch)]).to(
        device
    )

    towers, loss_fn = OpenClipTowers(ours_model), ClipLoss().to(device)
    ours_opt = make_optimizer([towers, loss_fn], lr=1e-5, weight_decay=0.05)
    ref_opt = torch.optim.AdamW(ref_model.parameters(), lr=1e-5)
    ref_loss = OCClipLoss()

    def ours() -> None:
        train_step(towers, loss_fn, ours_opt, (images, tokens), 1.0, device)

    def ref() -> None:
        ref_opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            img, txt, scale = ref_model(images, tokens)
        ref_loss(img.float(), txt.float(), scale).backward()
        ref_opt.step()

    def timed(fn) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    ours(), ref()  # warm-up
    t_ours, t_ref = [], []
    for _ in range(steps):  # alternate so drift in machine load hits both
        t_ours.append(timed(ours))
        t_ref.append(timed(ref))
    return batch / min(t_ours), batch / min(t_ref)


def peak_memory_child(kind: str, n: int, dim: int, chunk: int) -> None:
    """Run in a fresh process: print the peak RSS growth of one forward + backward."""
    torch.manual_seed(0)
    img = F.normalize(torch.randn(n, dim), dim=-1).requires_grad_()
    txt = F.normalize(torch.randn(n, dim), dim=-1).requires_grad_()
    loss_fn = SigLipLoss(chunk_size=chunk if kind == "chunked" else None)
    # Reset the kernel's high-water mark (VmHWM) so start-up peaks do not mask ours.
    Path("/proc/self/clear_refs").write_text("5")
    base = _status_kib("VmRSS")
    loss = loss_fn(img, txt)
    loss.backward()
    peak = _status_kib("VmHWM")
    print(json.dumps({"kind": kind, "peak_kib": peak - base, "loss": float(loss.detach())}))


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_memory(n: int, dim: int, chunk: int) -> dict:
    out = {}
    for kind in ("plain", "chunked"):
        res = subprocess.run(
            [sys.executable, __file__, "--child", kind, "--loss-batch", str(n),
             "--chunk", str(chunk)],
            capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "2"},
        )  # fmt: skip
        out[kind] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def mode_child(arch: str, mode: str, batch: int, steps: int) -> None:
    """Run in a fresh process: one mode's fine-tuning step (or open_clip's own, `mode` "open_clip")
    timed best of `steps`, with its peak memory; prints one JSON line."""
    import tempfile

    from encoders.openclip import OpenClipEncoder
    from training.parts import Pairs
    from training.towers import finetune as ft
    from training.towers.adapt import prepare, towers_of

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    Path("/proc/self/clear_refs").write_text("5")
    base_rss = _status_kib("VmRSS")
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if mode == "open_clip":
        model = open_clip.create_model(arch, pretrained=None).to(device).train()
        size = model.visual.image_size
        size = size if isinstance(size, int) else size[0]
        images = torch.randn(batch, 3, size, size, device=device)
        tokens = open_clip.get_tokenizer(arch)([f"a photo of thing {i}" for i in range(batch)])
        tokens = tokens.to(device)
        opt, loss_fn = torch.optim.AdamW(model.parameters(), lr=1e-5), OCClipLoss()

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                img, txt, scale = model(images, tokens)
            loss_fn(img.float(), txt.float(), scale).backward()
            opt.step()
    else:
        from PIL import Image

        enc = OpenClipEncoder(arch, "random-init", device=str(device))
        towers = towers_of(enc)
        rng = np.random.default_rng(0)
        pics = [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
                for _ in range(batch)]  # fmt: skip
        caps = [f"a photo of thing {i}" for i in range(batch)]
        pairs = Pairs("bench", images=pics, captions=caps)
        cfg = ft.TuneConfig(mode=mode, steps=10_000, batch_size=batch, save_every=10**9,
                            out=tempfile.mkdtemp()).checked("open_clip")  # fmt: skip
        tuner = ft.Tuner(cfg, prepare(towers, mode), pairs, None, {})
        del enc

        def step() -> None:
            tuner.run(stop_at=tuner.step + 1)

    def timed() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    timed()  # warm-up
    best = min(timed() for _ in range(steps))
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
            else (_status_kib("VmHWM") - base_rss) / 1024)  # fmt: skip
    print(json.dumps({"mode": mode, "samples_per_s": batch / best, "peak_mib": peak}))


def modes_table(arch: str, batch: int, steps: int) -> None:
    rows = {}
    for mode in ("open_clip", "lora", "full", "lit", "head"):
        res = subprocess.run(
            [sys.executable, __file__, "--mode-child", mode, "--arch", arch, "--batch", str(batch),
             "--steps", str(steps)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        rows[mode] = json.loads(res.stdout.strip().splitlines()[-1])
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    ref = rows["open_clip"]["samples_per_s"]
    what = "CUDA allocator peak" if dev == "cuda" else "peak RSS growth"
    print(f"# fine-tuning step: {arch} (random init), batch {batch}, device={dev}, best of {steps}")
    print(f"| step | samples/s | x open_clip's | peak memory (MiB, {what}) |")
    print("| --- | ---: | ---: | ---: |")
    for mode, r in rows.items():
        name = "open_clip forward + ClipLoss + backward + AdamW" if mode == "open_clip" else mode
        print(f"| {name} | {r['samples_per_s']:.2f} | {r['samples_per_s'] / ref:.2f} | "
              f"{r['peak_mib']:.0f} |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="ViT-B-32")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--loss-batch", type=int, default=4096)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--child", choices=["plain", "chunked"])
    ap.add_argument("--modes", action="store_true", help="the fine-tuning modes' table only")
    ap.add_argument("--mode-child", choices=["open_clip", "lora", "full", "lit", "head"])
    args = ap.parse_args()
    if args.child:
        peak_memory_child(args.child, args.loss_batch, args.dim, args.chunk)
        return
    if args.mode_child:
        mode_child(args.arch, args.mode_child, args.batch, args.steps)
        return
    if args.modes:
        modes_table(args.arch, args.batch, args.steps)
        return

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    ours, ref = step_rates(args.arch, args.batch, args.steps)
    print(f"# training step: {args.arch}, batch {args.batch}, device={dev}, best of {args.steps}")
    print(f"open_clip forward + ClipLoss + backward + AdamW: {ref:8.2f} samples/s")
    print(f"jointspace train_step (ClipLoss, clip 1.0):       {ours:8.2f} samples/s")
    print(f"ratio: {ours / ref:.3f} (target >= 1.0)")

    mem = peak_memory(args.loss_batch, args.dim, args.chunk)
    plain, chunked = mem["plain"]["peak_kib"], mem["chunked"]["peak_kib"]
    print(f"# sigmoid loss at batch {args.loss_batch}, dim {args.dim}, forward + backward, CPU")
    print(
        f"plain:          peak RSS growth {plain / 1024:8.1f} MiB (loss {mem['plain']['loss']:.4f})"
    )
    print(
        f"chunked ({args.chunk:>4}):   peak RSS growth {chunked / 1024:8.1f} MiB "
        f"(loss {mem['chunked']['loss']:.4f})"
    )
    print(f"ratio: {chunked / max(plain, 1):.3f} (target <= 0.25)")
    modes_table(args.arch, args.batch, args.steps)


if __name__ == "__main__":
    main()
