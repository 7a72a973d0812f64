"""The learned fusion head: one joint-space vector from several part vectors of one thing.

The default fusion (fusion.compose.fuse) weighs every part the same. The head learns how far to
trust each part: per part, a weight read from the part's own vector by a small gate (absent
parts are masked, the weights are a softmax over the parts present), then a learned linear
correction of the mix (initialised at zero), then normalisation. Untrained, it is exactly the
equal-weight fusion.

Training is contrastive (InfoNCE): the fusion of some of a thing's parts should be nearer its
left-out part than the left-out parts of the other things in the batch (examples of the same
thing, `groups`, are not counted as negatives). A validation split, by group, scores every epoch
by leave-one-out recall@1 and the best epoch is kept, the untrained head (equal weights) among
them: on its validation split a head never does worse than equal weights.

Owns the network, its training loop, its measure and its files. Imports torch, numpy and the
encoders' error base: no models, FAISS or HTTP.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from encoders.errors import JointspaceError

WEIGHTS, META = "head.safetensors", "head.json"


class HeadError(JointspaceError):
    """Data a fusion head cannot learn from, or parts it cannot fuse."""


class HeadNet(nn.Module):
    def __init__(self, n_parts: int, dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, n_parts))
        self.correction = nn.Linear(dim, dim)
        for p in (*self.gate[2].parameters(), *self.correction.parameters()):
            nn.init.zeros_(p)  # untrained: equal weights, no correction

    def weights(self, v: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Mixing weights (n, parts): part m's vector read by gate output m, softmax over the
        parts present."""
        scores = self.gate(v).diagonal(dim1=1, dim2=2)
        return torch.softmax(scores.masked_fill(~present, float("-inf")), dim=1)

    def forward(self, v: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Unit vectors (n, d) from part vectors (n, parts, d) and presence (n, parts)."""
        mix = torch.einsum("nm,nmd->nd", self.weights(v, present), v)
        return nn.functional.normalize(mix + self.correction(mix), dim=1)


@dataclass
class FusionHead:
    net: HeadNet
    parts: tuple[str, ...]
    dim: int
    info: dict = field(default_factory=dict)

    def check_parts(self, names: Iterable[str]) -> None:
        """Refuse parts the head does not fuse, or none at all."""
        names = set(names)
        unknown = sorted(names - set(self.parts))
        if unknown:
            raise HeadError(
                f"the fusion head fuses {', '.join(self.parts)}, not {', '.join(unknown)}"
            )
        if not names:
            raise HeadError("the fusion head needs at least one part")

    def fuse(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        """One unit float32 vector (d,) from named part vectors."""
        self.check_parts(parts)
        v = np.zeros((1, len(self.parts), self.dim), np.float32)
        present = np.zeros((1, len(self.parts)), bool)
        for name, vec in parts.items():
            vec = np.asarray(vec, np.float32).reshape(-1)
            if vec.shape != (self.dim,):
                raise HeadError(f"the fusion head takes {self.dim}-d vectors, not {len(vec)}-d")
            v[0, self.parts.index(name)], present[0, self.parts.index(name)] = vec, True
        return self.apply(v, present)[0]

    def apply(self, v: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Unit float32 vectors (n, d) from part vectors (n, parts, d) and presence (n, parts)."""
        self.net.eval()
        with torch.no_grad():
            out = self.net(torch.as_tensor(v, dtype=torch.float32),
                           torch.as_tensor(present, dtype=torch.bool))  # fmt: skip
        return out.numpy().astype(np.float32)

    def part_weights(self, v: np.ndarray, present: np.ndarray) -> np.ndarray:
        """The mixing weights (n, parts) the head gives each part."""
        with torch.no_grad():
            w = self.net.weights(torch.as_tensor(v, dtype=torch.float32),
                                 torch.as_tensor(present, dtype=torch.bool))  # fmt: skip
        return w.numpy()

    def status_fields(self) -> dict:
        """What a registry's status.json says of it."""
        return {"parts": list(self.parts), "metrics": self.info}

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: t.contiguous() for k, t in self.net.state_dict().items()}, folder / WEIGHTS)
        meta = {"parts": list(self.parts), "dim": self.dim, "info": self.info}
        (folder / META).write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> FusionHead:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            meta = json.loads((folder / META).read_text())
            net = HeadNet(len(meta["parts"]), int(meta["dim"]))
            net.load_state_dict(load_file(folder / WEIGHTS))
        except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as e:
            raise HeadError(f"{folder}: not a fusion head ({e})") from None
        return cls(net, tuple(meta["parts"]), int(meta["dim"]), meta.get("info", {}))


Fuser = Callable[[np.ndarray, np.ndarray], np.ndarray]


def equal_weights(v: np.ndarray, present: np.ndarray) -> np.ndarray:
    """fusion.compose.fuse with every weight 1, over a batch: (n, parts, d) -> unit (n, d)."""
    total = (v * present[..., None]).sum(axis=1)
    return (total / np.linalg.norm(total, axis=1, keepdims=True)).astype(np.float32)


