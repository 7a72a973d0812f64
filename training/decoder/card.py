"""Write the image decoder's MODEL_CARD.md and its sample grids from the files beside it, so no
figure is typed by hand: config.json (architecture), training.json (data, steps, time, losses)
and eval.json (the output of `jointspace eval --model house --suite generation --out`). The grids
are drawn by the shipped decoder and prior, seed 0:

- samples.png: "a <colour> <item>" for the ten items (rows) and nine colours (columns);
- composed.png: red test garments (top) drawn "in blue instead of red" (bottom);
- others.png: held-out stamp and emoji captions, the real picture (top) and the drawing (bottom).

    python -m training.decoder.card models/house/decoder
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from generation.decoder import MODIFICATION_WEIGHT
from training.cards import card_main, read_json, write_card

TEMPLATE = """# The house image decoder and its prior

Draws 32 px pictures from house joint-space vectors, as unCLIP's decoder does from CLIP image
embeddings: `POST /generate`, `jointspace generate`, and the page's Preview button use it. A
prompt goes through the prior first (text vector to image vector); an image, a collection item or a
vector is drawn as it is; a modification ("in blue instead of red") moves the vector by its terms'
prior vectors (weight {mod_weight:g}), as search moves a query by their text vectors.

## Architecture

- Decoder: diffusers `UNet2DModel`, channels {channels}, {layers} residual layer per block, no
  attention, {groups} norm groups; the 256-d vector goes through a 2-layer MLP and is added to the
  UNet's time embedding (`class_embed_type="identity"`), which scales and shifts every block's
  features (`resnet_time_scale_shift="scale_shift"`): cheaper on a CPU than cross-attention.
  {decoder_params:,} parameters, `decoder.safetensors` {decoder_kb:.0f} KB. Noise schedule
  `{schedule}` over {timesteps} steps; sampling with diffusers' `DDIMScheduler` (eta 0: a seed
  fixes the picture), {guidance:g}x classifier-free guidance by default.
- Prior: a residual MLP (linear + two hidden layers of {prior_hidden}) from unit text vectors to
  unit image vectors, {prior_params:,} parameters, `prior.safetensors` {prior_kb:.0f} KB.

## Data (all installable offline, the house model's training split only)

{examples:,} pictures: {sources}. Garments are the Fashion-MNIST training images, each in one of
the nine house tints (the grey garment is "white"), captioned in the house model's training
wordings and synonyms ("a product shot of a red sandal."); stamps and emoji are captioned as the
captioner's data is. Pictures are fitted to 32 px as the house image tower sees them and embedded
by it once, captions by the text tower once.

## Training (`{command}`, on 2 CPU cores)

