"""Contrastive losses: softmax InfoNCE (CLIP) and pairwise sigmoid (SigLIP).

Losses take feature tensors and know nothing of models or data. Both work across processes:
InfoNCE gathers features with a differentiable all-gather, optionally computing only the local
rows (`local_loss`: memory linear in the global batch); the sigmoid loss gathers the other ranks'
text features and scores the local images against all of them. `chunk_size` runs the sigmoid loss
through a custom autograd function that recomputes each block of logits in backward, so its peak
memory is O(chunk x N) instead of O(N x N).

Conventions follow open_clip: `logit_scale` passed to the functions is already exponentiated; the
sigmoid loss is summed over pairs and divided by the local image count.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _AllGather(torch.autograd.Function):
    """all_gather whose backward sums each rank's gradient for every slice and returns ours
    (the same contract as torch.distributed.nn.functional.all_gather)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ctx.rank = dist.get_rank()
        out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(out, x.contiguous())
        return tuple(out)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor) -> torch.Tensor:
        g = torch.stack([gr.contiguous() for gr in grads])
        dist.all_reduce(g)
        return g[ctx.rank]


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's `x` (equal shapes) along dim 0, differentiably."""
    _, world = _world()
    if world == 1:
        return x
    return torch.cat(_AllGather.apply(x), dim=0)


def clip_loss(
    image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, local_loss: bool = False
) -> torch.Tensor:
    """Symmetric cross-entropy over image-text similarities (matching pairs share an index)."""
    rank, world = _world()
    n = image.shape[0]
    if world > 1:
        all_image, all_text = all_gather_with_grad(image), all_gather_with_grad(text)
        if local_loss:
            logits_i = logit_scale * image @ all_text.T
            logits_t = logit_scale * text @ all_image.T
            labels = torch.arange(n, device=image.device) + n * rank
        else:
            logits_i = logit_scale * all_image @ all_text.T
            logits_t = logits_i.T
            labels = torch.arange(all_image.shape[0], device=image.device)
    else:
        logits_i = logit_scale * image @ text.T
        logits_t = logits_i.T
        labels = torch.arange(n, device=image.device)
    return (F.cross_entropy(logits_i, labels) + F.cross_entropy(logits_t, labels)) / 2


def _sigmoid_block(image, text, scale, bias, offset: int, j0: int):
    """Logits and +1/-1 labels for image rows against text columns j0.. (positives where the
    text's global index equals offset + the image's row)."""
    logits = scale * image @ text.T + bias
    labels = torch.full_like(logits, -1.0)
    rows = torch.arange(image.shape[0], device=image.device)
    cols = rows + offset - j0
    ok = (cols >= 0) & (cols < text.shape[0])
    labels[rows[ok], cols[ok]] = 1.0
    return logits, labels


class _ChunkedSigmoid(torch.autograd.Function):
    @staticmethod
    def forward(ctx, image, text, scale, bias, offset: int, chunk: int):
        ctx.save_for_backward(image, text, scale, bias)
        ctx.offset, ctx.chunk = offset, chunk
        total = image.new_zeros(())
        for j0 in range(0, text.shape[0], chunk):
            logits, labels = _sigmoid_block(image, text[j0 : j0 + chunk], scale, bias, offset, j0)
            total -= F.logsigmoid(labels * logits).sum()
        return total / image.shape[0]

    @staticmethod
    def backward(ctx, grad_out):
        image, text, scale, bias = ctx.saved_tensors
        g = grad_out / image.shape[0]
        d_image = torch.zeros_like(image)
        d_text = torch.zeros_like(text)
        d_scale = torch.zeros_like(scale)
        d_bias = torch.zeros_like(bias)
        for j0 in range(0, text.shape[0], ctx.chunk):
            t = text[j0 : j0 + ctx.chunk]
            logits, labels = _sigmoid_block(image, t, scale, bias, ctx.offset, j0)
            # d/dz of -logsigmoid(z) is -sigmoid(-z), with z = labels * logits
            d_logits = -torch.sigmoid(-labels * logits) * labels * g
            d_image += scale * d_logits @ t
            d_text[j0 : j0 + ctx.chunk] = scale * d_logits.T @ image
            d_scale += (d_logits * (image @ t.T)).sum()
            d_bias += d_logits.sum()
        return d_image, d_text, d_scale, d_bias, None, None


def siglip_loss(
    image: torch.Tensor,
    text: torch.Tensor,
    logit_scale: torch.Tensor,
    logit_bias: torch.Tensor,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Pairwise sigmoid loss; across processes the local images meet every rank's texts."""
    rank, world = _world()
    offset = rank * image.shape[0]
    if world > 1:
        text = all_gather_with_grad(text)
    if chunk_size:
        return _ChunkedSigmoid.apply(image, text, logit_scale, logit_bias, offset, chunk_size)
    logits, labels = _sigmoid_block(image, text, logit_scale, logit_bias, offset, 0)
    return -F.logsigmoid(labels * logits).sum() / image.shape[0]


class ClipLoss(nn.Module):
    """InfoNCE with a learnable temperature (log-parametrised, initialised to 1/0.07)."""

    kind = "softmax"

    def __init__(self, local_loss: bool = False, max_scale: float = 100.0) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.local_loss = local_loss
        self.max_scale = max_scale

    def scale(self) -> torch.Tensor:
        return self.logit_scale.exp().clamp(max=self.max_scale)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return clip_loss(image, text, self.scale(), local_loss=self.local_loss)


class SigLipLoss(nn.Module):
    """Sigmoid loss with learnable temperature and bias, initialised t' = log 10, b = -10."""

    kind = "sigmoid"

    def __init__(self, chunk_size: int | None = None) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.logit_bias = nn.Parameter(torch.tensor(-10.0))
        self.chunk_size = chunk_size

    def scale(self) -> torch.Tensor:
        return self.logit_scale.exp()

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return siglip_loss(image, text, self.scale(), self.logit_bias, self.chunk_size)


class Matryoshka(nn.Module):
    """A contrastive loss summed over prefixes of the vectors (Matryoshka representation
    learning): each prefix of `dims` (and the whole vector) is re-normalised and scored by the one
    `main` loss, whose temperature and bias the prefixes share."""

    def __init__(self, main: nn.Module, dims: list[int]) -> None:
        super().__init__()
        if not dims or any(d < 1 for d in dims):
            raise ValueError(f"matryoshka dimensions must be positive integers, not {dims!r}")
        self.main, self.dims = main, sorted(set(dims))

    def scale(self) -> torch.Tensor:
        return self.main.scale()

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        full = image.shape[-1]
        if self.dims[-1] > full:
            raise ValueError(f"matryoshka dimension {self.dims[-1]} is more than the {full} "
                             "the towers make")  # fmt: skip
        loss = image.new_zeros(())
        for d in sorted(set(self.dims) | {full}):
            loss = loss + self.main(F.normalize(image[:, :d], dim=-1),
                                    F.normalize(text[:, :d], dim=-1))  # fmt: skip
        return loss


def make_loss(kind: str, **kw) -> ClipLoss | SigLipLoss:
    if kind == "clip":
        return ClipLoss(local_loss=kw.get("local_loss", False))
    if kind == "siglip":
        return SigLipLoss(chunk_size=kw.get("chunk_size"))
    raise ValueError(f"loss must be 'clip' or 'siglip', not {kind!r}")
