"""open_clip backend: a checkpoint written with torch.save loads through our spec and gives the same
vectors as the raw model; batching changes nothing; text truncation is reported."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch

from encoders import InputError, load_encoder

ARCH = "ViT-B-32"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A random-weight ViT-B-32, its val preprocessing and tokenizer, saved to a temp file."""
    torch.manual_seed(1)
    model, _, preprocess = open_clip.create_model_and_transforms(ARCH, pretrained=None)
    model.eval()
    path = tmp_path_factory.mktemp("oc") / "vit-b-32-random.pt"
    torch.save(model.state_dict(), path)
    return model, preprocess, open_clip.get_tokenizer(ARCH), path


@pytest.fixture(scope="module")
def encoder(reference):
    return load_encoder(f"open_clip:{ARCH}@{reference[3]}", device="cpu")


def normalised(x: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.normalize(x.float(), dim=-1).numpy()


def test_metadata(encoder, reference):
    assert encoder.name == f"open_clip:{ARCH}@{reference[3]}"
    assert encoder.dim == 512
    assert encoder.modalities == frozenset({"text", "image"})
    assert encoder.context_length == 77
    assert encoder.loss == "softmax"


def test_image_parity_with_raw_model(encoder, reference, sample_images):
    model, preprocess, _, _ = reference
    with torch.no_grad():
        raw = normalised(model.encode_image(torch.stack([preprocess(im) for im in sample_images])))
    ours = encoder.embed_images(sample_images)
    assert ours.dtype == np.float32
    assert ours.shape == (8, 512)
    np.testing.assert_allclose(ours, raw, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_text_parity_with_raw_model(encoder, reference, sample_texts):
    model, _, tokenizer, _ = reference
    with torch.no_grad():
        raw = normalised(model.encode_text(tokenizer(sample_texts)))
    np.testing.assert_allclose(encoder.embed_text(sample_texts), raw, atol=1e-5)


def test_batch_of_eight_equals_eight_single_calls(encoder, sample_images, sample_texts):
    batched = encoder.embed_images(sample_images)
    single = np.concatenate([encoder.embed_images([im]) for im in sample_images])
    np.testing.assert_allclose(batched, single, atol=1e-4)
    batched = encoder.embed_text(sample_texts)
    single = np.concatenate([encoder.embed_text([t]) for t in sample_texts])
    np.testing.assert_allclose(batched, single, atol=1e-4)


def test_truncation_is_reported(encoder):
    long = " ".join(["word"] * 100)
    res = encoder.encode_text(["a cat", long])
    assert res.n_tokens == [4, 102]
    assert res.truncated == [False, True]
    assert res.any_truncated


def test_empty_text_is_refused(encoder):
    with pytest.raises(InputError) as e:
        encoder.embed_text(["a cat", "  "])
    assert str(e.value) == "text 1 is empty"


def test_empty_lists_give_empty_arrays(encoder):
    assert encoder.embed_text([]).shape == (0, 512)
    assert encoder.embed_images([]).shape == (0, 512)


def test_unsupported_modality(encoder):
    from encoders import UnsupportedModality

    with pytest.raises(UnsupportedModality) as e:
        encoder.embed_audio([np.zeros(16000)])
    assert str(e.value).endswith("has no audio tower (it embeds: image, text)")
