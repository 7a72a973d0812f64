"""Trained classifiers over frozen joint-space vectors, fusing modalities three ways:

- early: the modality vectors concatenated (a learned vector stands in for a missing one, with a
  presence flag per modality) into a one-hidden-layer MLP;
- late: a linear head per modality, their log-probabilities averaged with learned weights that
  are renormalised over the modalities present;
- attention: a learned query cross-attends over the present modality vectors (plus a learned
  embedding per modality; absent ones are masked), Flamingo/perceiver style, then a linear head;

and `linear`, the CLIP linear probe (one modality, one linear layer). Training drops modalities at
random so that predictions with one missing are trained for. Probabilities are calibrated by a
temperature fitted on a validation split; `ece` measures calibration. Owns training, prediction,
calibration and the files a classifier is saved as. Imports torch, numpy and the encoders' error
base: no models, FAISS or HTTP.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from encoders.errors import JointspaceError

KINDS = ("early", "late", "attention", "linear")
WEIGHTS, META = "classifier.safetensors", "classifier.json"


class ClassifierError(JointspaceError):
    """Labelled data or a prediction input a classifier cannot use."""


@dataclass
class Examples:
    """Labelled inputs: `vectors` (n, modalities, d) with zeros where a part is missing,
    `present` (n, modalities) and integer `labels` indexing `classes`."""

    vectors: np.ndarray
    present: np.ndarray
    labels: np.ndarray
    classes: list[str]
    modalities: tuple[str, ...]

    def subset(self, idx: np.ndarray) -> Examples:
        return Examples(self.vectors[idx], self.present[idx], self.labels[idx], self.classes,
                        self.modalities)  # fmt: skip

    def only(self, modality: str) -> Examples:
        """The examples that have `modality`, with that part alone."""
        m = self.modalities.index(modality)
        keep = np.flatnonzero(self.present[:, m])
        return Examples(self.vectors[keep][:, m : m + 1], self.present[keep][:, m : m + 1],
                        self.labels[keep], self.classes, (modality,))  # fmt: skip


def check_examples(ex: Examples) -> None:
    """The refusals of bad labelled data, each with what to fix."""
    if ex.vectors.ndim != 3 or ex.vectors.shape[:2] != ex.present.shape:
        raise ClassifierError("labelled vectors must be (examples, modalities, dimension)")
    if len(ex.classes) < 2:
        raise ClassifierError(
            f"a classifier needs at least two labels, got {len(ex.classes)}: {ex.classes}"
        )
    counts = np.bincount(ex.labels, minlength=len(ex.classes))
    empty = [c for c, n in zip(ex.classes, counts, strict=True) if n == 0]
    if empty:
        raise ClassifierError(f"label(s) with no examples: {', '.join(empty)}")
    if not ex.present.any(axis=1).all():
        raise ClassifierError("every example needs at least one part (text, image or audio)")
    if not np.isfinite(ex.vectors).all():
        raise ClassifierError("labelled vectors contain NaN or infinity")


class FusionNet(nn.Module):
    def __init__(self, kind: str, n_mod: int, dim: int, n_classes: int, hidden: int = 256):
        super().__init__()
        self.kind = kind
        if kind == "early":
            self.missing = nn.Parameter(torch.zeros(n_mod, dim))
            self.mlp = nn.Sequential(nn.Linear(n_mod * dim + n_mod, hidden), nn.GELU(),
                                     nn.Dropout(0.1), nn.Linear(hidden, n_classes))  # fmt: skip
        elif kind in ("late", "linear"):
            self.weight = nn.Parameter(torch.zeros(n_mod, dim, n_classes))
            self.bias = nn.Parameter(torch.zeros(n_mod, n_classes))
            self.mix = nn.Parameter(torch.zeros(n_mod))
        elif kind == "attention":
            self.modality = nn.Parameter(0.02 * torch.randn(n_mod, dim))
            self.query = nn.Parameter(0.02 * torch.randn(1, 1, dim))
            self.attn = nn.MultiheadAttention(dim, num_heads=4, batch_first=True)
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, n_classes)
        else:
            raise ClassifierError(f"fusion must be one of {', '.join(KINDS)}, not {kind!r}")

    def forward(self, v: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Logits (n, classes) from vectors (n, m, d) and presence (n, m)."""
        if self.kind == "early":
            x = torch.where(present[..., None], v, self.missing.expand_as(v))
            return self.mlp(torch.cat([x.flatten(1), present.float()], dim=1))
        if self.kind in ("late", "linear"):
            logp = torch.log_softmax(torch.einsum("nmd,mdc->nmc", v, self.weight) + self.bias, -1)
            w = torch.softmax(self.mix.masked_fill(~present, float("-inf")), dim=1)
            return torch.einsum("nm,nmc->nc", w, logp.masked_fill(~present[..., None], 0.0))
        tokens = v + self.modality
        q = self.query.expand(len(v), -1, -1)
        out, _ = self.attn(q, tokens, tokens, key_padding_mask=~present, need_weights=False)
        return self.head(self.norm(out[:, 0] + q[:, 0]))


