"""Fine-tuning a base's towers on the user's pairs of picture and caption, in one of four modes
(training.towers.adapt: lora, full, lit, head), with the trainer core every model shares.

The loop is the towers trainer's: training.core's AdamW (no decay on biases, norms and
temperatures), warm-up then cosine schedule, the one optimisation step (gradient clipping, bf16
autocast on CUDA) and DDP under torchrun; training.checkpoint's checkpoint every `save_every`
steps, resumed only by a run with the same settings, at the same step with the same batches (the
batches depend only on the seed and the step; so does the dropout). The temperature (and the
sigmoid loss's bias) start from the base's own. A share of each batch (`replay_share`) may come
from "replay" pairs of another source, against forgetting.

A tenth of the pairs (at least one, at most 200) is held out: `held_out_figures` measures
retrieval both ways on them through the `Encoder` interface, before (the base) and after (the
fine-tuned towers, loaded back from what `export` wrote), beside chance; `suite_figures` runs a
registered eval suite the same way. `record` and `card` write what the model directory keeps.
Imports encoders and training; nothing of jobs, the service or the index.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from encoders.base import Encoder
from training.checkpoint import Checkpoint
from training.core import distributed, lr_at, make_optimizer, train_step
from training.losses import make_loss
from training.parts import Pairs
from training.towers.adapt import MODES, Adapted, CannotTune, Towers

#: the learning rate of each mode when none is given (adapters and heads take larger steps); the
#: house towers, small and trained here from scratch at 2e-3, take ten times a pretrained base's
#: (measured on the digits: docs/models.md, "Measured on the digits")
DEFAULT_LR = {"lora": 5e-4, "full": 1e-5, "lit": 1e-5, "head": 1e-3}
HOUSE_LR = {"lora": 2e-3, "full": 1e-4, "lit": 1e-3, "head": 3e-3}
MAX_STEPS = 1_000_000
#: preprocessed pictures are kept in memory up to this many bytes (else made per batch)
PIXEL_CACHE_BYTES = 4 << 30


class BadTuning(ValueError):
    """Settings or data a fine-tune cannot run with; nothing is written into the directory."""


@dataclass
class TuneConfig:
    mode: str = "lora"
    loss: str = "clip"  # clip | siglip; the CLI's default is the base's own
    steps: int = 300
    batch_size: int = 32  # per process
    lr: float | None = None  # None: the mode's default (DEFAULT_LR)
    weight_decay: float = 0.0
    warmup: int = -1  # -1: a tenth of the steps
    grad_clip: float = 1.0
    seed: int = 0
    rank: int = 8  # lora: the adapters' rank
    alpha: float = 16.0  # lora: their scale is alpha / rank
    replay_share: float = 0.0
    save_every: int = 100
    out: str = "runs/towers"

    def checked(self, backend: str = "") -> TuneConfig:
        """The config with its defaults filled in (the learning rate: the mode's, for the
        `backend`'s towers), or BadTuning naming the setting out of range."""
        if self.mode not in MODES:
            raise BadTuning(f"--mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.loss not in ("clip", "siglip"):
            raise BadTuning(f"--loss must be 'clip' or 'siglip', not {self.loss!r}")
        if not 1 <= self.steps <= MAX_STEPS:
            raise BadTuning(f"--steps must be from 1 to {MAX_STEPS:,}, not {self.steps}")
        if self.lr is None:
            self.lr = (HOUSE_LR if backend == "house" else DEFAULT_LR)[self.mode]
        if not (math.isfinite(self.lr) and 0 < self.lr <= 1):
            raise BadTuning(
                f"--lr must be above 0 and at most 1, not {self.lr:g} (fine-tuning rates are "
                "about 1e-5 for full and lit, 1e-4 to 1e-3 for lora and head)"
            )
        if self.batch_size < 2:
            raise BadTuning(f"--batch-size must be at least 2 (a contrastive loss needs "
                            f"negatives), not {self.batch_size}")  # fmt: skip
        if not 0 <= self.replay_share < 1:
            raise BadTuning(f"--replay-share must be from 0 to below 1, not {self.replay_share}")
        if self.rank < 1:
            raise BadTuning(f"--rank must be at least 1, not {self.rank}")
        if self.warmup < 0:
            self.warmup = self.steps // 10
        return self


def held_out(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices: a tenth held out, at least one when n >= 2, at most 200."""
    from training.targets import held_out as split

    return split(n, seed)


def stream(n: int, count: int, step: int, rank: int, world: int, seed: int, which: int):
    """`count` indices into `n` items for this rank at this step: a fixed permutation per epoch
    (seeded by seed, stream and epoch), sliced in order and wrapped into the next epoch."""
    start = (step * world + rank) * count
    out: list[np.ndarray] = []
    while count:
        epoch, pos = divmod(start, n)
        order = np.random.default_rng([seed, which, epoch]).permutation(n)
        take = order[pos : pos + count]
        out.append(take)
        count -= len(take)
        start += len(take)
    return np.concatenate(out)


class PixelCache:
    """The base's preprocessing of each picture, done once and kept while it fits in memory."""

    def __init__(self, towers: Towers, images: list) -> None:
        self.towers, self.images = towers, images
        self.kept: dict[int, torch.Tensor] = {}
        first = towers.image_inputs(images[:1])[0] if images else torch.zeros(0)
        self.keep = first.numel() * first.element_size() * len(images) <= PIXEL_CACHE_BYTES

    def __call__(self, idx) -> torch.Tensor:
        if not self.keep:
            return self.towers.image_inputs([self.images[i] for i in idx])
        new = [i for i in dict.fromkeys(int(i) for i in idx) if i not in self.kept]
        if new:
            for i, t in zip(new, self.towers.image_inputs([self.images[i] for i in new]),
                            strict=True):  # fmt: skip
                self.kept[i] = t
        return torch.stack([self.kept[int(i)] for i in idx])


class Trained:
    """The checkpoint part of the towers: the weights that train and every buffer (the base's
    frozen weights are the base's: the checkpoint need not hold a copy of them)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def state_dict(self) -> dict:
        keep = {n for n, p in self.module.named_parameters() if p.requires_grad}
        keep |= {n for n, _ in self.module.named_buffers()}
        return {k: v.detach().clone() for k, v in self.module.state_dict().items() if k in keep}

    def load_state_dict(self, state: dict) -> None:
        res = self.module.load_state_dict(state, strict=False)
        if res.unexpected_keys:
            raise ValueError(f"the checkpoint holds other weights ({res.unexpected_keys[0]}...)")


class Tuner:
    """One fine-tune: `resume()`, `run(progress)`, then `export(folder)`."""

    def __init__(self, cfg: TuneConfig, adapted: Adapted, pairs: Pairs, replay: Pairs | None,
                 key: dict) -> None:  # fmt: skip
        """`pairs`: the training pairs (the held-out ones already taken out); `replay`: pairs
        mixed in at cfg.replay_share of each batch; `key`: what else the checkpoint must match
        (the base, the data)."""
        self.cfg, self.adapted, self.towers = cfg, adapted, adapted.towers
        self.rank, self.world, self.device = distributed()
        self.pairs, self.replay = pairs, replay
        self.n_replay = round(cfg.batch_size * cfg.replay_share) if replay is not None else 0
        self.n_new = cfg.batch_size - self.n_replay
        if self.n_new > len(pairs.captions):
            raise BadTuning(
                f"--batch-size {cfg.batch_size} takes {self.n_new} new pairs a step, more than "
                f"the {len(pairs.captions)} there are to train on (a tenth is held out): use "
                "a smaller --batch-size or more pairs"
            )
        if replay is not None and self.n_replay > len(replay.captions):
            raise BadTuning(f"--replay {replay.source}: {len(replay.captions)} pairs, fewer than "
                            f"the {self.n_replay} each batch takes")  # fmt: skip
        self.towers.prefetch(pairs.captions + (replay.captions if replay else []))
        self.pixels = PixelCache(self.towers, pairs.images)
        self.replay_pixels = PixelCache(self.towers, replay.images) if replay else None
        self.towers.to(self.device)
        self.loss_fn = make_loss(cfg.loss).to(self.device)
        own = (cfg.loss == "siglip") == (self.towers.loss_kind == "sigmoid")
        with torch.no_grad():  # the base's temperature (and bias), where the loss is its own
            if own:
                self.loss_fn.logit_scale.fill_(math.log(self.towers.logit_scale))
                if cfg.loss == "siglip":
                    self.loss_fn.logit_bias.fill_(self.towers.logit_bias)
        self.model: nn.Module = self.towers
        if self.world > 1:
            self.model = nn.parallel.DistributedDataParallel(self.towers)
        self.opt = make_optimizer([self.towers, self.loss_fn], cfg.lr, cfg.weight_decay)
        self.step, self.history, self.seconds = 0, [], 0.0
        self.extra: dict = {}  # what the caller keeps with the run (the "before" figures)
        parts = {"towers": Trained(self.towers), "loss": self.loss_fn, "opt": self.opt}
        self.checkpoint = Checkpoint(Path(cfg.out), parts, asdict(cfg) | key, self.device)

    def resume(self) -> bool:
        state = self.checkpoint.restore()
        if state is None:
            return False
        self.step, self.history, self.seconds = state["step"], state["history"], state["seconds"]
        self.extra = state.get("extra", {})
        return True

    def save(self) -> None:
        if not self.rank:
            self.checkpoint.save(step=self.step, history=self.history, seconds=self.seconds,
                                 extra=self.extra)  # fmt: skip

    def batch(self, step: int) -> tuple:
        cfg = self.cfg
        idx = stream(len(self.pairs.captions), self.n_new, step, self.rank, self.world, cfg.seed, 0)
        pixels = [self.pixels(idx)]
        caps = [self.pairs.captions[i] for i in idx]
        if self.n_replay:
            r = stream(len(self.replay.captions), self.n_replay, step, self.rank, self.world,
                       cfg.seed, 1)  # fmt: skip
            pixels.append(self.replay_pixels(r))
            caps += [self.replay.captions[i] for i in r]
        inputs = (torch.cat(pixels), *self.towers.text_inputs(caps))
        return tuple(x.to(self.device, non_blocking=True) for x in inputs)

    def run(self, progress=None, stop_at: int | None = None) -> list[dict]:
        """Steps until cfg.steps (or `stop_at`, as a killed run would stop), from wherever a
        resumed run stands; a checkpoint every save_every steps and at the end."""
        cfg = self.cfg
        end = min(cfg.steps, stop_at) if stop_at is not None else cfg.steps
        while self.step < end:
            t0 = time.perf_counter()
            for g in self.opt.param_groups:
                g["lr"] = lr_at(self.step, cfg)
            inputs = self.batch(self.step)
            torch.manual_seed(cfg.seed * 1_000_003 + self.step)  # the same dropout on resume
            self.adapted.train_mode()
            loss = train_step(self.model, self.loss_fn, self.opt, inputs, cfg.grad_clip,
                              self.device)  # fmt: skip
            self.seconds += time.perf_counter() - t0
            self.step += 1
            rec = {"step": self.step, "loss": loss, "lr": lr_at(self.step - 1, cfg)}
            self.history.append(rec)
            if progress:
                progress(rec)
            if self.step % cfg.save_every == 0 or self.step == end:
                self.save()
        return self.history

    def temperature(self) -> tuple[float, float | None]:
        scale = float(self.loss_fn.scale().detach())
        bias = getattr(self.loss_fn, "logit_bias", None)
        return scale, (float(bias.detach()) if bias is not None else None)

    def export(self, folder: Path) -> tuple[str, str]:
        """The fine-tuned towers (adapters merged) written into `folder` in the base's format;
        returns (the spec template with '{folder}' for the folder's name, the weights file)."""
        self.adapted.merge()
        self.towers.eval()
        scale, bias = self.temperature()
        return self.towers.to("cpu").save(folder, scale, bias)


def check_loss(towers: Towers, loss: str) -> None:
    """A loss the base's scoring can carry: a sigmoid loss needs a bias to train, and only the
    house model and sigmoid-scored bases have one."""
    sigmoid = towers.loss_kind == "sigmoid"
    if towers.backend != "house" and (loss == "siglip") != sigmoid:
        own = "siglip" if sigmoid else "clip"
        raise CannotTune(
            f"--loss {loss}: '{towers.base_name}' scores with a "
            f"{'sigmoid (a temperature and a bias)' if sigmoid else 'softmax temperature'}, "
            f"which a {loss} loss does not train; fine-tune it with --loss {own}, its own"
        )


# -- figures -----------------------------------------------------------------------------------
def held_out_figures(enc: Encoder, images: list, captions: list[str]) -> dict:
    """Retrieval among the held-out pairs both ways (pairs sharing a caption count as one
    another's), Recall@1 and @5 beside chance."""
    from training.towers.eval import retrieval

    if not captions:
        return {}
    r = retrieval(images, captions, enc)
    keep = ("t2i_recall@1", "i2t_recall@1", "t2i_recall@5", "i2t_recall@5", "chance@1", "chance@5")
    return {"n_images": r["n_images"], "n_captions": r["n_captions"], **{k: r[k] for k in keep}}


def suite_figures(enc: Encoder, suite: str, limit: int | None = None) -> dict:
    """One registered eval suite's figures (training.evaluate's registry)."""
    from training.evaluate import evaluate

    return evaluate(enc, (suite,), limit=limit)["suites"][suite]


def figure_rows(before: dict, after: dict) -> list[tuple[str, str, float, float, float | None]]:
    """(set, metric, before, after, chance) for every float figure of both evaluations
    ({set: figures} each, as `evaluate` gives under "suites")."""
    from training.metrics import metric_rows

    a = {(s, k): v for s, k, v, _, _ in metric_rows({"suites": after})}
    return [(s, k, v, a[(s, k)], chance) for s, k, v, chance, _ in metric_rows({"suites": before})
            if (s, k) in a]  # fmt: skip


def table(rows) -> str:
    """The before/after table as markdown."""
    lines = ["| set | metric | before | after | chance |", "| --- | --- | ---: | ---: | ---: |"]
    for s, k, b, a, c in rows:
        lines.append(f"| {s} | {k} | {b:.3f} | {a:.3f} | {'' if c is None else f'{c:.3f}'} |")
    return "\n".join(lines)


def write_card(folder: Path, rec: dict) -> Path:
    """MODEL_CARD.md beside the fine-tuned towers, from their record."""
    from training.cards import write_card as write

    t = rec["training"]
    rows = figure_rows(rec["figures"]["before"], rec["figures"]["after"])
    replay = (f"; replay {t['replay']} at {t['replay_share']:.0%} of each batch"
              if t.get("replay") else "")  # fmt: skip
    suite = t.get("eval_suite")
    named = f"; `{suite}` is the reference suite named at training" if suite else ""
    text = f"""# Fine-tuned towers

Fine-tuned from `{rec["from"]}` (first origin: `{rec["origin"]}`) in mode **{t["mode"]}** with
the {t["loss"]} loss: {t["steps"]} steps of {t["batch_size"]} pairs at learning rate {t["lr"]:g}
on {t["pairs"]} pairs from `{t["data"]}`{replay}; {t["seconds"]:.0f} s on {t["device"]}. Served as
`model:DIR` (this folder is DIR's base); the weights' digest is `{rec["digest"]}`.

## Held-out figures, before and after

The held-out pairs are {t["held_out"]} of the data's pairs never trained on (retrieval both ways,
pairs that share a caption count as one another's){named}.

{table(rows)}

## Reproduce

```bash
{rec["command"]}
```
"""
    return write(folder, text)


def record(tuner: Tuner, *, origin: str, base: str, base_digest: str, digest: str, data: str,
           replay: str | None, eval_suite: str | None, figures: dict, command: str,
           held: int) -> dict:  # fmt: skip
    """What towers.json keeps of a fine-tune."""
    cfg = tuner.cfg
    training = {
        "mode": cfg.mode, "loss": cfg.loss, "steps": tuner.step, "batch_size": cfg.batch_size,
        "lr": cfg.lr, "seed": cfg.seed, "data": data, "pairs": len(tuner.pairs.captions),
        "held_out": held, "replay": replay, "replay_share": cfg.replay_share if replay else 0.0,
        "eval_suite": eval_suite, "seconds": round(tuner.seconds, 1),
        "device": str(tuner.device), "world": tuner.world,
        "final_loss": round(float(np.mean([h["loss"] for h in tuner.history[-10:]])), 4)
        if tuner.history else None,
        "trained": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip
    if cfg.mode == "lora":
        training |= {"rank": cfg.rank, "alpha": cfg.alpha, "adapted": len(tuner.adapted.targets)}
    return {
        "kind": "towers", "what": "the base's text and image towers, fine-tuned on pairs",
        "origin": origin, "from": base, "from_fingerprint": base_digest, "digest": digest,
        "training": training, "figures": figures, "command": command,
    }  # fmt: skip


def dump(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1) + "\n")
