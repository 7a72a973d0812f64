"""One function per part a model directory can train, each running that part's own trainer on a
frozen base's cached vectors and returning (the run's folder of part files, facts for the stamp).

Figures: each run keeps a tenth of its pairs (at least one, at most 200) out of training and
reports a figure on them in the part's record. Imports encoders, generation and training;
nothing of jobs, the service or the index.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from encoders.base import Encoder
from encoders.house import fit_image
from training.parts import BadData, Pairs, cached, captioned

Progress = Callable[[dict], None] | None


def held_out(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices: a tenth held out, at least one when n >= 2, at most 200."""
    order = np.random.default_rng([seed, 5]).permutation(n)
    k = min(200, max(1 if n >= 2 else 0, n // 10))
    return np.sort(order[k:]), np.sort(order[:k])


def recall_at_1(queries: np.ndarray, targets: np.ndarray) -> float:
    """Share of queries whose own target (same row) is their nearest of all targets."""
    if not len(queries):
        return float("nan")
    return float(((queries @ targets.T).argmax(1) == np.arange(len(queries))).mean())


def loop(trainer, steps: int, progress: Progress) -> None:
    """A GeneratorLoop's steps until `steps`, from wherever a resumed run stands."""
    while trainer.step < steps:
        trainer.train_step()
        if progress is not None:
            progress({"step": trainer.step, "loss": float(np.mean(trainer.losses[-20:]))})


def vectors(base: Encoder, fp: dict, pairs: Pairs, run: Path, texts: list[str] | None):
    """The base's image vectors of the pairs (and text vectors of `texts`), cached in RUN."""
    img = cached(run, fp, "image", pairs.key, lambda: base.embed_images(pairs.images))
    txt = cached(run, fp, "text", pairs.key, lambda: base.embed_text(texts)) if texts else None
    return img, txt


def train_captioner(
    base: Encoder, fp: dict, pairs: Pairs, run: Path, opts: dict, progress: Progress = None
) -> tuple[Path, dict]:
    from generation.lm import load_language_model
    from training.captioner.data import Captions
    from training.captioner.train import CaptionConfig, CaptionTrainer, caption_loss, tokenize

    caps = captioned(pairs, "captioner")
    img, txt = vectors(base, fp, pairs, run, caps)
    tr, ho = held_out(len(caps))
    data = Captions(img[tr], txt[tr], [caps[i] for i in tr], [pairs.sources[i] for i in tr])
    lm_path = opts.pop("lm", None)
    lm, tok = load_language_model(lm_path)
    cfg = CaptionConfig(out=str(run), **opts)
    trainer = CaptionTrainer(cfg, data, lm, tok, str(lm_path) if lm_path else "smollm2")
    trainer.resume()
    loop(trainer, cfg.steps, progress)
    folder = trainer.finish()
    figures = {}
    if len(ho):
        with torch.no_grad():
            ids, mask = tokenize(tok, [caps[i] for i in ho])
            v = torch.as_tensor(img[ho])
            figures["held_out_caption_loss"] = round(
                float(caption_loss(trainer.mapper.eval(), lm, v, ids, mask)), 4
            )
    facts = {
        "steps": trainer.step,
        "seconds": round(trainer.seconds, 1),
        "pairs": len(tr),
        "held_out": len(ho),
        "figures": figures,
    }
    return folder, facts


def decoder_data(base: Encoder, fp: dict, pairs: Pairs, run: Path, size: int, need_text: bool):
    from training.decoder.data import DecoderData

    caps = captioned(pairs, "prior") if need_text else None
    img, txt = vectors(base, fp, pairs, run, caps)
    pixels = np.stack([np.asarray(fit_image(im, size), np.uint8) for im in pairs.images])
    return DecoderData(
        pixels, img, txt if txt is not None else img, caps or [""] * len(img), list(pairs.sources)
    )


def prior_figures(prior, data, ho: np.ndarray) -> dict:
    """Held-out text-to-image recall@1 through the prior, and without it (the baseline)."""
    if not len(ho):
        return {}
    moved = prior.image_vectors(data.texts[ho])
    return {
        "held_out_text_to_image_recall@1": recall_at_1(moved, data.images[ho]),
        "baseline:held_out_text_to_image_recall@1": recall_at_1(data.texts[ho], data.images[ho]),
    }


def subset(data, idx: np.ndarray):
    from training.decoder.data import DecoderData

    return DecoderData(
        data.pixels[idx],
        data.images[idx],
        data.texts[idx],
        [data.captions[i] for i in idx],
        [data.sources[i] for i in idx],
    )


def train_decoder(
    base: Encoder, fp: dict, pairs: Pairs, run: Path, opts: dict, progress: Progress = None
) -> tuple[Path, dict]:
    """The decoder, then (when every picture has a caption) the prior, into RUN/model."""
    from generation.decoder import save_decoder
    from generation.prior import save_prior
    from training.decoder.train import DecoderTrainConfig, DecoderTrainer, train_prior

    size = int(opts.pop("size", 32))
    with_prior = all(c and c.strip() for c in pairs.captions)
    data = decoder_data(base, fp, pairs, run, size, with_prior)
    tr, ho = held_out(len(data.captions))
    cfg = DecoderTrainConfig(out=str(run), **opts)
    trainer = DecoderTrainer(cfg, subset(data, tr), base.name)
    trainer.resume()
    loop(trainer, cfg.steps, progress)
    folder = run / "model"
    save_decoder(folder, trainer.shipped())
    facts = {
        "steps": trainer.step,
        "seconds": round(trainer.seconds, 1),
        "pictures": len(tr),
        "size": size,
        "final_loss": float(np.mean(trainer.losses[-20:])),
    }
    if with_prior:
        prior, log = train_prior(subset(data, tr), cfg)
        save_prior(folder, prior)
        facts["prior"] = {
            "steps": log["steps"],
            "seconds": log["train_seconds"],
            "figures": prior_figures(prior, data, ho),
        }
    return folder, facts


def train_prior_alone(
    base: Encoder, fp: dict, pairs: Pairs, run: Path, opts: dict, decoder_folder: Path
) -> tuple[Path, dict]:
    """The prior beside the model's decoder: its config is carried into RUN/model first, so
    that installing the prior keeps the decoder's."""
    import shutil

    from generation.prior import save_prior
    from training.decoder.train import DecoderTrainConfig, train_prior

    data = decoder_data(base, fp, pairs, run, 8, need_text=True)
    tr, ho = held_out(len(data.captions))
    cfg = DecoderTrainConfig(out=str(run), **{k: v for k, v in opts.items() if k != "size"})
    folder = run / "model"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(decoder_folder / "config.json", folder / "config.json")
    prior, log = train_prior(subset(data, tr), cfg)
    save_prior(folder, prior)
    keep = folder / "keep"  # only the prior's files are installed
    keep.mkdir(exist_ok=True)
    for name in ("config.json", "prior.safetensors"):
        shutil.copy2(folder / name, keep / name)
    facts = {
        "steps": log["steps"],
        "seconds": log["train_seconds"],
        "pairs": len(tr),
        "held_out": len(ho),
        "figures": prior_figures(prior, data, ho),
    }
    return keep, facts


def train_temporal(base: Encoder, opts: dict, run: Path, progress: Progress = None):
    """The temporal head on the house's rendered clips (the `clips` preset), embedded by the
    base's image tower."""
    from training.temporal.train import TemporalTrainConfig, save_run
    from training.temporal.train import train_temporal as train

    cfg = TemporalTrainConfig(out=str(run), **opts)
    if cfg.clips < cfg.batch_size:
        raise BadData(
            f"the temporal head trains on batches of {cfg.batch_size} clips; "
            f"--limit {cfg.clips} gives fewer"
        )
    report = (lambda step, loss: progress({"step": step + 1, "loss": loss})) if progress else None
    head, log = train(base, cfg, report)
    folder = run / "model"
    save_run(head, log, folder)
    facts = {
        "steps": cfg.steps,
        "seconds": log["train_seconds"],
        "clips": cfg.clips,
        "final_loss": log["last_loss"],
    }
    return folder, facts


def clips_of(waves: list[np.ndarray], captions: list[str]):
    """Decoded clips and their captions as the audio trainer's Clips (no pictures)."""
    from training.audio.data import KINDS, Clips

    names = list(dict.fromkeys(captions))
    index = {c: i for i, c in enumerate(names)}
    pcm = [(np.clip(w, -1, 1) * 32767).astype(np.int16) for w in waves]
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in pcm])]).astype(np.int64)
    n = len(pcm)
    return Clips(
        np.concatenate(pcm),
        offsets,
        np.array([index[c] for c in captions], np.int64),
        np.full(n, -1, np.int64),
        np.full(n, KINDS.index("speech"), np.int64),
        names,
    )


