"""The house towers' trainer: contrastive training of two towers with InfoNCE or sigmoid loss.

Owns the loop (with training.core's AdamW, warm-up and cosine schedule and step, and
training.checkpoint's checkpoints): evaluation and a checkpoint every N steps, resume at the same
step with the same batches (the data depends only on seed and step), and data-parallel training
under torchrun (DDP, one process per GPU; gloo on CPU).
The house model's MiniLM trunk is locked (LiT-style): its embedding of every caption in the
mixture is computed once, cached on disk, and only the head trains.
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

from encoders.house import HouseConfig, ImageTower, MiniLM, TextHead, pixels_to_tensor, save_house
from training.checkpoint import Checkpoint
from training.core import distributed, load_options, lr_at, param_groups, train_step
from training.losses import ClipLoss, Matryoshka, make_loss
from training.towers.mixture import Mixture, resize_grey


@dataclass
class TrainConfig:
    model: str = "house"
    data: list[str] = field(default_factory=lambda: ["fashion-mnist", "tuxpaint", "emoji"])
    loss: str = "siglip"  # siglip | clip
    batch_size: int = 256  # per process
    steps: int = 1500
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: int = 150
    grad_clip: float = 1.0
    seed: int = 0
    repeat: int = 8  # how often each fixed-caption set appears per epoch
    eval_every: int = 500
    save_every: int = 500
    out: str = "runs/house"
    embed_dim: int = 256
    widths: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    depths: list[int] = field(default_factory=lambda: [1, 1, 2, 2])
    chunk_size: int | None = None  # chunked sigmoid loss
    # Weight of an InfoNCE term between two views of the same image (another tint of the same
    # garment): it keeps instance identity in the joint space, which "this, but in blue" needs.
    instance_weight: float = 0.5
    local_loss: bool = False  # InfoNCE over local rows only (multi-process)
    # Matryoshka: the loss summed over these prefixes of the vectors (and the whole), so that
    # `dimensions` may truncate to them; the model's config.json records them
    matryoshka: list[int] = field(default_factory=list)
    cache_dir: str = "~/.cache/jointspace"

    @classmethod
    def load(cls, path: str | None = None, **overrides) -> TrainConfig:
        """Defaults, then a TOML or JSON file, then explicit overrides (None means unset)."""
        cfg = load_options(cls, path, overrides, "training")
        if cfg.model != "house":
            raise ValueError(
                f"jointspace train trains the house towers (model = 'house'), not {cfg.model!r}"
            )
        return cfg


class HouseTowers(nn.Module):
    """The trainable parts of the house model over a cached table of MiniLM caption vectors."""

    def __init__(self, cfg: HouseConfig, caption_vectors: torch.Tensor) -> None:
        super().__init__()
        self.cfg = cfg
        self.image = ImageTower(cfg)
        self.text = TextHead(cfg)
        self.register_buffer("captions", caption_vectors, persistent=False)

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image(pixels), dim=-1)

    def text_features(self, caption_ids: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text(self.captions[caption_ids]), dim=-1)

    def forward(self, pixels: torch.Tensor, caption_ids: torch.Tensor, second=None):
        img, txt = self.image_features(pixels), self.text_features(caption_ids)
        return (img, txt) if second is None else (img, txt, self.image_features(second))


class WithInstanceTerm(nn.Module):
    """The image-text loss plus `weight` x InfoNCE between two views of each image."""

    def __init__(self, main: nn.Module, weight: float) -> None:
        super().__init__()
        self.main, self.weight = main, weight
        self.instance = ClipLoss()

    def scale(self) -> torch.Tensor:
        return self.main.scale()

    def forward(self, img: torch.Tensor, txt: torch.Tensor, img2: torch.Tensor | None = None):
        loss = self.main(img, txt)
        if img2 is not None:
            loss = loss + self.weight * self.instance(img, img2)
        return loss


def cached_caption_vectors(
    captions: list[str], cache_dir: Path, device: torch.device
) -> torch.Tensor:
    """MiniLM vectors of every caption, computed once per caption list and kept on disk."""
    key = hashlib.sha256("\n".join(captions).encode()).hexdigest()[:20]
    path = cache_dir.expanduser() / f"minilm-{key}.npy"
    if path.is_file():
        return torch.from_numpy(np.load(path))
    trunk = MiniLM(device)
    vecs = torch.cat(
        [trunk.embed(captions[i : i + 256]).cpu() for i in range(0, len(captions), 256)]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vecs.numpy())
    os.replace(tmp, path)
    return vecs


class Trainer:
    def __init__(self, cfg: TrainConfig, log=print) -> None:
        self.cfg = cfg
        self.log = log
        self.rank, self.world, self.device = distributed()
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        self.hcfg = HouseConfig(
            embed_dim=cfg.embed_dim, widths=list(cfg.widths), depths=list(cfg.depths),
            loss="sigmoid" if cfg.loss == "siglip" else "softmax",
            matryoshka=sorted(set(cfg.matryoshka) | {cfg.embed_dim}) if cfg.matryoshka else [],
        )  # fmt: skip
        if any(not 1 <= d <= cfg.embed_dim for d in cfg.matryoshka):
            raise ValueError(f"matryoshka dimensions must be from 1 to {cfg.embed_dim}, not "
                             f"{cfg.matryoshka}")  # fmt: skip
        self.mixture = Mixture(self.hcfg, cfg.data, seed=cfg.seed, repeat=cfg.repeat)
        vecs = cached_caption_vectors(self.mixture.captions, Path(cfg.cache_dir), self.device)
        self.towers = HouseTowers(self.hcfg, vecs).to(self.device)
        main = make_loss(cfg.loss, chunk_size=cfg.chunk_size, local_loss=cfg.local_loss)
        outer = Matryoshka(main, cfg.matryoshka) if cfg.matryoshka else main
        weight = cfg.instance_weight
        self.loss_fn = WithInstanceTerm(outer, weight) if weight else outer
        self.loss_fn.to(self.device)
        self.main_loss = main
        self.model: nn.Module = self.towers
        if self.world > 1:
            self.model = nn.parallel.DistributedDataParallel(self.towers)
        self.opt = torch.optim.AdamW(
            param_groups([self.towers, self.loss_fn], cfg.weight_decay),
            lr=cfg.lr,
            betas=(0.9, 0.98),
        )
        self.step = 0
        self.out = Path(cfg.out)
        self.history: list[dict] = []
        parts = {"towers": self.towers, "loss": self.loss_fn, "opt": self.opt}
        self.checkpoint = Checkpoint(self.out, parts, asdict(cfg), self.device)

    # -- checkpoints ---------------------------------------------------------------------------
    def save(self) -> None:
        if not self.rank:
            self.checkpoint.save(step=self.step, history=self.history)

    def resume(self) -> bool:
        state = self.checkpoint.restore()
        if state is None:
            return False
        self.step, self.history = state["step"], state["history"]
        return True

    # -- the loop ------------------------------------------------------------------------------
    def batch_indices(self, step: int) -> np.ndarray:
        """This rank's sample indices for a step: a fixed permutation per epoch, sliced."""
        cfg, n = self.cfg, len(self.mixture)
        per_step = cfg.batch_size * self.world
        start = step * per_step + self.rank * cfg.batch_size
        epoch, pos = divmod(start, n)
        order = self.mixture.order(epoch)
        idx = order[pos : pos + cfg.batch_size]
        if len(idx) < cfg.batch_size:  # wrap into the next epoch
            idx = np.concatenate([idx, self.mixture.order(epoch + 1)[: cfg.batch_size - len(idx)]])
        return idx

    def run(self, stop_at: int | None = None, progress=None) -> list[dict]:
        cfg = self.cfg
        end = min(cfg.steps, stop_at) if stop_at is not None else cfg.steps
        t0, seen = time.time(), 0
        while self.step < end:
            for g in self.opt.param_groups:
                g["lr"] = lr_at(self.step, cfg)
            two = cfg.instance_weight > 0
            pixels, caps, second = self.mixture.batch(self.batch_indices(self.step), self.step, two)
            inputs = [pixels_to_tensor(pixels, self.hcfg), torch.from_numpy(caps)]
            if two:
                inputs.append(pixels_to_tensor(second, self.hcfg))
            inputs = tuple(x.to(self.device, non_blocking=True) for x in inputs)
            self.model.train()
            loss = train_step(
                self.model, self.loss_fn, self.opt, inputs, cfg.grad_clip, self.device
            )
            self.step += 1
            seen += len(caps) * self.world
            rec = {"step": self.step, "loss": loss, "lr": lr_at(self.step - 1, cfg)}
            if self.step % cfg.eval_every == 0 or self.step == cfg.steps:
                rec["zero_shot_top1"] = self.quick_zero_shot()
                rec["samples_per_s"] = seen / (time.time() - t0)
            self.history.append(rec)
            if progress:
                progress(rec)
            if self.step % cfg.save_every == 0 or self.step == end:
                self.save()
        if self.step == cfg.steps and self.rank == 0:
            self.export(self.out / "model")
        return self.history

    @torch.no_grad()
    def quick_zero_shot(self, n: int = 2000) -> float:
        """Top-1 on the first n Fashion-MNIST test images with held-out prompt wordings."""
        from housedata.sets import EVAL_TEMPLATES, FASHION_CLASSES, fashion_mnist

        self.towers.eval()
        grey, labels = fashion_mnist("test")
        rgb = np.repeat(resize_grey(grey[:n], self.hcfg.image_size)[..., None], 3, axis=-1)
        img = self.towers.image_features(pixels_to_tensor(rgb, self.hcfg).to(self.device))
        prompts = [t.format(c) for c in FASHION_CLASSES for t in EVAL_TEMPLATES]
        # The trunk is frozen: its prompt vectors are the same at every evaluation (cached).
        vecs = cached_caption_vectors(prompts, Path(self.cfg.cache_dir), self.device)
        txt = self.towers.text.forward(vecs.to(self.device))
        txt = F.normalize(txt, dim=-1).view(len(FASHION_CLASSES), len(EVAL_TEMPLATES), -1)
        classes = F.normalize(txt.mean(1), dim=-1)
        pred = (img @ classes.T).argmax(1).cpu().numpy()
        return float((pred == labels[:n]).mean())

    def export(self, path: Path) -> None:
        """The trained towers as a house model directory (loadable as house:PATH)."""
        self.hcfg.logit_scale = float(self.main_loss.scale().detach())
        if hasattr(self.main_loss, "logit_bias"):
            self.hcfg.logit_bias = float(self.main_loss.logit_bias.detach())
        save_house(path, self.hcfg, self.towers.image, self.towers.text)
        (path / "training.json").write_text(
            json.dumps({"config": asdict(self.cfg), "history": self.history}, indent=1) + "\n"
        )
