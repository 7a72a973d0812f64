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
        str(e.value)
        == f"hf:{tmp_path} is a 'bert' model; supported: align, clap, clip, siglip, siglip2"
    )


# -- CLAP: text + audio --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clap(tiny_clap_dir):
    return load_encoder(f"hf:{tiny_clap_dir}", device="cpu")


def test_clap_metadata(clap):
    assert sorted(clap.modalities) == ["audio", "text"]
    assert (clap.dim, clap.audio_rate, clap.audio_window, clap.loss) == (24, 16_000, 2.0, "softmax")


def _clips(tone, seconds=(1.0, 0.6, 1.7)):
    from encoders import Waveform

    return [Waveform(tone(s, 16_000, 300 + 100 * i), 16_000) for i, s in enumerate(seconds)]


def test_clap_audio_parity(clap, tiny_clap_dir, tone):
    from transformers import AutoFeatureExtractor

    model = AutoModel.from_pretrained(tiny_clap_dir).eval()
    fe = AutoFeatureExtractor.from_pretrained(tiny_clap_dir)
    clips = _clips(tone)
    feats = fe([c.samples for c in clips], sampling_rate=16_000, return_tensors="pt")
    with torch.no_grad():
        raw = raw_vectors(model.get_audio_features(**feats))
    np.testing.assert_allclose(clap.embed_audio(clips), raw, atol=1e-5)


def test_clap_text_parity(clap, tiny_clap_dir, sample_texts):
    model = AutoModel.from_pretrained(tiny_clap_dir).eval()
    enc = AutoTokenizer.from_pretrained(tiny_clap_dir)(
        sample_texts, padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        raw = raw_vectors(model.get_text_features(**enc))
    np.testing.assert_allclose(clap.embed_text(sample_texts), raw, atol=1e-5)


def test_clap_audio_batched_equals_one_by_one(clap, tone):
    clips = _clips(tone, (1.0, 0.6, 5.3))
    together = clap.encode_audio(clips)
    for i, c in enumerate(clips):
        alone = clap.encode_audio([c])
        np.testing.assert_allclose(alone.vectors[0], together.vectors[i], atol=1e-5)
        np.testing.assert_allclose(alone.segment_vectors[0], together.segment_vectors[i], atol=1e-5)


def test_clap_long_audio_is_windowed(clap, tone):
    res = clap.encode_audio(_clips(tone, (5.3,)))
    assert res.segments == [[(0.0, 2.0), (2.0, 4.0), (4.0, 5.3)]]
    w = res.segment_vectors[0]
    mean = 2.0 * w[0] + 2.0 * w[1] + 1.3 * w[2]  # weighted by each window's length
    pooled = mean / np.linalg.norm(mean)
    np.testing.assert_allclose(res.vectors[0], pooled, atol=1e-6)


def test_clap_refuses_images_and_long_windows(clap, sample_images, tone):
    from encoders import InputError, UnsupportedModality

    with pytest.raises(UnsupportedModality, match=r"has no image tower \(it embeds: audio, text\)"):
        clap.embed_images(sample_images[:1])
    with pytest.raises(
        InputError, match=r"audio window of 5 s is longer than model .* takes \(2 s\)"
    ):
        clap.embed_audio(_clips(tone, (1.0,)), window=5)
