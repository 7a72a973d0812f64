"""Training the image decoder (a diffusion UNet conditioned on image vectors) and the prior.

Decoder: each step noises a batch of 32 px pictures at random DDPM timesteps (diffusers'
`DDPMScheduler.add_noise`) and regresses the noise (Min-SNR-5 weighted, which spends less of a
short run on the nearly clean timesteps), conditioned on the picture's own house
vector with a little Gaussian noise (so vectors that are near, not on, the pictures' - a prior's
output, a composed query - still decode), dropped for a share of the batch (classifier-free
guidance). An exponential moving average of the weights (torch's `AveragedModel`) is what ships.
A checkpoint every `save_every` steps makes a run resumable.

Prior: the caption vectors regress their pictures' vectors (cosine loss), on cached vectors.

Imports torch, diffusers, generation and the training data; nothing of the service or the index.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from generation.decoder import DecoderConfig, ImageDecoder, save_decoder
from generation.prior import Prior, save_prior
from training.checkpoint import Checkpoint, GeneratorLoop
from training.core import lr_at
from training.decoder.data import DecoderData


@dataclass
class DecoderTrainConfig:
    out: str = "runs/decoder"
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 100
    ema: float = 0.995
    cond_drop: float = 0.1  # share of each batch trained without its vector
    cond_noise: float = 0.01  # per-dimension std added to the vectors before normalising
    min_snr: float = 5.0  # Min-SNR loss weighting (Hang et al. 2023): min(SNR, g) / SNR per step
    other_share: float = 0.2  # of each batch drawn from the stamps and emoji (the rest: garments)
    channels: tuple[int, ...] = (32, 64, 64)
    prior_steps: int = 1500
    prior_batch: int = 256
    prior_lr: float = 1e-3
    prior_hidden: int = 1024
    seed: int = 0
    save_every: int = 250


class DecoderTrainer(GeneratorLoop):
    def __init__(self, cfg: DecoderTrainConfig, data: DecoderData, model_name: str) -> None:
        self.cfg, self.data, self.model_name = cfg, data, model_name
        torch.manual_seed(cfg.seed)
        dcfg = DecoderConfig(embed_dim=data.images.shape[1], image_size=data.pixels.shape[1],
                             channels=tuple(cfg.channels), extra={"model": model_name})  # fmt: skip
        self.decoder = ImageDecoder(dcfg)
        self.ema = AveragedModel(self.decoder, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema))
        self.opt = torch.optim.AdamW(self.decoder.parameters(), lr=cfg.lr, weight_decay=0.0)
        from diffusers import DDPMScheduler

        self.noise_schedule = DDPMScheduler(**dcfg.schedule())
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.step, self.losses, self.seconds = 0, [], 0.0
        self.weights = source_weights(data.sources, cfg.other_share)
        parts = {"decoder": self.decoder, "ema": self.ema, "opt": self.opt}
        self.checkpoint = Checkpoint(cfg.out, parts)

    def batch(self) -> tuple[torch.Tensor, ...]:
        cfg, g = self.cfg, self.gen
        idx = torch.multinomial(self.weights, cfg.batch_size, replacement=True, generator=g).numpy()
        x0 = torch.from_numpy(self.data.pixels[idx]).permute(0, 3, 1, 2).float() / 127.5 - 1
        v = torch.from_numpy(self.data.images[idx])
        v = F.normalize(v + cfg.cond_noise * torch.randn(v.shape, generator=g), dim=-1)
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, self.decoder.cfg.train_timesteps, (len(idx),), generator=g)
        keep = torch.rand(len(idx), generator=g) >= cfg.cond_drop
        return self.noise_schedule.add_noise(x0, noise, t), t, v, keep, noise

    def snr_weights(self, t: torch.Tensor) -> torch.Tensor:
        """Min-SNR-gamma weights of the noise-prediction loss at timesteps t."""
        a = self.noise_schedule.alphas_cumprod[t]
        snr = a / (1 - a)
        return snr.clamp(max=self.cfg.min_snr) / snr

    def train_step(self) -> float:
        start = time.perf_counter()
        self.decoder.train()
        xt, t, v, keep, noise = self.batch()
        for group in self.opt.param_groups:
            group["lr"] = lr_at(self.step, self.cfg, floor=0.1)
        err = (self.decoder(xt, t, v, keep) - noise).pow(2).mean(dim=(1, 2, 3))
        loss = (self.snr_weights(t) * err).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.decoder.parameters(), 1.0)
        self.opt.step()
        self.ema.update_parameters(self.decoder)
        self.step += 1
        self.losses.append(round(float(loss.detach()), 5))
        self.seconds += time.perf_counter() - start
        if self.step % self.cfg.save_every == 0 or self.step == self.cfg.steps:
            self.save_checkpoint()
        return self.losses[-1]

    def shipped(self) -> ImageDecoder:
        """The averaged weights in a plain ImageDecoder."""
        dec = ImageDecoder(self.decoder.cfg)
        dec.load_state_dict(self.ema.module.state_dict())
        return dec.eval()


def source_weights(sources: list[str], other_share: float) -> torch.Tensor:
    """Sampling weights giving the non-garment pictures `other_share` of the draws (all of them
    when there are no garments, none when there is nothing else)."""
    garment = torch.tensor([s == "fashion" for s in sources])
    n_g, n_o = int(garment.sum()), int((~garment).sum())
    if not n_g or not n_o:
        return torch.ones(len(sources))
    return torch.where(garment, (1 - other_share) / n_g, other_share / n_o)


def train_prior(data: DecoderData, cfg: DecoderTrainConfig) -> tuple[Prior, dict]:
    """The prior on cached (caption vector, picture vector) pairs; its log."""
    torch.manual_seed(cfg.seed)
    prior = Prior(data.texts.shape[1], cfg.prior_hidden)
    opt = torch.optim.AdamW(prior.parameters(), lr=cfg.prior_lr, weight_decay=0.01)
    g = torch.Generator().manual_seed(cfg.seed)
    text, image = torch.from_numpy(data.texts), torch.from_numpy(data.images)
    start, losses = time.perf_counter(), []
    sched = SimpleNamespace(lr=cfg.prior_lr, warmup=50, steps=cfg.prior_steps)
    for step in range(cfg.prior_steps):
        idx = torch.randint(len(text), (cfg.prior_batch,), generator=g)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, sched, floor=0.05)
        loss = 1 - (prior(text[idx]) * image[idx]).sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(round(float(loss.detach()), 5))
    log = {"steps": cfg.prior_steps, "train_seconds": round(time.perf_counter() - start, 1),
           "final_loss": float(np.mean(losses[-50:])),
           "cosine_text_to_image": float(np.mean(np.sum(data.texts * data.images, 1)))}  # fmt: skip
    return prior.eval(), log


def run(trainer: DecoderTrainer, progress: Callable[[dict], None] | None = None) -> Path:
    """Decoder steps until cfg.steps (from wherever a resumed run stands), then the prior; writes
    OUT/model (decoder, prior, training.json) and returns it."""
    while trainer.step < trainer.cfg.steps:
        trainer.train_step()
        if progress is not None:
            progress({"step": trainer.step, "loss": float(np.mean(trainer.losses[-20:]))})
    prior, prior_log = train_prior(trainer.data, trainer.cfg)
    folder = Path(trainer.cfg.out) / "model"
    save_decoder(folder, trainer.shipped())
    save_prior(folder, prior)
    d = trainer.data
    log = {"decoder": {"steps": trainer.step, "train_seconds": round(trainer.seconds, 1),
                       "final_loss": float(np.mean(trainer.losses[-100:])),
                       "parameters": sum(p.numel() for p in trainer.decoder.parameters())},
           "prior": prior_log, "examples": len(d.captions),
           "sources": {s: d.sources.count(s) for s in sorted(set(d.sources))},
           "model": trainer.model_name, "config": asdict(trainer.cfg)}  # fmt: skip
    (folder / "training.json").write_text(json.dumps(log, indent=2) + "\n")
    (folder / "losses.json").write_text(json.dumps(trainer.losses))
    return folder


def prior_only(data: DecoderData, cfg: DecoderTrainConfig) -> Path:
    """Retrain the prior beside the decoder already in OUT/model; returns that folder."""
    from generation.decoder import has_decoder

    folder = Path(cfg.out) / "model"
    if not has_decoder(folder):
        raise ValueError(f"no decoder in {folder}: train --target decoder first")
    prior, log = train_prior(data, cfg)
    save_prior(folder, prior)
    path = folder / "training.json"
    info = json.loads(path.read_text()) if path.is_file() else {}
    info["prior"] = log
    path.write_text(json.dumps(info, indent=2) + "\n")
    return folder
