"""The image decoder and the prior on tiny random networks: deterministic sampling per seed, shapes
and value range, guidance, files and refusals; the training step, a run's files, resuming, and the
prior learning a toy mapping."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from generation.decoder import (
    DecoderConfig,
    DecoderError,
    ImageDecoder,
    NoDecoder,
    decoder_dir,
    has_decoder,
    load_decoder,
    require_decoder,
    sample,
    save_decoder,
)
from generation.prior import Prior, has_prior, load_prior, save_prior
from training.decoder.data import DecoderData
from training.decoder.train import (
    DecoderTrainConfig,
    DecoderTrainer,
    prior_only,
    run,
    source_weights,
    train_prior,
)

TINY = DecoderConfig(embed_dim=8, image_size=8, channels=(8, 16), norm_groups=4)


def tiny_decoder(seed: int = 0) -> ImageDecoder:
    torch.manual_seed(seed)
    dec = ImageDecoder(TINY)
    with torch.no_grad():  # diffusers zero-initialises nothing we rely on; make the output vary
        for p in dec.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return dec.eval()


def unit(n: int, d: int = 8, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def toy_data(n: int = 32) -> DecoderData:
    """Pictures that are one flat colour each, conditioned on a vector that encodes the colour."""
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, size=(n, 3))
    pixels = np.broadcast_to(colours[:, None, None, :], (n, 8, 8, 3)).astype(np.uint8).copy()
    images = np.concatenate([colours / 255.0 - 0.5, rng.normal(size=(n, 5)) * 0.01], 1)
    images = (images / np.linalg.norm(images, axis=1, keepdims=True)).astype(np.float32)
    rotation = np.linalg.qr(rng.normal(size=(8, 8)))[0]
    texts = (images @ rotation).astype(np.float32)  # the prior has a mapping to learn
    sources = ["fashion"] * (n - 4) + ["emoji"] * 4
    return DecoderData(pixels, images, texts, [f"c{i}" for i in range(n)], sources)


def test_sampling_is_deterministic_per_seed_with_uint8_pictures():
    dec = tiny_decoder()
    v = unit(3)
    a = sample(dec, v, steps=4, guidance=3.0, seed=7)
    assert a.shape == (3, 8, 8, 3) and a.dtype == np.uint8
    assert np.array_equal(a, sample(dec, v, steps=4, guidance=3.0, seed=7))
    assert not np.array_equal(a, sample(dec, v, steps=4, guidance=3.0, seed=8))
    assert not np.array_equal(a, sample(dec, v, steps=4, guidance=1.0, seed=7))
    assert a.min() >= 0 and a.max() <= 255 and len(np.unique(a)) > 10


def test_sampling_normalises_vectors_and_refuses_bad_ones():
    dec = tiny_decoder()
    v = unit(2)
    assert np.array_equal(sample(dec, v, 3, seed=1), sample(dec, 5 * v, 3, seed=1))
    with pytest.raises(DecoderError, match=r"the decoder takes 8-d vectors, got shape \(2, 7\)"):
        sample(dec, v[:, :7], 3)
    bad = v.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DecoderError, match="vectors must be finite numbers"):
        sample(dec, bad, 3)


def test_the_null_vector_replaces_dropped_conditions():
    dec = tiny_decoder()
    x, t, v = torch.randn(2, 3, 8, 8), torch.tensor([5, 5]), torch.from_numpy(unit(2))
    dropped = dec(x, t, v, torch.tensor([False, False]))
    other = dec(x, t, torch.from_numpy(unit(2, seed=3)), torch.tensor([False, False]))
    assert torch.equal(dropped, other)  # the vector is not seen at all
    assert not torch.equal(dropped, dec(x, t, v))


def test_files_round_trip_and_refusals(tmp_path):
    dec = tiny_decoder()
    save_decoder(tmp_path / "decoder", dec)
    assert has_decoder(tmp_path / "decoder") and not has_prior(tmp_path / "decoder")
    back = load_decoder(tmp_path / "decoder")
    v = unit(2)
    assert np.array_equal(sample(dec, v, 3, seed=2), sample(back, v, 3, seed=2))
    with pytest.raises(DecoderError, match=f"no image decoder at {tmp_path}"):
        load_decoder(tmp_path)
    (tmp_path / "decoder" / "decoder.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(DecoderError, match="cannot load the image decoder at"):
        load_decoder(tmp_path / "decoder")


def test_a_model_without_a_decoder_names_the_models_with_one(tmp_path):
    class Enc:
        name, parts = "hf:tiny", {"decoder": tmp_path / "decoder"}

    assert decoder_dir(Enc()) is None  # named as a part, but no decoder's files are there
    with pytest.raises(NoDecoder) as e:
        require_decoder(Enc())
    assert str(e.value) == ("model 'hf:tiny' has no image decoder; models with one: 'house', and "
                            "model directories with an image decoder (model:DIR; train one: "
                            "jointspace train --target decoder --model DIR --data SRC)")  # fmt: skip
    save_decoder(tmp_path / "decoder", tiny_decoder())
    assert require_decoder(Enc()) == tmp_path / "decoder"


def test_prior_files_keep_the_decoder_config(tmp_path):
    save_decoder(tmp_path, tiny_decoder())
    torch.manual_seed(0)
    prior = Prior(8, 16)
    save_prior(tmp_path, prior)
    save_decoder(tmp_path, tiny_decoder(1))  # a decoder saved after the prior keeps its shape
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["extra"]["prior"] == {"dim": 8, "hidden": 16} and cfg["channels"] == [8, 16]
    back = load_prior(tmp_path)
    t = unit(4)
    out = back.image_vectors(t)
    assert np.allclose(out, prior.image_vectors(t)) and np.allclose(np.linalg.norm(out, axis=1), 1)
    with pytest.raises(DecoderError, match=r"the prior takes 8-d vectors, got shape \(4, 3\)"):
        back.image_vectors(t[:, :3])


def test_source_weights_give_other_pictures_their_share():
    w = source_weights(["fashion"] * 8 + ["emoji"] * 2, 0.2)
    assert torch.allclose(w[:8], torch.full((8,), 0.1)) and torch.allclose(
        w[8:], torch.full((2,), 0.1)
    )
    assert torch.equal(source_weights(["emoji", "tuxpaint"], 0.2), torch.ones(2))


def test_training_steps_lower_the_loss_and_a_run_resumes(tmp_path):
    data = toy_data()
    cfg = DecoderTrainConfig(out=str(tmp_path), steps=6, batch_size=8, lr=3e-3, warmup=1,
                             channels=(8, 16), prior_steps=5, prior_batch=8, prior_hidden=16,
                             save_every=3)  # fmt: skip
    trainer = DecoderTrainer(cfg, data, "toy")
    before = [p.detach().clone() for p in trainer.decoder.parameters()]
    for _ in range(3):
        loss = trainer.train_step()
    assert np.isfinite(loss) and trainer.step == 3 and (tmp_path / "checkpoint.pt").is_file()
    assert any(
        not torch.equal(a, b) for a, b in zip(before, trainer.decoder.parameters(), strict=True)
    )
    again = DecoderTrainer(cfg, data, "toy")
    assert again.resume() and again.step == 3 and again.losses == trainer.losses
    folder = run(again)
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json", "decoder.safetensors", "losses.json", "prior.safetensors", "training.json"
    ]  # fmt: skip
    log = json.loads((folder / "training.json").read_text())
    assert log["decoder"]["steps"] == 6 and log["prior"]["steps"] == 5
    assert log["sources"] == {"emoji": 4, "fashion": 28} and log["model"] == "toy"
    assert json.loads((folder / "config.json").read_text())["extra"]["model"] == "toy"
    assert sample(load_decoder(folder), data.images[:2], 2).shape == (2, 8, 8, 3)


def test_the_prior_learns_a_toy_mapping():
    data = toy_data(64)
    cfg = DecoderTrainConfig(prior_steps=300, prior_batch=32, prior_hidden=64, prior_lr=3e-3)
    prior, log = train_prior(data, cfg)
    cos = np.sum(prior.image_vectors(data.texts) * data.images, 1)
    assert cos.mean() > 0.95 and log["final_loss"] < 0.05
    assert log["cosine_text_to_image"] == pytest.approx(
        float(np.mean(np.sum(data.texts * data.images, 1)))
    )


def test_prior_only_needs_a_decoder(tmp_path):
    cfg = DecoderTrainConfig(out=str(tmp_path), prior_steps=2, prior_batch=4, prior_hidden=8)
    with pytest.raises(
        ValueError, match=f"no decoder in {tmp_path / 'model'}: train --target decoder first"
    ):
        prior_only(toy_data(), cfg)
    save_decoder(tmp_path / "model", tiny_decoder())
    assert prior_only(toy_data(), cfg) == tmp_path / "model"
    assert json.loads((tmp_path / "model" / "training.json").read_text())["prior"]["steps"] == 2
