"""The trainer core every model's trainer shares: options from defaults, a file and overrides;
AdamW with decoupled weight decay (none on biases, norms and temperatures); linear warm-up then
cosine decay; one optimisation step with gradient clipping and bf16 autocast on CUDA.

Imports torch; nothing of the models, the data, the service or the index.
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Protocol

import torch
from torch import nn


class Schedule(Protocol):
    """Any config with a learning rate, warm-up steps and total steps."""

    lr: float
    warmup: int
    steps: int


def load_options(cls, path: str | None, overrides: dict, what: str):
    """An options dataclass from its defaults, then a TOML or JSON file, then the overrides that
    are not None; unknown names and a loss other than siglip or clip are refused."""
    data: dict = {}
    if path:
        text = Path(path).read_text()
        data = tomllib.loads(text) if path.endswith(".toml") else json.loads(text)
    data |= {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(data) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"unknown {what} option(s): {', '.join(unknown)}")
    cfg = cls(**data)
    if cfg.loss not in ("siglip", "clip"):
        raise ValueError(f"loss must be 'siglip' or 'clip', not {cfg.loss!r}")
    return cfg


def distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device) of this process: under torchrun (WORLD_SIZE > 1) the process
    group is joined (NCCL on GPUs, gloo on CPU) and each process takes its LOCAL_RANK's GPU."""
    import torch.distributed as dist

    rank, world = 0, 1
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    return rank, world, device


def param_groups(modules: list[nn.Module], weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for m in modules:
        for name, p in m.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim < 2 or "logit" in name else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(modules: list[nn.Module], lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW, fused into one kernel per parameter group (CPU and CUDA both support it)."""
    return torch.optim.AdamW(
        param_groups(modules, weight_decay), lr=lr, betas=(0.9, 0.98), fused=True
    )


def lr_at(step: int, cfg: Schedule, floor: float = 0.0) -> float:
    """Linear warm-up over cfg.warmup steps, then cosine decay to `floor` x cfg.lr at cfg.steps
    (any config with lr, warmup and steps)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def train_step(model: nn.Module, loss_fn, opt, inputs: tuple, grad_clip: float, device) -> float:
    """One optimisation step: `model(*inputs)` returns normalised features, `loss_fn(*features)`
    the loss."""
    opt.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        feats = model(*inputs)
    loss = loss_fn(*(f.float() for f in feats))
    loss.backward()
    if grad_clip:
        params = [p for g in opt.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    opt.step()
    return float(loss.detach())
