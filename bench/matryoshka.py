"""What truncating vectors costs: zero-shot top-1 (fashion-zero-shot), text-to-image Recall@1 of
colour and item (fashion-tinted) and caption-to-image Recall@10 (tuxpaint) of each model at
several dimensions, truncated and re-normalised as `dimensions` does, beside the same model at
its full dimension in the same run.

    python bench/matryoshka.py [--model house --model house:runs/twin-mrl/model ...]
                               [--dims 64,128,256] [--limit 5000]

A model trained with `jointspace train --matryoshka 64,128` is trained for those prefixes; the
house model was not. Compare twins trained alike but for the option (same steps and seed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from encoders import load_encoder
from training.towers.eval import fashion_tinted, fashion_zero_shot, tuxpaint


class Truncated:
    """An encoder whose vectors are cut to their first `dim` components and re-normalised."""

    def __init__(self, enc, dim: int) -> None:
        self.enc, self.dim = enc, dim
        self.name = f"{enc.name}[:{dim}]"

    def __getattr__(self, key: str):
        return getattr(self.enc, key)

    def _cut(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, np.float32)[:, : self.dim]
        return v / np.linalg.norm(v, axis=1, keepdims=True).clip(1e-12)

    def embed_text(self, texts) -> np.ndarray:
        return self._cut(self.enc.embed_text(texts))

    def embed_images(self, imgs) -> np.ndarray:
        return self._cut(self.enc.embed_images(imgs))


def figures(enc, limit: int) -> dict[str, float]:
    return {
        "zero-shot top-1": fashion_zero_shot(enc, limit=limit)["top1"],
        "tinted recall@1": fashion_tinted(enc, limit=limit)["recall@1"],
        "tuxpaint t2i recall@10": tuxpaint(enc)["t2i_recall@10"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", action="append")
    ap.add_argument("--dims", default="64,128,256")
    ap.add_argument("--limit", type=int, default=5000)
    args = ap.parse_args()
    dims = [int(x) for x in args.dims.split(",")]
    for spec in args.model or ["house"]:
        enc = load_encoder(spec, device="cpu")
        trained = enc.info()["trained_dimensions"]
        full = figures(enc, args.limit)
        print(f"{spec} ({enc.dim} dimensions, trained for {trained})")
        print(f"  {'dims':>5} " + " ".join(f"{k:>24} {'x full':>7}" for k in full))
        for d in dims:
            got = full if d == enc.dim else figures(Truncated(enc, d), args.limit)
            cells = " ".join(f"{got[k]:24.4f} {got[k] / full[k]:7.3f}" for k in full)
            print(f"  {d:5d} {cells}", flush=True)


if __name__ == "__main__":
    main()
