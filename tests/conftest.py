"""Shared fixtures: small random-weight models written to temp dirs with the libraries' own save
functions, so every loading path is exercised offline."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest
import torch
from PIL import Image

WORDS = [
    "a",
    "an",
    "the",
    "photo",
    "of",
    "cat",
    "dog",
    "red",
    "blue",
    "green",
    "dress",
    "shoe",
    "bag",
    "car",
    "tree",
    "house",
    "sky",
    "sea",
    "big",
    "small",
    "striped",
    "plain",
    "picture",
    "drawing",
    "in",
    "with",
    "on",
    "and",
]


def build_tokenizer(bos: bool, eos: bool, max_len: int):
    """A word-level fast tokenizer saved like any transformers tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
    vocab = {w: i for i, w in enumerate(specials + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    single = " ".join((["[BOS]"] if bos else []) + ["$A"] + (["[EOS]"] if eos else []))
    tok.post_processor = processors.TemplateProcessing(
        single=single, special_tokens=[("[BOS]", 2), ("[EOS]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        bos_token="[BOS]",
        eos_token="[EOS]",
        model_max_length=max_len,
        model_input_names=["input_ids", "attention_mask"],
    )


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> str:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("tiny-clip")
    tok = build_tokenizer(bos=True, eos=True, max_len=16)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=16,
            bos_token_id=2,
            eos_token_id=3,
            pad_token_id=0,
        ),
        vision_config=dict(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
        ),
        projection_dim=24,
    )
    CLIPModel(config).eval().save_pretrained(d)
    tok.save_pretrained(d)
    CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(d)
    return str(d)


@pytest.fixture(scope="session")
def tiny_siglip_dir(tmp_path_factory) -> str:
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("tiny-siglip")
    tok = build_tokenizer(bos=False, eos=True, max_len=64)
    config = SiglipConfig(
        text_config=dict(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=64,
            pad_token_id=0,
            eos_token_id=3,
        ),
        vision_config=dict(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
        ),
    )
    SiglipModel(config).eval().save_pretrained(d)
    tok.save_pretrained(d)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(d)
    return str(d)


@pytest.fixture(scope="session")
def sample_images() -> list[Image.Image]:
    """Eight deterministic RGB images of different sizes and content."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(8):
        h, w = 40 + 7 * i, 64 - 3 * i
        arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        arr[: h // 2] = (37 * i % 256, 90, 200 - 20 * i)
        out.append(Image.fromarray(arr))
    return out


@pytest.fixture(scope="session")
def sample_texts() -> list[str]:
    return [
        "a photo of a cat",
        "a red dress",
        "the blue car in the big house",
        "a drawing",
        "a small striped bag on the sea with a green tree",
        "dog",
        "a plain picture of the sky",
        "an shoe",
    ]