def leave_one_out_recall(
    fuse: Fuser, v: np.ndarray, present: np.ndarray, groups: np.ndarray
) -> dict[str, float]:
    """Recall@1 of each part from the fusion of the example's other parts, among that part of
    every example (right when the nearest is of the same group), per part index and the mean."""
    out, hits = {}, []
    for m in range(v.shape[1]):
        rows = np.flatnonzero(present[:, m] & (present.sum(axis=1) >= 2))
        if not len(rows):
            continue
        inputs = present[rows].copy()
        inputs[:, m] = False
        pool = np.flatnonzero(present[:, m])
        q = fuse(v[rows], inputs)
        nearest = pool[(q @ v[pool, m].T).argmax(axis=1)]
        got = groups[nearest] == groups[rows]
        out[m], hits = float(got.mean()), [*hits, *got]
    out["mean"] = float(np.mean(hits)) if hits else 0.0
    return out


def _leave_one_out(
    present: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each example: a target part picked at random, and the other parts, each then hidden
    with probability 0.3 (never all). Returns (target index, inputs)."""
    n, _ = present.shape
    scores = torch.rand(present.shape, generator=gen).masked_fill(~present, -1.0)
    target = scores.argmax(dim=1)
    inputs = present.clone()
    inputs[torch.arange(n), target] = False
    kept = inputs & ~((torch.rand(present.shape, generator=gen) < 0.3) & inputs)
    return target, torch.where(kept.any(dim=1, keepdim=True), kept, inputs)


def group_split(groups: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Example indices (train, validation), whole groups to one side."""
    uniq = np.unique(groups)
    rng = np.random.default_rng(seed)
    val_groups = rng.permutation(uniq)[: round(len(uniq) * fraction)]
    val = np.isin(groups, val_groups)
    return np.flatnonzero(~val), np.flatnonzero(val)


@dataclass
class HeadConfig:
    epochs: int = 40
    lr: float = 1e-3
    weight_decay: float = 1e-2
    temperature: float = 0.05
    batch: int = 128
    val_fraction: float = 0.2
    seed: int = 0


def check_head_data(v: np.ndarray, present: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """The examples with two or more parts; refusals of data a head cannot learn from."""
    if v.ndim != 3 or v.shape[:2] != present.shape or len(groups) != len(v):
        raise HeadError("part vectors must be (examples, parts, dimension) with a group each")
    if v.shape[1] < 2:
        raise HeadError("a fusion head fuses two or more kinds of part; the data has one")
    if not np.isfinite(v).all():
        raise HeadError("part vectors contain NaN or infinity")
    multi = np.flatnonzero(present.sum(axis=1) >= 2)
    if len(np.unique(groups[multi])) < 10:
        raise HeadError(
            f"a fusion head learns from things with two or more parts: the data has "
            f"{len(np.unique(groups[multi]))}, it needs at least 10"
        )
    return multi


def train_head(
    vectors: np.ndarray, present: np.ndarray, parts: tuple[str, ...],
    groups: np.ndarray | None = None, cfg: HeadConfig | None = None,
) -> FusionHead:  # fmt: skip
    """A head trained on examples (n, parts, d) with presence (n, parts), keeping the epoch with
    the best validation recall (epoch 0: equal weights; without a validation split, the last).
    `groups` marks examples of one thing (default: each its own)."""
    cfg = cfg or HeadConfig()
    v, present = np.asarray(vectors, np.float32), np.asarray(present, bool)
    groups = np.arange(len(v)) if groups is None else np.asarray(groups)
    keep = check_head_data(v, present, groups)
    v, present, groups = v[keep], present[keep], groups[keep]
    tr, va = group_split(groups, cfg.val_fraction, cfg.seed)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    head = FusionHead(HeadNet(len(parts), v.shape[2]), tuple(parts), int(v.shape[2]))
    opt = torch.optim.AdamW(head.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def score() -> float:
        return leave_one_out_recall(head.apply, v[va], present[va], groups[va])["mean"]

    validated = len(va) > 0
    equal = best = score() if validated else 0.0
    best_state, best_epoch = copy.deepcopy(head.net.state_dict()), 0
    tv, tp, tg = torch.as_tensor(v[tr]), torch.as_tensor(present[tr]), torch.as_tensor(groups[tr])
    for epoch in range(1, cfg.epochs + 1):
        _epoch(head.net, opt, tv, tp, tg, cfg, gen)
        if not validated:
            best_epoch = epoch
        elif (recall := score()) > best:
            best, best_state, best_epoch = recall, copy.deepcopy(head.net.state_dict()), epoch
    if validated:
        head.net.load_state_dict(best_state)
    head.info = {
        "train_examples": len(tr), "validation_examples": len(va), "epochs": cfg.epochs,
        "best_epoch": best_epoch, "validation_recall_equal": equal,
        "validation_recall_head": best if validated else None,
    }  # fmt: skip
    return head


def _epoch(net: HeadNet, opt: torch.optim.Optimizer, v: torch.Tensor, present: torch.Tensor,
           groups: torch.Tensor, cfg: HeadConfig, gen: torch.Generator) -> None:  # fmt: skip
    """One pass of InfoNCE over shuffled batches."""
    net.train()
    order = torch.randperm(len(v), generator=gen)
    for at in range(0, len(v), cfg.batch):
        i = order[at : at + cfg.batch]
        target, inputs = _leave_one_out(present[i], gen)
        goal = v[i][torch.arange(len(i)), target]
        logits = net(v[i], inputs) @ goal.T / cfg.temperature
        same = (groups[i][:, None] == groups[i][None, :]) & ~torch.eye(len(i), dtype=torch.bool)
        loss = nn.functional.cross_entropy(logits.masked_fill(same, float("-inf")),
                                           torch.arange(len(i)))  # fmt: skip
        opt.zero_grad()
        loss.backward()
        opt.step()
