"""Write the house audio tower's MODEL_CARD.md from the files beside it, so no figure is typed by
hand: config.json (architecture), training.json (settings, data counts, loss curve) and eval.json
(the output of `jointspace eval --suite audio-speech --suite audio-sounds --out`).

    python -m training.audio.card models/house/audio
"""

from __future__ import annotations

import argparse
from pathlib import Path

from training.cards import card_main, cell, read_json, write_card

TEMPLATE = """# The house audio tower

The audio tower of the house model (`--model house` embeds audio when `models/house/audio`
is present). It was trained ImageBind-style: only this tower learned, against the house model's
**frozen** text and image towers, so its vectors land in the same joint space and no existing
tower or collection changed. It has heard sound effects of clip art and synthetic speech; it is
meant for the offline demo and for spoken queries of short phrases, not as a general audio model.

## Architecture

- front end: {n_mels}-band log-mel spectrogram (torchaudio), {rate} Hz, 25 ms windows every
  10 ms, standardised with the training set's mean {mel_mean:.2f} and spread {mel_std:.2f}
- a ConvNet: a strided 3x3 stem and 2x2 max-pool, then stages of widths {widths} with
  {depths} 3x3 convolutions each (BatchNorm, GELU, 2x2 max-pools between stages); frequencies
  averaged, time mean- and max-pooled, a linear projection to the {embed_dim}-d joint space
- {params:.2f} M parameters; `model.safetensors` {size_mb:.1f} MB
- long audio: windows of 10 s (a parameter), each with its own vector; the clip's vector is their
  length-weighted mean, renormalised

## Data (all installable offline)

{n_clips:,} training clips ({hours:.1f} hours) paired with {n_captions:,} distinct captions:
- the Tux Paint stamps' sound effects (`<stamp>.ogg`) with their stamp's caption and picture,
  and the English spoken descriptions (`<stamp>_desc.ogg`) with the caption (Debian
  `tuxpaint-stamps-default`, GPL-2; read at training time, never copied here). The spoken
  descriptions in some 30 other languages are not used: their words do not match the English
  captions.
- speech synthesised with Debian `espeak-ng`: {voices_desc} Voices are drawn from 8 English
  accents x {n_train_variants} voice variants with random speed (120-200 wpm) and pitch (25-80).
- held out: the stamps of the image model's test split (the same key hashing, seed 0) and the
  voice variants {held_out} (every accent), which training never hears.
- augmentation: random crop to {crop} s, a lead-in of up to 0.25 s of silence, gain -9..+6 dB,
  white noise at 5-40 dB SNR half the time.

## Training

`{command}`: {steps} steps of {batch_size} clips (distinct captions per batch), AdamW
(lr {lr}, weight decay {weight_decay}, {warmup} warm-up steps, cosine decay, gradient clipping
{grad_clip}), loss `{loss}` (InfoNCE) between audio and caption vectors plus {image_weight} x
InfoNCE between a sound and its stamp's picture. {train_time} Before the loop, decoding and
synthesising the clips takes about 5 minutes on a cold cache (they are cached on disk), and the
frozen towers' target vectors under a minute. Final training loss {final_loss:.3f}.

## Results (held-out; `jointspace eval --model house --suite audio-speech --suite audio-sounds`)

| suite | metric | value | chance | baseline |
|---|---|---|---|---|
{rows}

Held-out sets: {n_sounds} sound effects of held-out stamps, ranked against all {n_eval_captions}
stamp captions and {n_pictures} pictures; {n_spoken} spoken class names (3 wordings x 4 accents x
the 4 held-out voice variants), classified against the ten class prompts.

The baseline needs no joint space: nearest neighbour on log-mel statistics (per-band mean and
spread) against the training recordings. `train_*` rows are the same measures on the training
side, so overfitting shows.
"""


def write(args: argparse.Namespace) -> Path:
    """The audio tower's card from its folder's files."""
    d = args.model_dir
    cfg, rec, ev = read_json(d, "config.json", "training.json", "eval.json")
    tc, hist = rec["config"], rec["history"]
    from encoders.house_audio import AudioConfig, AudioTower
    from training.audio.data import HELD_OUT_VARIANTS, TRAIN_VARIANTS
    from training.metrics import metric_rows

    rows = [f"| {s} | {k} | {v:.3f} | {cell(c)} | {cell(b)} |" for s, k, v, c, b in metric_rows(ev)]
    rate = [h["clips_per_s"] for h in hist if "clips_per_s" in h]
    train_time = (
        f"The loop ran at {rate[-1]:.0f} clips/s on {rec.get('device', 'the CPU')}: "
        f"{tc['steps'] * tc['batch_size'] / rate[-1] / 60:.0f} minutes."
        if rate else ""
    )  # fmt: skip
    voices = tc["voices"]
    text = TEMPLATE.format(
        **cfg, **{k: tc[k] for k in ("steps", "batch_size", "lr", "weight_decay", "warmup",
                                      "grad_clip", "loss", "image_weight")},
        params=sum(p.numel() for p in AudioTower(AudioConfig(**cfg)).parameters()
                   if p.requires_grad) / 1e6,
        rate=cfg["sample_rate"], size_mb=(d / "model.safetensors").stat().st_size / 1e6,
        n_clips=rec["clips"], hours=rec.get("hours", 0.0), n_captions=rec["captions"],
        voices_desc=f"Fashion-MNIST item and colour phrases ({voices['fashion']} voices each), "
        f"stamp captions ({voices['stamp']} each) and emoji names ({voices['emoji']} each).",
        n_train_variants=len(TRAIN_VARIANTS), held_out=", ".join(HELD_OUT_VARIANTS),
        crop=tc["crop_seconds"], command=args.command, train_time=train_time,
        final_loss=hist[-1]["loss"], rows="\n".join(rows),
        n_sounds=ev["suites"]["audio-sounds"]["n_held_out"],
        n_eval_captions=ev["suites"]["audio-sounds"]["n_captions"],
        n_pictures=ev["suites"]["audio-sounds"]["n_pictures"],
        n_spoken=ev["suites"]["audio-speech"]["n_test"],
    )  # fmt: skip
    return write_card(d, text)


def main() -> None:
    card_main(__doc__, write, [("--command", {"default": "make house-audio"})])


if __name__ == "__main__":
    main()
