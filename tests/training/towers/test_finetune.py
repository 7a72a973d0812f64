"""Fine-tuning a base's towers (training.towers.adapt, training.towers.finetune) on tiny
random-weight bases written by the tests (open_clip ViT and ResNet checkpoints, transformers CLIP
and SigLIP) and on the house model: LoRA adapters merged at export embed exactly as the adapters
did unmerged; lit leaves every image-tower weight bit-identical, head every weight but the
projections; a resumed run has the same loss curve as one that ran straight through."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from encoders.hf import HFEncoder
from encoders.house import HouseEncoder
from encoders.modeldir import load_base
from encoders.openclip import OpenClipEncoder
from training.parts import Pairs
from training.towers import finetune as ft
from training.towers.adapt import CannotTune, prepare, towers_of

COLOURS = {"red": (220, 30, 30), "blue": (30, 40, 220), "green": (30, 180, 40),
           "yellow": (230, 220, 30)}  # fmt: skip
BOXES = {"square": (8, 8, 24, 24), "bar": (2, 13, 30, 19), "dot": (13, 13, 19, 19)}


def draw(colour: str, shape: str) -> Image.Image:
    img = Image.new("RGB", (32, 32), "white")
    img.paste(COLOURS[colour], BOXES[shape])
    return img


def pairs() -> Pairs:
    items = [(c, s) for c in COLOURS for s in BOXES]
    return Pairs("shapes", images=[draw(c, s) for c, s in items],
                 captions=[f"a {c} {s}" for c, s in items], key="shapes")  # fmt: skip


@pytest.fixture(scope="module")
def bases(tiny_open_clip, tiny_clip_dir, tiny_siglip_dir) -> dict:
    (vit, vit_path), (rn, rn_path) = tiny_open_clip["vit"], tiny_open_clip["rn"]
    return {
        "open_clip": OpenClipEncoder(vit, str(vit_path), device="cpu"),
        "open_clip-resnet": OpenClipEncoder(rn, str(rn_path), device="cpu"),
        "hf-clip": HFEncoder(tiny_clip_dir, device="cpu"),
        "hf-siglip": HFEncoder(tiny_siglip_dir, device="cpu"),
        "house": HouseEncoder(device="cpu"),
    }


def tune(enc, mode: str, out, steps: int = 3, lr: float = 2e-2, **kw) -> ft.Tuner:
    towers = towers_of(enc)
    loss = "siglip" if enc.loss == "sigmoid" else "clip"
    cfg = ft.TuneConfig(mode=mode, loss=loss, steps=steps, batch_size=6, lr=lr, warmup=0,
                        out=str(out), **kw).checked()  # fmt: skip
    return ft.Tuner(cfg, prepare(towers, mode, cfg.rank, cfg.alpha, cfg.seed), pairs(), None, {})


def exported(tuner: ft.Tuner, folder):
    template, _ = tuner.export(folder)
    return load_base(template.format(folder=folder), device="cpu")


def image_state(enc) -> dict:
    """The image tower's weights and buffers of an encoder, by name."""
    if isinstance(enc, HouseEncoder):
        return dict(enc.image_tower.state_dict())
    model = enc.model
    return {k: v for k, v in model.state_dict().items()
            if k.startswith(("visual", "vision_model", "visual_projection"))}  # fmt: skip


def changed(a: object, b: object) -> set[str]:
    """Names of the weights that differ between two encoders' towers."""
    sa, sb = (e.model.state_dict() if not isinstance(e, HouseEncoder) else
              {**{f"image.{k}": v for k, v in e.image_tower.state_dict().items()},
               **{f"text.{k}": v for k, v in e.text_head.state_dict().items()}}
              for e in (a, b))  # fmt: skip
    assert sa.keys() == sb.keys()
    return {k for k in sa if not torch.equal(sa[k].float(), sb[k].float())}


@pytest.mark.parametrize("name", ["open_clip", "open_clip-resnet", "hf-clip", "hf-siglip", "house"])
def test_lora_merged_at_export_embeds_as_the_adapters_did_unmerged(bases, name, tmp_path):
    base = bases[name]
    tuner = tune(base, "lora", tmp_path / "run", steps=4)
    tuner.run()
    p = pairs()
    towers = tuner.towers.eval()
    assert tuner.adapted.lora is not None  # the adapters are still separate here
    with torch.no_grad():
        img, txt = towers(towers.image_inputs(p.images), *towers.text_inputs(p.captions))
    enc = exported(tuner, tmp_path / "model")
    got_img, got_txt = enc.embed_images(p.images), enc.embed_text(p.captions)
    assert np.abs(got_img - img.numpy()).max() <= 1e-5
    assert np.abs(got_txt - txt.numpy()).max() <= 1e-5
    # the adapters did change the towers, and no adapter weight is left in the export
    assert np.abs(got_img - base.embed_images(p.images)).max() > 1e-3
    assert not any("lora" in k for k in (enc.model.state_dict() if name != "house"
                                         else enc.image_tower.state_dict()))  # fmt: skip
    assert enc.logit_scale == pytest.approx(tuner.temperature()[0], rel=1e-4)


