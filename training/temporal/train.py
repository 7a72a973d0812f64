"""Training the temporal head over frozen frame and caption vectors.

The clips of training.temporal.data are rendered once and their frames embedded once by the house
image tower, their captions (and reversed captions) by the text tower; each step then costs only
the head. The loss (`loss_of`) teaches order: each change clip must be nearer its caption than the
reversed one ("from blue to red" for a red-to-blue clip), while an anchor keeps every clip's
vector near the mean of its frames', so the head adds order to mean pooling and stays in the image
space. Still-coloured clips, with nothing to order, are held to mean pooling.

Imports torch, encoders and the training data; nothing of the service or the index.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from encoders.base import Encoder
from encoders.house import HouseEncoder, pixels_to_tensor
from encoders.temporal import TemporalConfig, TemporalHead, save_temporal_head
from housedata.clips import ClipSpec, render
from housedata.sets import fashion_mnist
from training.core import lr_at
from training.temporal.data import caption, reversed_spec, sample_specs, train_pairs


@dataclass
class TemporalTrainConfig:
    out: str = "runs/temporal"
    clips: int = 12_000
    steps: int = 800
    batch_size: int = 256
    lr: float = 1e-3
    warmup: int = 100
    order_scale: float = 100.0
    anchor_weight: float = 5.0  # keeps a clip's vector near the mean of its frames'
    nce_weight: float = 0.0  # InfoNCE between clips and captions (off: see loss_of)
    scale: float = 20.0  # InfoNCE's logit scale
    layers: int = 2
    heads: int = 4
    ff: int = 512
    max_frames: int = 32
    seed: int = 0


@dataclass
class ClipSet:
    """Clips as padded frame vectors (n, T, d) with a padding mask, and per clip its caption's
    and its reversed caption's vectors (a still clip's reversed caption is its own caption)."""

    specs: list[ClipSpec]
    frames: np.ndarray
    pad: np.ndarray
    captions: list[str]
    texts: np.ndarray
    reversed: np.ndarray


@torch.inference_mode()
def embed_frames(enc: Encoder, clips: list[np.ndarray], batch: int = 1024) -> list[np.ndarray]:
    """Each clip's (t, 32, 32, 3) frames through the base's image tower: (t, d) unit vectors (the
    house tower takes the pixels as they are; any other goes through its own preprocessing)."""
    flat = np.concatenate(clips)
    out = []
    for i in range(0, len(flat), batch):
        if not isinstance(enc, HouseEncoder):
            out.append(enc.embed_images([Image.fromarray(f) for f in flat[i : i + batch]]))
            continue
        x = pixels_to_tensor(flat[i : i + batch], enc.cfg).to(enc.device)
        out.append(F.normalize(enc.image_tower(x).float(), dim=-1).cpu().numpy())
    vecs, at, per = np.concatenate(out), 0, []
    for c in clips:
        per.append(vecs[at : at + len(c)])
        at += len(c)
    return per


def clip_set(
    enc: Encoder,
    split: str,
    specs_or_n: list[ClipSpec] | int,
    seed: int,
    pairs: list[tuple[str, str]] | None = None,
    template: str | None = None,
) -> ClipSet:
    """Render, embed and caption clips of `split`'s images (given specs, or `n` sampled)."""
    images, labels = fashion_mnist(split)
    specs = (specs_or_n if isinstance(specs_or_n, list)
             else sample_specs(labels, specs_or_n, pairs or train_pairs(), seed))  # fmt: skip
    per = embed_frames(enc, [render(images[s.image], s) for s in specs])
    t = max(len(p) for p in per)
    frames = np.zeros((len(specs), t, enc.dim), np.float32)
    pad = np.ones((len(specs), t), bool)
    for i, p in enumerate(per):
        frames[i, : len(p)], pad[i, : len(p)] = p, False
    rng = np.random.default_rng(seed + 1)
    caps, revs = [], []
    for s in specs:
        state = rng.bit_generator.state  # the reversed caption uses the same wording and name
        caps.append(caption(s, rng, template))
        rng.bit_generator.state = state
        revs.append(caption(reversed_spec(s), rng, template))
    vecs = enc.embed_text(caps + revs)
    return ClipSet(specs, frames, pad, caps, vecs[: len(specs)], vecs[len(specs) :])


