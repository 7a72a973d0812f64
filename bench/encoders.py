"""Encoder throughput: our embed path against the raw open_clip model on the same inputs.

Both sides include preprocessing (PIL image -> tensor, text -> tokens) and L2 normalisation, use the
same weights (a random-init checkpoint written to a temp file, loaded back through our spec) and the
same batch size. Runs alternate and the best of N is kept on each side, so background load on a
shared machine hits both alike. On a CUDA machine it also measures the bare ViT-B-32 image tower in
bf16 at batch 1024.

    python bench/encoders.py [--arch ViT-B-32] [--images 64] [--texts 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import open_clip
import torch
from PIL import Image

from encoders import load_encoder


def sample_images(n: int, seed: int = 0) -> list[Image.Image]:
    """Photo-sized RGB images (varied 300-640 px sides) so resizing costs what it costs in use."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        h, w = rng.integers(300, 640, size=2)
        base = rng.integers(0, 256, size=(h // 8, w // 8, 3), dtype=np.uint8)
        out.append(Image.fromarray(base).resize((int(w), int(h)), Image.BILINEAR))
    return out


def sample_texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    words = "a photo of the red blue dress shoe cat dog on in with big small striped car".split()
    return [" ".join(rng.choice(words, size=rng.integers(3, 30))) for _ in range(n)]


def best_rate(fn, n_items: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n_items / min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="ViT-B-32")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--texts", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--gpu-batch", type=int, default=1024)
    args = ap.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(args.arch, pretrained=None)
    tokenizer = open_clip.get_tokenizer(args.arch)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "weights.pt"
        torch.save(model.state_dict(), ckpt)
        enc = load_encoder(f"open_clip:{args.arch}@{ckpt}", device=device)
    enc.image_batch_size = enc.text_batch_size = args.batch
    raw = model.to(device=enc.device, dtype=enc.dtype).eval()

    images, texts = sample_images(args.images), sample_texts(args.texts)

    def raw_images() -> np.ndarray:
        out = []
        with torch.inference_mode():
            for i in range(0, len(images), args.batch):
                x = torch.stack([preprocess(im) for im in images[i : i + args.batch]])
                f = raw.encode_image(x.to(enc.device, enc.dtype))
                out.append(torch.nn.functional.normalize(f.float(), dim=-1).cpu().numpy())
        return np.concatenate(out)

    def raw_texts() -> np.ndarray:
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), args.batch):
                f = raw.encode_text(tokenizer(texts[i : i + args.batch]).to(enc.device))
                out.append(torch.nn.functional.normalize(f.float(), dim=-1).cpu().numpy())
        return np.concatenate(out)

    # Warm up both paths once (allocator, kernels), and check they agree.
    diff_img = np.abs(raw_images() - enc.embed_images(images)).max()
    diff_txt = np.abs(raw_texts() - enc.embed_text(texts)).max()

    rates = {"raw img": [], "ours img": [], "raw txt": [], "ours txt": []}
    for _ in range(args.repeats):  # alternate so drift in machine load hits both sides
        rates["raw img"].append(best_rate(raw_images, len(images), 1))
        rates["ours img"].append(best_rate(lambda: enc.embed_images(images), len(images), 1))
        rates["raw txt"].append(best_rate(raw_texts, len(texts), 1))
        rates["ours txt"].append(best_rate(lambda: enc.embed_text(texts), len(texts), 1))
    best = {k: max(v) for k, v in rates.items()}

    print(
        f"# encoders bench: {args.arch}, device={device}, dtype={enc.dtype}, batch={args.batch}, "
        f"torch threads={torch.get_num_threads()}, best of {args.repeats}"
    )
    head = ("path", "raw open_clip /s", "jointspace /s", "ratio", "max |diff|")
    print(f"{head[0]:<10} {head[1]:>18} {head[2]:>15} {head[3]:>7} {head[4]:>11}")
    print(
        f"{'images':<10} {best['raw img']:>18.1f} {best['ours img']:>15.1f} "
        f"{best['ours img'] / best['raw img']:>7.3f} {diff_img:>11.2e}"
    )
    print(
        f"{'texts':<10} {best['raw txt']:>18.1f} {best['ours txt']:>15.1f} "
        f"{best['ours txt'] / best['raw txt']:>7.3f} {diff_txt:>11.2e}"
    )
    print("target: ratio >= 0.90 on both rows")

    if device == "cuda":
        gpu_tower(raw, args.gpu_batch, args.repeats)
    else:
        print("no CUDA device: skipped the bf16 image-tower throughput at batch", args.gpu_batch)


def gpu_tower(model: torch.nn.Module, batch: int, repeats: int) -> None:
    """Bare image tower, bf16, pixels already on the GPU: the ceiling for image embedding."""
    visual = model.visual.to(dtype=torch.bfloat16).eval()
    size = visual.image_size if isinstance(visual.image_size, int) else visual.image_size[0]
    x = torch.randn(batch, 3, size, size, device="cuda", dtype=torch.bfloat16)
    with torch.inference_mode():
        for _ in range(3):
            visual(x)
        torch.cuda.synchronize()
        times = []
        for _ in range(max(repeats, 5)):
            t0 = time.perf_counter()
            visual(x)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    print(
        f"gpu image tower: {torch.cuda.get_device_name()} bf16 batch {batch}: "
        f"{batch / min(times):,.0f} img/s (anchor: ~18k img/s on a workstation Blackwell card)"
    )


if __name__ == "__main__":
    main()