def train_audio(
    base: Encoder, fp: dict, pairs: Pairs | None, run: Path, opts: dict, progress: Progress = None
) -> tuple[Path, dict]:
    """The audio tower on the pairs' clips against the base's caption vectors (or, with no pairs,
    on the house audio data), into RUN/model/audio."""
    from training.audio.train import AudioTrainConfig, AudioTrainer

    cfg = AudioTrainConfig(out=str(run), cache_dir=str(run / "cache"), **opts)
    clips, figures, ho_idx = None, {}, np.zeros(0, int)
    if pairs is not None:
        caps = captioned(pairs, "audio")
        tr, ho_idx = held_out(len(caps))
        clips = clips_of([pairs.clips[i] for i in tr], [caps[i] for i in tr])
    trainer = AudioTrainer(cfg, log=lambda *a, **k: None, enc=base, clips=clips)
    if len(trainer.clips.captions) < 2:
        raise BadData(
            f"{pairs.source if pairs else 'the data'}: the audio tower trains on at "
            "least two distinct captions"
        )
    trainer.resume()
    t0 = time.perf_counter()
    history = trainer.run(progress=progress)
    if len(ho_idx):
        tower = trainer.tower.eval().to("cpu")
        with torch.no_grad():
            audio = torch.nn.functional.normalize(
                tower.embed_clips([torch.from_numpy(pairs.clips[i]) for i in ho_idx]), dim=-1
            ).numpy()
        text = base.embed_text([caps[i] for i in ho_idx])
        figures = {
            "held_out_audio_to_caption_recall@1": recall_at_1(audio, text),
            "chance@1": 1 / len(ho_idx),
        }
    facts = {
        "steps": trainer.step,
        "seconds": round(time.perf_counter() - t0, 1),
        "clips": len(trainer.clips),
        "held_out": len(ho_idx),
        "final_loss": round(history[-1]["loss"], 4) if history else None,
        "figures": figures,
    }
    return run / "model" / "audio", facts