@dataclass
class Classifier:
    net: FusionNet
    kind: str
    classes: list[str]
    modalities: tuple[str, ...]
    dim: int
    temperature: float = 1.0
    info: dict = field(default_factory=dict)

    def logits(self, vectors: np.ndarray, present: np.ndarray) -> np.ndarray:
        self.net.eval()
        with torch.no_grad():
            out = self.net(torch.as_tensor(vectors, dtype=torch.float32),
                           torch.as_tensor(present, dtype=torch.bool))  # fmt: skip
        return out.numpy().astype(np.float64)

    def predict_proba(self, vectors: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (n, classes), rows summing to 1."""
        vectors, present = np.asarray(vectors, np.float32), np.asarray(present, bool)
        if vectors.ndim != 3 or vectors.shape[1:] != (len(self.modalities), self.dim):
            raise ClassifierError(
                f"inputs must be (n, {len(self.modalities)}, {self.dim}) for modalities "
                f"{', '.join(self.modalities)}"
            )
        if not present.any(axis=1).all():
            raise ClassifierError(
                f"an input needs at least one of {', '.join(self.modalities)} for this classifier"
            )
        return softmax(self.logits(vectors, present) / self.temperature)

    def status_fields(self) -> dict:
        """What a registry's status.json says of it."""
        return {"fusion": self.kind, "classes": self.classes, "modalities": list(self.modalities),
                "metrics": self.info}  # fmt: skip

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()}, folder / WEIGHTS)
        meta = {"kind": self.kind, "classes": self.classes, "modalities": list(self.modalities),
                "dim": self.dim, "temperature": self.temperature, "info": self.info}  # fmt: skip
        (folder / META).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: Path) -> Classifier:
        from safetensors.torch import load_file

        meta = json.loads((folder / META).read_text())
        net = FusionNet(meta["kind"], len(meta["modalities"]), meta["dim"], len(meta["classes"]))
        net.load_state_dict(load_file(folder / WEIGHTS))
        return cls(net, meta["kind"], meta["classes"], tuple(meta["modalities"]), meta["dim"],
                   meta["temperature"], meta.get("info", {}))  # fmt: skip


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A stratified (train, validation) split of indices; every class keeps one training example
    and gives at most `fraction` of its examples (none when it has one)."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = min(round(fraction * len(idx)), len(idx) - 1)
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    return np.sort(np.array(train, int)), np.sort(np.array(val, int))


