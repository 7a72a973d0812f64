"""Losses equal open_clip's (values and gradients), chunked equals plain, and two processes
equal one process on the concatenated batch."""

from __future__ import annotations

import math
import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from open_clip.loss import ClipLoss as OCClipLoss
from open_clip.loss import SigLipLoss as OCSigLipLoss

from training.losses import ClipLoss, SigLipLoss, clip_loss, siglip_loss

N, D = 24, 16

# Spawned workers import this module by its dotted name: the repository root must be on sys.path.
ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def features(seed: int, n: int = N):
    g = torch.Generator().manual_seed(seed)
    img = F.normalize(torch.randn(n, D, generator=g, dtype=torch.float64), dim=-1)
    txt = F.normalize(torch.randn(n, D, generator=g, dtype=torch.float64), dim=-1)
    return img.requires_grad_(), txt.requires_grad_()


def grads(loss_fn, *tensors):
    loss = loss_fn(*tensors)
    loss.backward()
    return loss.detach(), [t.grad.clone() for t in tensors]


def test_initial_temperatures():
    assert ClipLoss().scale().item() == pytest.approx(1 / 0.07)
    s = SigLipLoss()
    assert (s.logit_scale.item(), s.logit_bias.item()) == (pytest.approx(math.log(10)), -10.0)


def test_clip_loss_equals_open_clip():
    img, txt = features(0)
    scale = torch.tensor(14.3, dtype=torch.float64, requires_grad=True)
    ours = grads(lambda a, b, s: clip_loss(a, b, s), img, txt, scale)
    img2, txt2 = features(0)
    scale2 = torch.tensor(14.3, dtype=torch.float64, requires_grad=True)
    ref = grads(lambda a, b, s: OCClipLoss()(a, b, s), img2, txt2, scale2)
    torch.testing.assert_close(ours[0], ref[0], atol=1e-5, rtol=0)
    for a, b in zip(ours[1], ref[1], strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("chunk", [None, 5, 24, 64])
def test_siglip_loss_equals_open_clip(chunk):
    def ours_fn(a, b, s, bias):
        return siglip_loss(a, b, s, bias, chunk_size=chunk)

    def ref_fn(a, b, s, bias):
        return OCSigLipLoss()(a, b, s, bias)

    made = []
    for fn in (ours_fn, ref_fn):
        img, txt = features(1)
        s = torch.tensor(10.0, dtype=torch.float64, requires_grad=True)
        bias = torch.tensor(-10.0, dtype=torch.float64, requires_grad=True)
        made.append(grads(fn, img, txt, s, bias))
    (l1, g1), (l2, g2) = made
    torch.testing.assert_close(l1, l2, atol=1e-5, rtol=0)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_chunked_equals_plain_in_float32():
    torch.manual_seed(0)
    img = F.normalize(torch.randn(300, 32), dim=-1).requires_grad_()
    txt = F.normalize(torch.randn(300, 32), dim=-1).requires_grad_()
    loss_mod = SigLipLoss()
    plain = grads(lambda a, b: loss_mod(a, b), img, txt)
    img2, txt2 = img.detach().clone().requires_grad_(), txt.detach().clone().requires_grad_()
    chunked_mod = SigLipLoss(chunk_size=64)
    chunked = grads(lambda a, b: chunked_mod(a, b), img2, txt2)
    torch.testing.assert_close(plain[0], chunked[0], atol=1e-5, rtol=1e-5)
    for a, b in zip(plain[1], chunked[1], strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


# -- two processes (gloo on CPU) against one -------------------------------------------------
def _worker(rank: int, world: int, init: str, out: str, kind: str, local: bool, chunk) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        img_all, txt_all = features(7, N * world)
        n = N
        img = img_all[rank * n : (rank + 1) * n].detach().clone().requires_grad_()
        txt = txt_all[rank * n : (rank + 1) * n].detach().clone().requires_grad_()
        s = torch.tensor(12.0, dtype=torch.float64, requires_grad=True)
        bias = torch.tensor(-8.0, dtype=torch.float64, requires_grad=True)
        if kind == "clip":
            loss = clip_loss(img, txt, s, local_loss=local)
        else:
            loss = siglip_loss(img, txt, s, bias, chunk_size=chunk)
        loss.backward()
        torch.save(
            {
                "loss": loss.detach(),
                "img": img.grad,
                "txt": txt.grad,
                "s": s.grad,
                "bias": bias.grad,
            },
            f"{out}/rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize(
    ("kind", "local", "chunk"),
    [("clip", False, None), ("clip", True, None), ("siglip", False, None), ("siglip", False, 10)],
)
def test_two_processes_equal_one(kind, local, chunk):
    world = 2
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        mp.spawn(_worker, args=(world, f"file://{tmp}/rdzv", tmp, kind, local, chunk), nprocs=world)
        parts = [torch.load(f"{tmp}/rank{r}.pt") for r in range(world)]
    img, txt = features(7, N * world)
    s = torch.tensor(12.0, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(-8.0, dtype=torch.float64, requires_grad=True)
    if kind == "clip":
        loss = clip_loss(img, txt, s)
    else:
        loss = siglip_loss(img, txt, s, bias)
    loss.backward()
    # Each rank's loss covers its share; their mean is the global loss.
    torch.testing.assert_close(
        sum(p["loss"] for p in parts) / world, loss.detach(), atol=1e-6, rtol=0
    )
    # The gather's backward sums over ranks, so each rank holds world x its slice of the global
    # gradient; DDP's gradient averaging divides by world again.
    got_img = torch.cat([p["img"] for p in parts]) / world
    got_txt = torch.cat([p["txt"] for p in parts]) / world
    torch.testing.assert_close(got_img, img.grad, atol=1e-6, rtol=0)
    torch.testing.assert_close(got_txt, txt.grad, atol=1e-6, rtol=0)
    torch.testing.assert_close(sum(p["s"] for p in parts) / world, s.grad, atol=1e-6, rtol=0)
    if kind == "siglip":
        torch.testing.assert_close(
            sum(p["bias"] for p in parts) / world, bias.grad, atol=1e-6, rtol=0
        )


def test_matryoshka_is_the_loss_summed_over_prefixes():
    import torch.nn.functional as F

    from training.losses import ClipLoss, Matryoshka, SigLipLoss

    torch.manual_seed(0)
    img = F.normalize(torch.randn(6, 8), dim=-1)
    txt = F.normalize(torch.randn(6, 8), dim=-1)
    for main in (ClipLoss(), SigLipLoss()):
        want = sum(main(F.normalize(img[:, :d], dim=-1), F.normalize(txt[:, :d], dim=-1))
                   for d in (2, 4, 8))  # fmt: skip
        got = Matryoshka(main, [4, 2])(img, txt)
        assert torch.allclose(got, want, atol=1e-6)
        assert Matryoshka(main, [2]).scale() is not None
    with pytest.raises(
        ValueError, match=r"^matryoshka dimension 16 is more than the 8 the towers make$"
    ):
        Matryoshka(ClipLoss(), [16])(img, txt)
    with pytest.raises(
        ValueError, match=r"^matryoshka dimensions must be positive integers, not \[\]$"
    ):
        Matryoshka(ClipLoss(), [])
