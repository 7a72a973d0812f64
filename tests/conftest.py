"""Shared fixtures: small random-weight models written to temp dirs with the libraries' own save
functions, so every loading path is exercised offline."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

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
def tiny_open_clip(tmp_path_factory) -> dict:
    """Tiny random-init open_clip architectures registered with open_clip (a ViT and a ResNet,
    whose image tower is convolutional), each with a checkpoint saved once: {name: (arch, path)}."""
    import json

    import open_clip

    cfg = tmp_path_factory.mktemp("oc-tiny-config")
    text = {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}
    archs = {
        "vit": ("jointspace-test-tune-vit", {"image_size": 32, "layers": 1, "width": 32,
                                             "patch_size": 8, "head_width": 16}),
        "rn": ("jointspace-test-tune-rn", {"image_size": 32, "layers": [1, 1, 1, 1],
                                           "width": 16}),
    }  # fmt: skip
    for arch, vision in archs.values():
        (cfg / f"{arch}.json").write_text(json.dumps(
            {"embed_dim": 24, "vision_cfg": vision, "text_cfg": text}))  # fmt: skip
    open_clip.add_model_config(cfg)
    out = {}
    for key, (arch, _) in archs.items():
        torch.manual_seed(1)
        path = tmp_path_factory.mktemp(f"oc-tiny-{key}") / "towers.pt"
        torch.save(open_clip.create_model(arch, pretrained=None).state_dict(), path)
        out[key] = (arch, path)
    return out


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
def tiny_clap_dir(tmp_path_factory) -> str:
    """A random-weight CLAP (text + audio) at 16 kHz with 2 s windows."""
    import warnings

    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("tiny-clap")
    tok = build_tokenizer(bos=True, eos=True, max_len=16)
    config = ClapConfig(
        text_config=dict(
            vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=24, pad_token_id=0, bos_token_id=2,
            eos_token_id=3,
        ),
        audio_config=dict(
            spec_size=64, num_mel_bins=16, patch_size=4, patch_stride=(4, 4), depths=[1, 1],
            num_attention_heads=[2, 2], window_size=4, patch_embeds_hidden_size=16,
            hidden_size=32,
        ),
        projection_dim=24,
    )  # fmt: skip
    ClapModel(config).eval().save_pretrained(d)
    tok.save_pretrained(d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few of 16 mel filters are empty at 16 kHz: harmless
        ClapFeatureExtractor(
            feature_size=16, sampling_rate=16_000, hop_length=160, max_length_s=2,
            fft_window_size=400, truncation="rand_trunc", padding="repeatpad",
        ).save_pretrained(d)  # fmt: skip
    return str(d)


def _tone(seconds: float, rate: int, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    """A sine with a rising second partial (so windows of it differ), float32 mono."""
    t = np.arange(int(seconds * rate)) / rate
    wave = amp * np.sin(2 * np.pi * freq * t) + 0.2 * amp * np.sin(2 * np.pi * (300 + 40 * t) * t)
    return wave.astype(np.float32)


@pytest.fixture(scope="session")
def tone():
    """tone(seconds, rate, freq=440, amp=0.5): a test signal, float32 mono."""
    return _tone


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


@pytest.fixture
def held_elsewhere():
    """`with held_elsewhere(root) as pid:` another process holds the data directory `root`;
    `held_elsewhere(path, opener="pymilvus.MilvusClient")` holds a milvus-lite database."""
    return _held_elsewhere


@contextlib.contextmanager
def _held_elsewhere(root, opener: str = "index.Catalog"):
    """Another process holding `root` open with `opener` (module.name, called with the path);
    yields its pid. The kernel lets go of its lock when it is killed on the way out."""
    module, name = opener.rsplit(".", 1)
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import time; from {module} import {name}; "
         f"{name}({str(root)!r}); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


# -- a tiny causal language model for the captioner -----------------------------------------------
LM_VOCAB = ["<pad>", "<unk>", "<eos>", ".", "a", "an", "red", "blue", "green", "boot", "dress",
         "bag", "cat", "horse", "kettle", "electric", "sound", "of"]  # fmt: skip


def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(
        models.WordLevel(vocab={w: i for i, w in enumerate(LM_VOCAB)}, unk_token="<unk>")
    )
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                   eos_token="<eos>")  # fmt: skip


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory) -> str:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    # initializer_range 0.5: random features strong enough for a prefix to steer the model
    cfg = LlamaConfig(vocab_size=len(LM_VOCAB), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=64, eos_token_id=2, pad_token_id=0,
                      bos_token_id=None, tie_word_embeddings=True,
                      initializer_range=0.5)  # fmt: skip
    d = tmp_path_factory.mktemp("tiny_lm")
    LlamaForCausalLM(cfg).save_pretrained(d)
    tiny_tokenizer().save_pretrained(d)
    return str(d)


@pytest.fixture(scope="session")
def captioned_dir(tmp_path_factory, tiny_lm_dir):
    """The shipped house model copied with a random captioner over the tiny language model."""
    import shutil

    from encoders.fingerprint import fingerprint
    from encoders.house import default_house_dir
    from encoders.modeldir import install_part, load_base, part_record, read_model_dir
    from generation.captioner import Captioner, Mapper
    from generation.lm import load_language_model

    d = tmp_path_factory.mktemp("house") / "house"
    shutil.copytree(default_house_dir(), d, ignore=shutil.ignore_patterns("captioner", "*.md"))
    lm, tok = load_language_model(tiny_lm_dir)
    torch.manual_seed(0)
    Captioner(Mapper(256, 32, prefix=4, hidden=64), lm, tok, 256, tiny_lm_dir).save(d / "captioner")
    md = read_model_dir(d)
    install_part(
        md, "captioner", part_record(md.base, fingerprint(load_base(md.base_spec(), "cpu")))
    )
    return d