def reverse_frames(frames: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
    """Each sequence's frames in reverse order (its padding stays at the end)."""
    n = (~pad).sum(1, keepdim=True)
    t = torch.arange(frames.shape[1])[None]
    idx = torch.where(t < n, n - 1 - t, t)
    return frames.gather(1, idx[..., None].expand_as(frames))


def loss_of(head: TemporalHead, batch: tuple, cfg: TemporalTrainConfig) -> torch.Tensor:
    """The order loss: a logistic loss on how much nearer each change clip is to its caption than
    to the reversed one, and its caption to it than to its frames played backwards, scaled up
    (`order_scale`: the two captions' vectors differ little, cos about 0.99 with the house text
    tower); the anchor: 1 - cos(clip, the mean of its frames), so
    that the head adds order and stays in the image space; and, with `nce_weight`, InfoNCE both
    ways between clips and captions (each change clip's reversed caption an extra negative).
    Measured on held-out pairs (training/temporal/card.py): InfoNCE + order gave order 0.99 but
    moved vectors to cosine 0.49 from their frames' mean; order + anchor keeps 0.98."""
    frames, pad, texts, revs, change = batch
    z = head(frames, pad)
    keep = (~pad).float()[..., None]
    mean = F.normalize((frames * keep).sum(1), dim=-1)
    loss = cfg.anchor_weight * (1 - (z * mean).sum(1)).mean()
    if change.any():
        # both ways: a clip nearer its caption than the reversed caption, and a caption nearer
        # its clip than the same frames played backwards (what a text search needs)
        back = head(reverse_frames(frames, pad), pad)
        margin = ((z * texts).sum(1) - (z * revs).sum(1))[change]
        margin_back = ((z * texts).sum(1) - (back * texts).sum(1))[change]
        loss = loss + F.softplus(-cfg.order_scale * margin).mean()
        loss = loss + F.softplus(-cfg.order_scale * margin_back).mean()
    if cfg.nce_weight:
        logits = cfg.scale * z @ torch.cat([texts, revs[change]]).T
        target = torch.arange(len(z))
        back = F.cross_entropy(cfg.scale * texts @ z.T, target)
        loss = loss + cfg.nce_weight * 0.5 * (F.cross_entropy(logits, target) + back)
    return loss


def train_temporal(
    enc: Encoder, cfg: TemporalTrainConfig, report: Callable[[int, float], None] | None = None
) -> tuple[TemporalHead, dict]:
    """Train a head on `cfg.clips` training clips; returns it and a log (times, losses)."""
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    data = clip_set(enc, "train", cfg.clips, cfg.seed)
    prep = time.perf_counter() - t0
    head = TemporalHead(TemporalConfig(dim=enc.dim, layers=cfg.layers, heads=cfg.heads, ff=cfg.ff,
                                       max_frames=cfg.max_frames))  # fmt: skip
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=0.01)
    tensors = [torch.from_numpy(a) for a in (data.frames, data.pad, data.texts, data.reversed)]
    change = torch.tensor([s.start != s.end for s in data.specs])
    rng = np.random.default_rng(cfg.seed)
    losses, t1 = [], time.perf_counter()
    for step in range(cfg.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg, floor=0.1)
        idx = torch.from_numpy(rng.choice(len(data.specs), cfg.batch_size, replace=False))
        batch = (*[x[idx] for x in tensors], change[idx])
        loss = loss_of(head, batch, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if report is not None:
            report(step, losses[-1])
    log = {"config": asdict(cfg), "prepare_seconds": round(prep, 1),
           "train_seconds": round(time.perf_counter() - t1, 1),
           "first_loss": round(float(np.mean(losses[:20])), 4),
           "last_loss": round(float(np.mean(losses[-20:])), 4)}  # fmt: skip
    return head.eval(), log


def save_run(head: TemporalHead, log: dict, out: Path) -> None:
    save_temporal_head(out, head)
    (out / "training.json").write_text(json.dumps(log, indent=2) + "\n")