Decoder: {steps:,} steps of {batch} pictures ({other_share:.0%} of each batch stamps and emoji),
AdamW at {lr:g} ({warmup} warm-up steps, cosine decay to a tenth; the run went 3,000 steps, then
was resumed with the schedule stretched to 6,000, a warm restart, which the make target repeats),
noise-prediction MSE with Min-SNR-{min_snr:g} weights at uniformly drawn timesteps; each picture
conditioned on its own vector plus Gaussian noise (std
{cond_noise:g} per dimension, so vectors near the pictures' still decode), replaced by a learned
null vector for {cond_drop:.0%} of each batch (for guidance); the shipped weights are the
exponential moving average (decay {ema}). {decoder_seconds:.0f} s of steps
({seconds_per_step:.2f} s a step); loss {first:.4f} over the first 100 steps, {last:.4f} over the
last 100. Prior: {prior_steps:,} steps of {prior_batch} pairs, cosine loss, {prior_seconds:.0f} s;
the mean cosine between a caption's vector and its picture's goes from {gap:.3f} (text vector as it
is) to {prior_fit:.3f} (through the prior) on the training pairs.

## Results (held-out; `jointspace eval --model house --suite generation`)

{prompts} prompts, every item x colour in wordings never used in training ("a catalogue photo of a
red dress."), {per_prompt} pictures each, {steps_eval} DDIM steps, guidance {guidance:g}; each
picture is embedded by the house image tower and classified among the 90 "<colour> <item>"
classes (prompt ensemble of the held-out wordings). Baseline: the same prompts drawn from their
text vectors as they are (no prior). Real: test images of the same item and colour, same
classifier.

| measure | prior | baseline: no prior | a real image's vector | real images | chance | target |
| --- | --- | --- | --- | --- | --- | --- |
| item | {item:.3f} | {b_item:.3f} | {rc_item:.3f} | {r_item:.3f} | 0.100 | >= 0.8 |
| colour | {colour:.3f} | {b_colour:.3f} | {rc_colour:.3f} | {r_colour:.3f} | 0.111 | >= 0.8 |
| item and colour | {both:.3f} | {b_both:.3f} | {rc_both:.3f} | {r_both:.3f} | 0.011 | |
| cosine to the prompt's vector | {cos:.3f} | | | {r_cos:.3f} | | |

"prior": drawn from the prompt through the prior; "a real image's vector": drawn from the vector
of a real test image of that item and colour (no prompt, no prior): what the decoder alone keeps
of a picture; "real images": those test images themselves.

Guidance, one picture per prompt (prior path):

| guidance | item | colour |
| --- | --- | --- |
{sweep}

Composed ("in blue instead of red" on {composed_n} red test garments, drawn): share classified as
the same item, as blue, and both, by how the terms move the vector:

| terms | weight | item | blue | both |
| --- | --- | --- | --- | --- |
{composed_rows}

The service and the CLI use the terms' prior vectors at weight {mod_weight:g}.

Held-out stamps and emoji (is the drawing nearer its caption than the other held-out captions):
stamps {tux_drawn:.3f} (real stamps {tux_real:.3f}, chance {tux_chance:.3f}), emoji
{emoji_drawn:.3f} (real {emoji_real:.3f}, chance {emoji_chance:.3f}).

![samples](samples.png)

Rows: t-shirt, trousers, pullover, dress, coat, sandal, shirt, sneaker, bag, ankle boot; columns:
white, red, orange, yellow, green, blue, purple, pink, brown ("a <colour> <item>", seed 0).

![composed](composed.png) ![others](others.png)

## What it can and cannot draw

{limits}
"""


def _params(path: Path) -> int:
    from safetensors import safe_open

    with safe_open(path, "np") as f:
        return sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())  # noqa: SIM118


def grid(rows: list[list[np.ndarray]], scale: int = 2, pad: int = 2) -> Image.Image:
    """Pictures (H, W, 3) uint8 in rows, on white, scaled up without smoothing."""
    h, w = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    out = Image.new("RGB", (cols * (w + pad) + pad, len(rows) * (h + pad) + pad), "white")
    for i, row in enumerate(rows):
        for j, px in enumerate(row):
            out.paste(Image.fromarray(px), (pad + j * (w + pad), pad + i * (h + pad)))
    return out.resize((out.width * scale, out.height * scale), Image.NEAREST)


def draw_grids(folder: Path) -> dict:
    """samples.png, composed.png and others.png in `folder`; returns the prior's fit figure."""
    from encoders import load_encoder
    from encoders.house import fit_image
    from fusion import compose, parse_modification
    from generation.decoder import load_decoder, sample
    from generation.prior import load_prior
    from housedata.sets import COLOURS, FASHION_CLASSES, fashion_mnist, tint
    from training.captioner.data import pictures

    enc, dec, prior = load_encoder("house"), load_decoder(folder), load_prior(folder)
    words = [f"a {c} {item}" for item in FASHION_CLASSES for c in COLOURS]
    px = sample(dec, prior.image_vectors(enc.embed_text(words)), seed=0)
    grid([list(px[i : i + len(COLOURS)]) for i in range(0, len(px), len(COLOURS))]).save(
        folder / "samples.png"
    )
    grey, _ = fashion_mnist("test")
    red = [Image.fromarray(tint(g, "red")) for g in grey[:10]]
    terms = parse_modification("in blue instead of red", weight=MODIFICATION_WEIGHT)
    tv = prior.image_vectors(enc.embed_text([t.text for t in terms]))
    q = np.stack([compose(v, tv, [t.weight for t in terms]) for v in enc.embed_images(red)])
    blue = sample(dec, q, seed=0)
    fitted = [np.asarray(fit_image(im, 32)) for im in red]
    grid([fitted, list(blue)]).save(folder / "composed.png")
    images, caps, _ = pictures("test", 0, 0, ("tuxpaint", "emoji"))
    pick = np.random.default_rng(0).choice(len(caps), 10, replace=False)
    drawn = sample(dec, prior.image_vectors(enc.embed_text([caps[i] for i in pick])), seed=0)
    grid([[np.asarray(fit_image(images[i], 32)) for i in pick], list(drawn)]).save(
        folder / "others.png"
    )
    return {"captions": [caps[i] for i in pick]}


def _sweep(g: dict) -> str:
    keys = [k for k in g if k.startswith("guidance") and "_" in k]
    scales = sorted({float(k[len("guidance") :].split("_")[0]) for k in keys})
    return "\n".join(f"| {s:g} | {g[f'guidance{s:g}_item@1']:.3f} | "
                     f"{g[f'guidance{s:g}_colour@1']:.3f} |" for s in scales)  # fmt: skip


def _composed(g: dict) -> str:
    rows = []
    for key in sorted(k for k in g if k.startswith("composed_") and k.endswith("_item@1")):
        run = key[len("composed_") : -len("_item@1")]  # prior_w0.5, text_w0.8
        kind, w = run.split("_w")
        terms = "prior vectors" if kind == "prior" else "text vectors (as search)"
        rows.append(f"| {terms} | {w} | {g[key]:.3f} | {g[f'composed_{run}_colour@1']:.3f} | "
                    f"{g[f'composed_{run}_both@1']:.3f} |")  # fmt: skip
    return "\n".join(rows)


def write(args: argparse.Namespace) -> Path:
    """The decoder's sample grids, then its card, from its folder's files (and LIMITS.md)."""
    folder = args.model_dir
    draw_grids(folder)
    limits = (folder / "LIMITS.md").read_text() if (folder / "LIMITS.md").is_file() else ""
    return write_card(folder, card_text(folder, limits.strip()))


def card_text(folder: Path, limits: str) -> str:
    cfg, log, losses, ev = read_json(
        folder, "config.json", "training.json", "losses.json", "eval.json"
    )
    g = ev["suites"]["generation"]
    tc = log["config"]
    dec_log, pri = log["decoder"], log["prior"]
    text = TEMPLATE.format(
        channels=", ".join(map(str, cfg["channels"])), layers=cfg["layers_per_block"],
        groups=cfg["norm_groups"], decoder_params=_params(folder / "decoder.safetensors"),
        decoder_kb=(folder / "decoder.safetensors").stat().st_size / 1024,
        schedule=cfg["beta_schedule"], timesteps=cfg["train_timesteps"], guidance=g["guidance"],
        prior_hidden=tc["prior_hidden"], prior_params=_params(folder / "prior.safetensors"),
        prior_kb=(folder / "prior.safetensors").stat().st_size / 1024,
        examples=log["examples"],
        sources=", ".join(f"{n:,} {s}" for s, n in log["sources"].items()),
        command="make house-decoder", steps=dec_log["steps"], batch=tc["batch_size"],
        other_share=tc["other_share"], min_snr=tc["min_snr"], lr=tc["lr"], warmup=tc["warmup"],
        cond_noise=tc["cond_noise"], cond_drop=tc["cond_drop"], ema=tc["ema"],
        decoder_seconds=dec_log["train_seconds"],
        seconds_per_step=dec_log["train_seconds"] / dec_log["steps"],
        first=float(np.mean(losses[:100])), last=float(np.mean(losses[-100:])),
        prior_steps=pri["steps"], prior_batch=tc["prior_batch"], prior_seconds=pri["train_seconds"],
        gap=pri["cosine_text_to_image"], prior_fit=1 - pri["final_loss"],
        prompts=g["prompts"], per_prompt=g["pictures"] // g["prompts"], steps_eval=g["steps"],
        item=g["item@1"], colour=g["colour@1"], both=g["both@1"],
        b_item=g["baseline:item@1"], b_colour=g["baseline:colour@1"], b_both=g["baseline:both@1"],
        r_item=g["real_item@1"], r_colour=g["real_colour@1"], r_both=g["real_both@1"],
        cos=g["cosine_to_prompt"], r_cos=g["real_cosine_to_prompt"],
        composed_n=g["composed_pictures"], rc_item=g["recon_item@1"],
        rc_colour=g["recon_colour@1"], rc_both=g["recon_both@1"], sweep=_sweep(g),
        composed_rows=_composed(g), mod_weight=MODIFICATION_WEIGHT,
        tux_drawn=g["tuxpaint_drawn_caption@1"], tux_real=g["tuxpaint_real_caption@1"],
        tux_chance=g["tuxpaint_chance@1"], emoji_drawn=g["emoji_drawn_caption@1"],
        emoji_real=g["emoji_real_caption@1"], emoji_chance=g["emoji_chance@1"], limits=limits,
    )  # fmt: skip
    return text


def main() -> None:
    card_main(__doc__, write)


if __name__ == "__main__":
    main()
