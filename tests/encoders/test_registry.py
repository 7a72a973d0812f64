"""Model specs parse into exactly what they say, and every bad one gets a one-line reason."""

from __future__ import annotations

import pytest

from encoders import ModelLoadError, ModelSpec, ModelSpecError, load_encoder, parse_spec
from encoders.registry import local_checkpoints


def test_parse_open_clip_tag_and_path():
    assert parse_spec("open_clip:ViT-B-32@laion2b_s34b_b79k") == ModelSpec(
        "open_clip", "ViT-B-32", "laion2b_s34b_b79k"
    )
    assert parse_spec(" open_clip:ViT-B-32@/ckpt/a@b.pt ") == ModelSpec(
        "open_clip", "ViT-B-32", "/ckpt/a@b.pt"
    )
    assert str(parse_spec("open_clip:RN50@openai")) == "open_clip:RN50@openai"


def test_parse_house():
    assert parse_spec("house") == ModelSpec("house", "")
    assert parse_spec("house:/models/h") == ModelSpec("house", "/models/h")
    assert (str(parse_spec("house")), str(parse_spec("house:/m"))) == ("house", "house:/m")


def test_parse_hf_id_and_dir():
    assert parse_spec("hf:google/siglip-base-patch16-224") == ModelSpec(
        "hf", "google/siglip-base-patch16-224"
    )
    assert parse_spec("hf:/models/clip") == ModelSpec("hf", "/models/clip")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "",
            "empty model spec: expected 'house', 'house:DIR', "
            "'open_clip:ARCH@TAG_OR_CHECKPOINT', 'hf:HUB_ID_OR_DIR' or 'model:DIR'",
        ),
        (
            "clip-vit",
            "unknown model spec 'clip-vit': expected 'house', 'house:DIR', "
            "'open_clip:ARCH@TAG_OR_CHECKPOINT', 'hf:HUB_ID_OR_DIR' or 'model:DIR'",
        ),
        (
            "torch:ViT-B-32",
            "unknown model spec 'torch:ViT-B-32': expected 'house', 'house:DIR', "
            "'open_clip:ARCH@TAG_OR_CHECKPOINT', 'hf:HUB_ID_OR_DIR' or 'model:DIR'",
        ),
        ("hf:", "model spec 'hf:' names no model after 'hf:'"),
        (
            "open_clip:ViT-B-32",
            "model spec 'open_clip:ViT-B-32' needs ARCH@TAG_OR_CHECKPOINT, e.g. "
            "open_clip:ViT-B-32@laion2b_s34b_b79k or open_clip:ViT-B-32@/path/to/model.pt",
        ),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(ModelSpecError) as e:
        parse_spec(spec)
    assert str(e.value) == message


def test_unknown_architecture():
    with pytest.raises(ModelSpecError) as e:
        load_encoder("open_clip:ViT-Q-99@openai")
    assert str(e.value) == (
        "unknown open_clip architecture 'ViT-Q-99' (run `jointspace models` for the list)"
    )


def test_unknown_tag_lists_the_known_ones():
    with pytest.raises(ModelSpecError) as e:
        load_encoder("open_clip:RN50@nonsense")
    assert str(e.value).startswith(
        "'nonsense' is neither a checkpoint file nor a pretrained tag of RN50 (tags: openai, "
    )


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(ModelLoadError) as e:
        load_encoder(f"open_clip:ViT-B-32@{tmp_path}/missing.pt")
    assert str(e.value) == f"checkpoint file not found: {tmp_path}/missing.pt"


def test_missing_hf_directory(tmp_path):
    with pytest.raises(ModelLoadError) as e:
        load_encoder(f"hf:{tmp_path}/nothing-here")
    assert str(e.value) == f"model directory not found: {tmp_path}/nothing-here"


def test_hub_id_without_network_fails_with_one_line(monkeypatch):
    with pytest.raises(ModelLoadError) as e:
        load_encoder("hf:google/siglip-base-patch16-224")
    msg = str(e.value)
    assert msg.startswith("could not load hf:google/siglip-base-patch16-224: ")
    assert "\n" not in msg


def test_local_checkpoints_listing(tmp_path, tiny_clip_dir):
    (tmp_path / "a.pt").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "hfmodel").mkdir()
    (tmp_path / "hfmodel" / "config.json").write_text("{}")
    assert local_checkpoints([tmp_path]) == [
        f"open_clip:ARCH@{tmp_path}/a.pt",
        f"hf:{tmp_path}/hfmodel",
    ]
