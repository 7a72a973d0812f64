"""Captioning bench: captions per second at batch 1 and batch 16 with the shipped captioner on
CPU (greedy, up to 20 tokens, stopping at the full stop), and what the prefix costs: the language
model writing exactly T tokens after the mapper's prefix against writing T tokens after a short
text prompt, in the same run. Each figure is the best of `--repeats`.

    python bench/captioning.py [--repeats 3] [--tokens 12]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=12)
    args = ap.parse_args()
    from encoders import load_encoder
    from generation.captioner import captioner_dir, load_captioner
    from training.captioner.data import fashion_pairs

    enc = load_encoder("house", device="cpu")
    folder = captioner_dir(enc)
    if folder is None:
        sys.exit("models/house/captioner is not built: make house-captioner")
    cap = load_captioner(folder)
    images, _, _, _ = fashion_pairs("test", 16, seed=0)
    v = enc.embed_images(images)
    cap.caption(v[:2])  # warm-up
    one = best(lambda: [cap.caption(v[i : i + 1], max_tokens=20) for i in range(16)], args.repeats)
    batch = best(lambda: cap.caption(v, max_tokens=20), args.repeats)
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"captions/s at batch 1:  {16 / one:7.2f}")
    print(f"captions/s at batch 16: {16 / batch:7.2f}  ({one / batch:.2f}x batch 1)")

    t = args.tokens
    prompt = cap.tok("A photo of", return_tensors="pt")
    fixed = {"max_new_tokens": t, "min_new_tokens": t, "do_sample": False,
             "pad_token_id": cap.tok.eos_token_id}  # fmt: skip

    @torch.no_grad()
    def from_prefix() -> None:
        emb = cap.prefix(v[:1])
        cap.lm.generate(
            inputs_embeds=emb, attention_mask=torch.ones(emb.shape[:2], dtype=torch.long), **fixed
        )

    @torch.no_grad()
    def from_text() -> None:
        cap.lm.generate(**prompt, **fixed)

    with_prefix, with_text = best(from_prefix, args.repeats), best(from_text, args.repeats)
    n_prompt = prompt["input_ids"].shape[1]
    print(f"{t} tokens after the {cap.mapper.prefix}-position prefix: {with_prefix * 1000:7.1f} ms")
    print(f"{t} tokens after a {n_prompt}-token text prompt:   {with_text * 1000:7.1f} ms")
    print(f"prefix / text: {with_prefix / with_text:.2f}x")


if __name__ == "__main__":
    main()