def _drop_modalities(present: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """Randomly hide present modalities (each with probability p), never all of an example's."""
    if present.shape[1] == 1 or p == 0:
        return present
    drop = (torch.rand(present.shape, generator=gen) < p) & present
    kept = present & ~drop
    empty = ~kept.any(dim=1)
    return torch.where(empty[:, None], present, kept)


def train(
    ex: Examples, kind: str, *, epochs: int = 200, lr: float | None = None,
    weight_decay: float = 1e-4, drop: float = 0.3, seed: int = 0, batch: int = 256,
) -> FusionNet:  # fmt: skip
    """A FusionNet fitted to the examples (mini-batch AdamW, modality dropout). Linear heads on
    unit vectors need large weights, so they learn 10x faster than the MLP and attention."""
    lr = lr or (1e-2 if kind in ("late", "linear") else 1e-3)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    n_mod = len(ex.modalities)
    net = FusionNet(kind, n_mod, ex.vectors.shape[2], len(ex.classes))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    v = torch.as_tensor(ex.vectors, dtype=torch.float32)
    present = torch.as_tensor(ex.present, dtype=torch.bool)
    y = torch.as_tensor(ex.labels, dtype=torch.long)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=gen)
        for at in range(0, len(y), batch):
            i = order[at : at + batch]
            loss = nn.functional.cross_entropy(
                net(v[i], _drop_modalities(present[i], drop, gen)), y[i]
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising the validation negative log-likelihood (a log-spaced grid,
    then a finer one around the best)."""

    def nll(t: float) -> float:
        p = softmax(logits / t)
        return float(-np.mean(np.log(p[np.arange(len(labels)), labels] + 1e-12)))

    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 121))  # bounded: a perfect split
    # would otherwise drive it towards 0 (certainty)
    best = min(grid, key=nll)
    fine = np.exp(np.linspace(np.log(best) - 0.06, np.log(best) + 0.06, 41))
    return float(min(fine, key=nll))


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error: the bin-weighted gap between confidence and accuracy."""
    return _binned_gap(probs.max(axis=1), probs.argmax(axis=1) == labels, bins)


def _binned_gap(conf: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    total = 0.0
    for lo, hi in itertools.pairwise(np.linspace(0, 1, bins + 1)):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs(conf[inside].mean() - correct[inside].mean())
    return float(total)


def ece_floor(probs: np.ndarray, samples: int = 500, seed: int = 0) -> float:
    """The ECE a perfectly calibrated classifier with these confidences would still show on this
    many examples (each prediction right with probability its confidence; the mean of `samples`
    draws): below it, a measured ECE is noise, not miscalibration."""
    conf = probs.max(axis=1)
    rng = np.random.default_rng(seed)
    return float(np.mean([_binned_gap(conf, rng.random(len(conf)) < conf) for _ in range(samples)]))


def fit(
    ex: Examples, kind: str, *, val_fraction: float = 0.2, seed: int = 0, epochs: int = 200,
    calibrate: bool = True,
) -> Classifier:  # fmt: skip
    """Train on a stratified split, fit the temperature on the rest, report validation figures
    (accuracy, ECE before and after scaling) in `info`."""
    if kind not in KINDS:
        raise ClassifierError(f"fusion must be one of {', '.join(KINDS)}, not {kind!r}")
    check_examples(ex)
    if kind == "linear" and len(ex.modalities) != 1:
        raise ClassifierError("a linear probe takes one modality: use early, late or attention")
    tr, va = split(ex.labels, val_fraction, seed)
    net = train(ex.subset(tr), kind, epochs=epochs, seed=seed)
    clf = Classifier(net, kind, list(ex.classes), tuple(ex.modalities), ex.vectors.shape[2])
    info: dict = {"train_examples": len(tr), "validation_examples": len(va)}
    if len(va):
        logits = clf.logits(ex.vectors[va], ex.present[va])
        raw = softmax(logits)
        if calibrate:
            clf.temperature = fit_temperature(logits, ex.labels[va])
        scaled = softmax(logits / clf.temperature)
        info |= {
            "validation_accuracy": float((raw.argmax(1) == ex.labels[va]).mean()),
            "ece_before": ece(raw, ex.labels[va]),
            "ece_after": ece(scaled, ex.labels[va]),
            "temperature": clf.temperature,
        }
    clf.info = info
    return clf
