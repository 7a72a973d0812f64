"""Training the captioner's mapper against the frozen language model.

Each step takes a batch of captions, each conditioned on its picture's vector or (a share set by
`text_share`, half by default) on the caption's own text vector plus Gaussian noise (CapDec),
whose scale by default makes
cos(noisy, clean) match the mean picture-to-caption cosine of the data (the modality gap); the
loss is the language model's cross-entropy on the caption's tokens and its end token after the
prefix. Only the mapper learns. A checkpoint every `save_every` steps makes a run resumable.

Imports torch, generation and the training data, nothing of the service or the index.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from generation.captioner import Captioner, Mapper
from training.captioner.data import Captions
from training.checkpoint import Checkpoint, GeneratorLoop
from training.core import lr_at


@dataclass
class CaptionConfig:
    out: str = "runs/captioner"
    steps: int = 700  # what models/house/captioner was trained for
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 50
    prefix: int = 4
    hidden: int = 1024
    text_share: float = 0.5  # of each batch conditioned on noisy text vectors (CapDec)
    noise: float | None = None  # per-dimension std; None: matched to the modality gap
    seed: int = 0
    save_every: int = 100


def gap_noise(c: Captions) -> float:
    """The per-dimension noise std that puts a text vector as far from itself as the pictures
    are from their captions: cos = 1 / sqrt(1 + d * std^2)."""
    cos = float(np.clip(np.mean(np.sum(c.images * c.texts, axis=1)), 0.05, 0.99))
    return math.sqrt((1 / cos**2 - 1) / c.images.shape[1])


def tokenize(tok, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask) padded on the right, each caption followed by the end token."""
    seqs = [[*tok(c, add_special_tokens=False).input_ids, tok.eos_token_id] for c in captions]
    n = max(map(len, seqs))
    ids = torch.full((len(seqs), n), tok.eos_token_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)], mask[i, : len(s)] = torch.tensor(s), 1
    return ids, mask


def caption_loss(mapper: Mapper, lm: nn.Module, v: torch.Tensor, ids: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """The language model's cross-entropy on the caption tokens after the vectors' prefix."""
    prefix = mapper(nn.functional.normalize(v, dim=1))
    x = torch.cat([prefix, lm.get_input_embeddings()(ids)], dim=1)
    att = torch.cat([torch.ones(prefix.shape[:2], dtype=torch.long), mask], dim=1)
    logits = lm(inputs_embeds=x, attention_mask=att).logits[:, prefix.shape[1] - 1 : -1]
    labels = ids.masked_fill(mask == 0, -100)
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


def conditioning(c: Captions, idx: np.ndarray, cfg: CaptionConfig, noise: float,
                 gen: torch.Generator) -> torch.Tensor:  # fmt: skip
    """Picture vectors for part of the batch, noisy text vectors for the rest."""
    img = torch.as_tensor(c.images[idx])
    txt = torch.as_tensor(c.texts[idx])
    txt = txt + noise * torch.randn(txt.shape, generator=gen)
    use_text = torch.rand(len(idx), generator=gen) < cfg.text_share
    return torch.where(use_text[:, None], txt, img)


class CaptionTrainer(GeneratorLoop):
    def __init__(self, cfg: CaptionConfig, data: Captions, lm: nn.Module, tok, lm_name: str,
                 log: Callable[[str], None] = print) -> None:  # fmt: skip
        self.cfg, self.data, self.lm, self.tok = cfg, data, lm, tok
        self.lm_name, self.log = lm_name, log
        torch.manual_seed(cfg.seed)
        self.mapper = Mapper(data.images.shape[1], lm.get_input_embeddings().embedding_dim,
                             cfg.prefix, cfg.hidden)  # fmt: skip
        self.opt = torch.optim.AdamW(self.mapper.parameters(), lr=cfg.lr, weight_decay=0.01)
        self.noise = cfg.noise if cfg.noise is not None else gap_noise(data)
        self.step, self.losses, self.seconds = 0, [], 0.0
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.lm.requires_grad_(False)
        self.checkpoint = Checkpoint(cfg.out, {"mapper": self.mapper, "opt": self.opt})

    def train_step(self) -> float:
        start = time.perf_counter()
        self.mapper.train()
        idx = torch.randint(
            len(self.data.captions), (self.cfg.batch_size,), generator=self.gen
        ).numpy()
        ids, mask = tokenize(self.tok, [self.data.captions[i] for i in idx])
        v = conditioning(self.data, idx, self.cfg, self.noise, self.gen)
        for group in self.opt.param_groups:
            group["lr"] = lr_at(self.step, self.cfg, floor=0.1)  # cosine decay to a tenth
        loss = caption_loss(self.mapper, self.lm, v, ids, mask)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.step += 1
        self.losses.append(round(float(loss.detach()), 4))
        self.seconds += time.perf_counter() - start
        if self.step % self.cfg.save_every == 0 or self.step == self.cfg.steps:
            self.save_checkpoint()
        return self.losses[-1]

    def captioner(self) -> Captioner:
        info = {"steps": self.step, "train_seconds": round(self.seconds, 1),
                "final_loss": float(np.mean(self.losses[-50:])) if self.losses else None,
                "noise_std": self.noise, "examples": len(self.data.captions),
                "sources": {s: self.data.sources.count(s) for s in sorted(set(self.data.sources))},
                "config": asdict(self.cfg)}  # fmt: skip
        return Captioner(
            self.mapper, self.lm, self.tok, self.data.images.shape[1], self.lm_name, info
        )

    def finish(self) -> Path:
        folder = Path(self.cfg.out) / "model"
        self.captioner().save(folder)
        (folder / "losses.json").write_text(json.dumps(self.losses))
        return folder


def run(trainer: CaptionTrainer, progress: Callable[[dict], None] | None = None) -> Path:
    """Steps until cfg.steps (from wherever a resumed run stands), then the model folder."""
    while trainer.step < trainer.cfg.steps:
        trainer.train_step()
        if progress is not None:
            progress({"step": trainer.step, "loss": float(np.mean(trainer.losses[-20:]))})
    return trainer.finish()
