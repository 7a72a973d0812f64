"""Training an audio tower against a frozen base's text (and image) towers (ImageBind-style): the
house towers on the house audio data by default, or any base on the clips a caller gives.

The text tower's vector of every caption and the image tower's vector of every stamp are computed
once; only the audio tower and the loss temperature train, so the joint space and every existing
collection stay as they are. The loss is the project's own (InfoNCE or sigmoid, training.losses)
between audio and caption vectors, plus `image_weight` x InfoNCE between a stamp's sound and its
picture. Each batch holds distinct captions (many voices say the same phrase; two of them in one
batch would be false negatives). The batch of a step depends only on seed and step, so a resumed
run sees the same data. Reuses the image trainer's optimiser, schedule, step and checkpoint code.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from encoders.base import Encoder
from encoders.fingerprint import fingerprint
from encoders.house import HouseEncoder, default_house_dir
from encoders.house_audio import AudioConfig, AudioTower, save_audio_tower
from training.audio.data import KINDS, RATE, Clips, build_clips, stamps
from training.checkpoint import Checkpoint
from training.core import load_options, lr_at, param_groups, train_step
from training.losses import ClipLoss, make_loss


@dataclass
class AudioTrainConfig:
    house: str = ""  # the house model directory the tower joins ("" = the shipped one)
    loss: str = "clip"  # clip | siglip
    batch_size: int = 128
    steps: int = 3000
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: int = 200
    grad_clip: float = 1.0
    seed: int = 0
    crop_seconds: float = 3.0
    image_weight: float = 0.5
    # how often a batch slot draws each kind of clip: sound effect, spoken description, speech
    kind_weights: list[float] = field(default_factory=lambda: [0.15, 0.05, 0.8])
    voices: dict[str, int] = field(default_factory=lambda: {"stamp": 3, "fashion": 4, "emoji": 2})
    widths: list[int] = field(default_factory=lambda: [16, 32, 64, 128, 256])
    depths: list[int] = field(default_factory=lambda: [1, 1, 1, 2, 2])
    eval_every: int = 500
    save_every: int = 500
    out: str = "runs/house-audio"
    cache_dir: str = "~/.cache/jointspace"
    #: train on the first `limit` clips only, for quick test runs (None: all of them)
    limit: int | None = None

    @classmethod
    def load(cls, path: str | None = None, **overrides) -> AudioTrainConfig:
        """Defaults, then a TOML or JSON file, then explicit overrides (None means unset)."""
        return load_options(cls, path, overrides, "audio training")


class AudioToSpace(nn.Module):
    """The audio tower beside fixed tables of caption and stamp-image vectors."""

    def __init__(self, tower: AudioTower, text: torch.Tensor, image: torch.Tensor) -> None:
        super().__init__()
        self.tower = tower
        self.register_buffer("text", text, persistent=False)
        self.register_buffer("image", image, persistent=False)

    def forward(self, wave: torch.Tensor, caption: torch.Tensor, image: torch.Tensor):
        audio = F.normalize(self.tower(wave), dim=-1)
        has = image >= 0
        return audio, self.text[caption], self.image[image.clamp_min(0)], has.float()


class AudioLoss(nn.Module):
    """Audio-caption loss plus `weight` x InfoNCE between sounds and their stamps' pictures."""

    def __init__(self, main: nn.Module, weight: float) -> None:
        super().__init__()
        self.main, self.weight = main, weight
        self.image_loss = ClipLoss()

    def scale(self) -> torch.Tensor:
        return self.main.scale()

    def forward(self, audio, text, image, has) -> torch.Tensor:
        loss = self.main(audio, text)
        rows = has > 0.5
        if self.weight and int(rows.sum()) >= 2:
            loss = loss + self.weight * self.image_loss(audio[rows], image[rows])
        return loss


def target_vectors(enc: Encoder, captions: list[str], cache_dir: Path) -> np.ndarray:
    """The frozen text tower's vector of every caption (cached per base fingerprint and
    captions)."""
    key = hashlib.sha256((f"{fingerprint(enc)['digest']}\n" + "\n".join(captions)).encode())
    path = cache_dir.expanduser() / f"text-{key.hexdigest()[:20]}.npy"
    if path.is_file():
        return np.load(path)
    vecs = enc.embed_text(captions)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path.with_suffix(".tmp.npy"), vecs)
    os.replace(path.with_suffix(".tmp.npy"), path)
    return vecs


