"""transformers backend: small CLIP and SigLIP models written with save_pretrained load through
`hf:DIR` and match the raw model; SigLIP text is padded to its fixed 64 tokens."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

from encoders import load_encoder


def raw_vectors(out) -> np.ndarray:
    feats = out if isinstance(out, torch.Tensor) else out.pooler_output
    return torch.nn.functional.normalize(feats.float(), dim=-1).numpy()


@pytest.fixture(scope="module")
def clip(tiny_clip_dir):
    return load_encoder(f"hf:{tiny_clip_dir}", device="cpu")


@pytest.fixture(scope="module")
def siglip(tiny_siglip_dir):
    return load_encoder(f"hf:{tiny_siglip_dir}", device="cpu")


def test_clip_metadata(clip, tiny_clip_dir):
    assert clip.name == f"hf:{tiny_clip_dir}"
    assert (clip.dim, clip.context_length, clip.loss) == (24, 16, "softmax")


def test_siglip_metadata(siglip):
    assert (siglip.dim, siglip.context_length, siglip.loss) == (32, 64, "sigmoid")


@pytest.mark.parametrize("which", ["clip", "siglip"])
def test_image_parity(which, request, sample_images):
    enc = request.getfixturevalue(which)
    d = request.getfixturevalue(f"tiny_{which}_dir")
    model = AutoModel.from_pretrained(d).eval()
    pixels = AutoImageProcessor.from_pretrained(d)(images=sample_images, return_tensors="pt")
    with torch.no_grad():
        raw = raw_vectors(model.get_image_features(pixel_values=pixels["pixel_values"]))
    np.testing.assert_allclose(enc.embed_images(sample_images), raw, atol=1e-5)


def test_clip_text_parity(clip, tiny_clip_dir, sample_texts):
    model = AutoModel.from_pretrained(tiny_clip_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_clip_dir)
    enc = tok(sample_texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        raw = raw_vectors(
            model.get_text_features(
                input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
            )
        )
    np.testing.assert_allclose(clip.embed_text(sample_texts), raw, atol=1e-5)


def test_siglip_text_is_padded_to_64(siglip, tiny_siglip_dir, sample_texts):
    model = AutoModel.from_pretrained(tiny_siglip_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_siglip_dir)
    fixed = tok(sample_texts, padding="max_length", max_length=64, return_tensors="pt")
    longest = tok(sample_texts, padding="longest", return_tensors="pt")
    assert fixed["input_ids"].shape == (8, 64)
    with torch.no_grad():
        want = raw_vectors(model.get_text_features(input_ids=fixed["input_ids"]))
        wrong = raw_vectors(model.get_text_features(input_ids=longest["input_ids"]))
    ours = siglip.embed_text(sample_texts)
    np.testing.assert_allclose(ours, want, atol=1e-5)
    # SigLIP pools the last position: padding to the longest text gives other vectors.
    assert np.abs(ours - wrong).max() > 1e-2


@pytest.mark.parametrize("which", ["clip", "siglip"])
def test_batch_invariance(which, request, sample_images, sample_texts):
    enc = request.getfixturevalue(which)
    np.testing.assert_allclose(
        enc.embed_images(sample_images),
        np.concatenate([enc.embed_images([im]) for im in sample_images]),
        atol=1e-4,
    )
    np.testing.assert_allclose(
        enc.embed_text(sample_texts),
        np.concatenate([enc.embed_text([t]) for t in sample_texts]),
        atol=1e-4,
    )


def test_truncation_flag(clip, siglip):
    long = " ".join(["cat"] * 70)
    res = clip.encode_text([long, "a cat"])
    assert res.n_tokens == [72, 4] and res.truncated == [True, False]
    res = siglip.encode_text([long, "a cat"])
    assert res.n_tokens == [71, 3] and res.truncated == [True, False]


def test_unsupported_family(tmp_path):
    from transformers import BertConfig, BertModel

    from encoders import ModelSpecError

    BertModel(
        BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    ).save_pretrained(tmp_path)
    with pytest.raises(ModelSpecError) as e:
        load_encoder(f"hf:{tmp_path}")
    assert (
        str(e.value) == f"hf:{tmp_path} is a 'bert' model; supported: align, clip, siglip, siglip2"
    )