def test_lora_adapts_attention_and_mlp_and_a_conv_towers_convolutions(bases):
    vit = prepare(towers_of(bases["open_clip"]), "lora").targets
    assert (
        "visual.transformer.resblocks.0.attn" in vit and "transformer.resblocks.0.mlp.c_fc" in vit
    )
    assert not any("conv" in t for t in vit)  # a ViT's one convolution is its patch embedding
    rn = prepare(towers_of(bases["open_clip-resnet"]), "lora").targets
    assert "visual.layer1.0.conv2" in rn and "transformer.resblocks.0.attn" in rn
    assert not any("attnpool" in t for t in rn)  # its linear layers never run as modules
    house = prepare(towers_of(bases["house"]), "lora").targets
    assert "image.features.0" in house and "text.net.0" in house
    assert "image.proj" not in house and "text.net.2" not in house  # projections: --mode head


@pytest.mark.parametrize("name", ["open_clip", "hf-clip", "house"])
def test_lit_leaves_every_image_tower_weight_bit_identical(bases, name, tmp_path):
    base = bases[name]
    before = {k: v.clone() for k, v in image_state(base).items()}
    tuner = tune(base, "lit", tmp_path / "run")
    tuner.run()
    enc = exported(tuner, tmp_path / "model")
    after = image_state(enc)
    assert before.keys() == after.keys() and before
    assert [k for k in before if not torch.equal(before[k].float(), after[k].float())] == []
    assert changed(base, enc) - {"logit_scale", "logit_bias"}  # the text side did train


@pytest.mark.parametrize("name", ["open_clip", "hf-clip", "hf-siglip", "house"])
def test_head_changes_only_the_projections(bases, name, tmp_path):
    base = bases[name]
    tuner = tune(base, "head", tmp_path / "run")
    tuner.run()
    enc = exported(tuner, tmp_path / "model")
    towers = tuner.towers
    moved = changed(base, enc) - {"logit_scale", "logit_bias"}
    assert moved and all(towers.is_projection(k) for k in moved), moved
    assert any(towers.is_image(k) for k in moved) and any(not towers.is_image(k) for k in moved)


@pytest.mark.parametrize(("name", "mode"), [("open_clip", "lora"), ("house", "full")])
def test_a_resumed_run_has_the_same_loss_curve(bases, name, mode, tmp_path):
    straight = tune(bases[name], mode, tmp_path / "a", steps=6, lr=5e-3, save_every=3)
    straight.run()
    first = tune(bases[name], mode, tmp_path / "b", steps=6, lr=5e-3, save_every=3)
    first.run(stop_at=3)  # a run killed after its checkpoint at step 3
    again = tune(bases[name], mode, tmp_path / "b", steps=6, lr=5e-3, save_every=3)
    assert again.resume() and again.step == 3
    again.run()
    got, want = [h["loss"] for h in again.history], [h["loss"] for h in straight.history]
    if mode == "lora":  # peft folds attention adapters in and out around each forward: rounding
        np.testing.assert_allclose(got, want, rtol=1e-5)
    else:
        assert got == want


def test_what_a_base_or_mode_cannot_do_is_refused_with_why(bases, tiny_clap_dir):
    with pytest.raises(CannotTune) as e:
        towers_of(HFEncoder(tiny_clap_dir, device="cpu"))
    assert str(e.value) == (
        f"fine-tuning trains a text tower and an image tower together; 'hf:{tiny_clap_dir}' has "
        "no image tower (it embeds audio, text)"
    )
    with pytest.raises(CannotTune) as e:
        ft.check_loss(towers_of(bases["hf-clip"]), "siglip")
    assert "fine-tune it with --loss clip, its own" in str(e.value)
    ft.check_loss(towers_of(bases["house"]), "clip")  # the house records either
    with pytest.raises(ft.BadTuning, match="--lr must be above 0 and at most 1, not 5"):
        ft.TuneConfig(lr=5.0).checked()
    with pytest.raises(ft.BadTuning, match="--steps must be from 1 to 1,000,000, not 0"):
        ft.TuneConfig(steps=0).checked()