def stamp_vectors(enc: Encoder, needed: np.ndarray) -> np.ndarray:
    """The frozen image tower's vector of each stamp the clips name (rows of the others stay 0;
    one zero row when they name none)."""
    from encoders.decode import decode_image

    if not len(needed):
        return np.zeros((1, enc.dim), np.float32)
    every = stamps()
    out = np.zeros((len(every), enc.dim), np.float32)
    if len(needed):
        out[needed] = enc.embed_images([decode_image(every[i].png) for i in needed])
    return out


def augment(wave: np.ndarray, rng: np.random.Generator, crop: int) -> np.ndarray:
    """Random crop to `crop` samples, a lead-in of silence (time shift), gain, and noise."""
    if len(wave) > crop:
        start = int(rng.integers(len(wave) - crop + 1))
        wave = wave[start : start + crop]
    lead = int(rng.integers(0, RATE // 4))
    wave = np.concatenate([np.zeros(lead, np.float32), wave])[:crop]
    wave = wave * np.float32(10 ** (rng.uniform(-9, 6) / 20))
    if rng.random() < 0.5:
        power = float(np.mean(wave**2)) + 1e-8
        snr = rng.uniform(5, 40)
        wave = wave + rng.normal(0, np.sqrt(power / 10 ** (snr / 10)), len(wave)).astype(np.float32)
    return np.clip(wave, -1, 1)


def pad_batch(waves: list[np.ndarray]) -> torch.Tensor:
    out = np.zeros((len(waves), max(len(w) for w in waves)), np.float32)
    for i, w in enumerate(waves):
        out[i, : len(w)] = w
    return torch.from_numpy(out)


class AudioTrainer:
    """The tower against `enc` (default: the house towers) on `clips` (default: the house audio
    data, which also gives the spoken-class probe reported at each evaluation)."""

    def __init__(self, cfg: AudioTrainConfig, log=print, enc: Encoder | None = None,
                 clips: Clips | None = None) -> None:  # fmt: skip
        self.cfg, self.log = cfg, log
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        torch.manual_seed(cfg.seed)
        if enc is None:
            path = Path(cfg.house) if cfg.house else default_house_dir()
            enc = HouseEncoder(path, str(self.device))
        self.preset = clips is None
        self.clips = clips or build_clips(
            "train", cfg.seed, cfg.voices, cache_dir=cfg.cache_dir, limit=cfg.limit
        )
        cache = Path(cfg.cache_dir)
        text = target_vectors(enc, self.clips.captions, cache)
        images = stamp_vectors(enc, np.unique(self.clips.image[self.clips.image >= 0]))
        self.acfg = AudioConfig(
            embed_dim=enc.dim, sample_rate=RATE, widths=list(cfg.widths), depths=list(cfg.depths)
        )
        self._mel_stats()
        self.tower = AudioTower(self.acfg)
        self.model = AudioToSpace(self.tower, torch.from_numpy(text), torch.from_numpy(images))
        self.model.to(self.device)
        self.loss_fn = AudioLoss(make_loss(cfg.loss), cfg.image_weight).to(self.device)
        self.opt = torch.optim.AdamW(
            param_groups([self.tower, self.loss_fn], cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98)
        )
        self.step, self.history = 0, []
        self.out = Path(cfg.out)
        parts = {"tower": self.tower, "loss": self.loss_fn, "opt": self.opt}
        self.checkpoint = Checkpoint(self.out, parts, asdict(cfg), self.device)
        kinds = self.clips.kind
        counts = np.bincount(kinds, minlength=len(KINDS)).astype(np.float64)
        w = np.array(cfg.kind_weights, np.float64)[kinds] / np.maximum(counts[kinds], 1)
        self.weights = w / w.sum()
        self.probe, self.class_vecs = None, None
        if self.preset:
            from housedata.sets import EVAL_TEMPLATES, FASHION_CLASSES
            from training.metrics import class_vectors

            self.class_vecs = class_vectors(enc, FASHION_CLASSES, EVAL_TEMPLATES)

    def _mel_stats(self) -> None:
        """Mean and spread of the log-mel features over a sample of the training clips."""
        rng = np.random.default_rng(self.cfg.seed)
        tower = AudioTower(self.acfg)
        idx = rng.choice(len(self.clips), min(256, len(self.clips)), replace=False)
        with torch.no_grad():
            mels = [torch.log(tower.mel(torch.from_numpy(self.clips.clip(i))) + 1e-6) for i in idx]
        allm = torch.cat([m.flatten() for m in mels])
        self.acfg.mel_mean, self.acfg.mel_std = float(allm.mean()), float(allm.std())

    def batch(self, step: int) -> tuple[torch.Tensor, ...]:
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, step, 3])
        draw = rng.choice(len(self.clips), 3 * cfg.batch_size, p=self.weights)
        _, first = np.unique(self.clips.caption[draw], return_index=True)
        idx = draw[np.sort(first)][: cfg.batch_size]
        crop = int(cfg.crop_seconds * RATE)
        waves = [augment(self.clips.clip(i), rng, crop) for i in idx]
        return (
            pad_batch(waves),
            torch.from_numpy(self.clips.caption[idx]),
            torch.from_numpy(self.clips.image[idx]),
        )

    # -- checkpoints ---------------------------------------------------------------------------
    def save(self) -> None:
        self.checkpoint.save(step=self.step, history=self.history,
                             audio_config=asdict(self.acfg))  # fmt: skip

    def resume(self) -> bool:
        state = self.checkpoint.restore()
        if state is None:
            return False
        self.acfg = AudioConfig(**state["audio_config"])
        self.tower.cfg = self.acfg
        self.step, self.history = state["step"], state["history"]
        return True

    # -- the loop ------------------------------------------------------------------------------
    def run(self, progress=None) -> list[dict]:
        cfg, t0, seen = self.cfg, time.time(), 0
        while self.step < cfg.steps:
            for g in self.opt.param_groups:
                g["lr"] = lr_at(self.step, cfg)
            inputs = tuple(x.to(self.device) for x in self.batch(self.step))
            self.model.train()
            loss = train_step(
                self.model, self.loss_fn, self.opt, inputs, cfg.grad_clip, self.device
            )
            self.step += 1
            seen += len(inputs[0])
            rec = {"step": self.step, "loss": loss, "lr": lr_at(self.step - 1, cfg)}
            if self.step % cfg.eval_every == 0 or self.step == cfg.steps:
                rec["clips_per_s"] = seen / (time.time() - t0)
                if self.preset:
                    rec["spoken_top1"] = self.quick_spoken()
            self.history.append(rec)
            if progress:
                progress(rec)
            if self.step % cfg.save_every == 0 or self.step == cfg.steps:
                self.save()
        self.export(self.out / "model" / "audio")
        return self.history

    @torch.no_grad()
    def quick_spoken(self) -> float:
        """Fashion class top-1 of spoken class names in voices training never hears."""
        from training.audio.eval import spoken_fashion_set

        if self.probe is None:
            self.probe = spoken_fashion_set("test", templates=1, langs=2)
        waves, labels = self.probe
        self.tower.eval()
        audio = torch.cat(
            [
                F.normalize(self.tower(torch.from_numpy(w)[None].to(self.device)), dim=-1)
                for w in waves
            ]
        )
        text = self.model.text.new_tensor(self.class_vecs)
        return float(((audio @ text.T).argmax(1).cpu().numpy() == labels).mean())

    def export(self, path: Path) -> None:
        """The tower as `<house dir>/audio` material: config, weights, training record."""
        save_audio_tower(path, self.acfg, self.tower)
        record = {"config": asdict(self.cfg), "audio_config": asdict(self.acfg),
                  "clips": len(self.clips), "captions": len(self.clips.captions),
                  "hours": len(self.clips.audio) / RATE / 3600, "device": str(self.device),
                  "history": self.history}  # fmt: skip
        (path / "training.json").write_text(json.dumps(record, indent=1) + "\n")
