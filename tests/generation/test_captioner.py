"""The captioner on a tiny random language model: shapes, a training run that learns a toy
problem exactly, deterministic and batch-independent decoding, files, and the language model's
float cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from generation.captioner import (
    Captioner,
    CaptionerError,
    Mapper,
    first_sentence,
    has_captioner,
    load_captioner,
)
from generation.lm import load_language_model
from training.captioner.data import Captions, sentence
from training.captioner.train import CaptionConfig, CaptionTrainer, gap_noise, run, tokenize

TOY = ["a red boot.", "a blue dress.", "a green bag.", "an electric kettle."]


def toy_data(dim: int = 16) -> Captions:
    rng = np.random.default_rng(0)
    v = rng.normal(size=(len(TOY), dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return Captions(v, v.copy(), list(TOY), ["toy"] * len(TOY))


@pytest.fixture(scope="module")
def trained(tiny_lm_dir, tmp_path_factory) -> Captioner:
    """The mapper trained on four captions, picture vectors only, until it writes them."""
    lm, tok = load_language_model(tiny_lm_dir)
    cfg = CaptionConfig(out=str(tmp_path_factory.mktemp("run")), steps=150, batch_size=8,
                        lr=1e-2, warmup=10, prefix=4, hidden=64, text_share=0.0)  # fmt: skip
    trainer = CaptionTrainer(cfg, toy_data(), lm, tok, tiny_lm_dir, log=lambda *_: None)
    folder = run(trainer)
    assert has_captioner(folder) and trainer.losses[-1] < trainer.losses[0] / 5
    return load_captioner(folder)


def test_mapper_shapes():
    m = Mapper(dim=16, lm_dim=32, prefix=3, hidden=8)
    assert m(torch.zeros(5, 16)).shape == (5, 3, 32)


def test_training_learns_the_toy_captions_exactly(trained):
    assert trained.caption(toy_data().images, max_tokens=8) == TOY


def test_greedy_decoding_is_deterministic_and_batch_independent(trained):
    rng = np.random.default_rng(3)
    v = rng.normal(size=(6, 16)).astype(np.float32)
    together = trained.caption(v, max_tokens=6)
    assert trained.caption(v, max_tokens=6) == together
    assert [trained.caption(v[i : i + 1], max_tokens=6)[0] for i in range(6)] == together


def test_beam_search_and_token_counts(trained):
    out = trained.caption_counted(toy_data().images, max_tokens=8, beams=3)
    assert [t for t, _ in out] == TOY
    assert [n for _, n in out] == [4, 4, 4, 4]  # words and the full stop, not the end token
    assert trained.caption(toy_data().images[:1], max_tokens=1) == ["a"]


def test_wrong_vectors_are_refused(trained):
    with pytest.raises(
        CaptionerError, match=r"^the captioner reads 16-d vectors, got shape \(2, 8\)$"
    ):
        trained.caption(np.zeros((2, 8), np.float32))
    assert trained.caption(np.zeros((0, 16), np.float32)) == []


def test_a_mapper_for_another_language_model_is_a_load_error(trained, tmp_path):
    trained.save(tmp_path / "cap")
    cfg = json.loads((tmp_path / "cap" / "captioner.json").read_text())
    (tmp_path / "cap" / "captioner.json").write_text(json.dumps(cfg | {"lm_dim": 64}))
    with pytest.raises(
        CaptionerError, match=r"the mapper writes 64-d prefixes, the language model reads 32-d$"
    ):
        load_captioner(tmp_path / "cap")
    (tmp_path / "cap" / "captioner.json").write_text("{")
    with pytest.raises(CaptionerError, match=r": not a captioner \("):
        load_captioner(tmp_path / "cap")


def test_tokenize_appends_the_end_token_and_pads(tiny_lm_dir):
    _, tok = load_language_model(tiny_lm_dir)
    ids, mask = tokenize(tok, ["a red boot.", "a cat."])
    assert ids.tolist() == [[4, 6, 9, 3, 2], [4, 12, 3, 2, 2]]
    assert mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]


def test_gap_noise_matches_the_picture_to_caption_cosine():
    c = toy_data(dim=64)
    c.texts = np.roll(c.images, 1, axis=1) * 0.5 + c.images * 0.5
    c.texts /= np.linalg.norm(c.texts, axis=1, keepdims=True)
    cos = float(np.mean(np.sum(c.images * c.texts, axis=1)))
    std = gap_noise(c)
    rng = np.random.default_rng(0)
    t = c.texts[0] + std * rng.normal(size=(4000, 64))
    got = np.mean(t @ c.texts[0] / np.linalg.norm(t, axis=1))
    assert abs(got - cos) < 0.02


def test_resume_continues_from_the_checkpoint(tiny_lm_dir, tmp_path):
    lm, tok = load_language_model(tiny_lm_dir)
    cfg = CaptionConfig(out=str(tmp_path), steps=6, batch_size=4, prefix=2, hidden=16, save_every=3)
    a = CaptionTrainer(cfg, toy_data(), lm, tok, tiny_lm_dir)
    for _ in range(4):
        a.train_step()
    b = CaptionTrainer(cfg, toy_data(), lm, tok, tiny_lm_dir)
    assert b.resume() and b.step == 3 and b.losses == a.losses[:3]
    run(b)
    assert b.step == 6 and len(b.losses) == 6


def test_sentences():
    assert first_sentence("a red  boot. and more") == "a red boot."
    assert first_sentence("no stop") == "no stop"
    assert [sentence(w) for w in ("A horse", "dog face", "electric kettle", "The letter T", "")] == [
        "a horse.", "a dog face.", "an electric kettle.", "the letter T.", ""
    ]  # fmt: skip


def test_the_float_cache_of_a_gguf_model_loads_the_same_weights(tiny_lm_dir, tmp_path):
    from generation.lm import _read_cache, _write_cache

    lm, tok = load_language_model(tiny_lm_dir)
    _write_cache(tmp_path / "c", lm, tok, {"file": "x.gguf"})
    again, tok2 = _read_cache(tmp_path / "c")
    ids = torch.tensor([[4, 6, 9, 3]])
    torch.testing.assert_close(again(ids).logits, lm(ids).logits)
    assert tok2("a red boot.").input_ids == tok("a red boot.").input_ids
