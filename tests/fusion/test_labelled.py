"""Labelled data for `jointspace fit-classifier`: a folder per label or a table, embedded with the
model, refused with what to fix; the command end to end on a tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from fusion.classifier import ClassifierError
from fusion.registry import Registry, head_registry
from training.fusion.labelled import embed_examples, read_examples

COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220)}


@pytest.fixture
def labelled(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "lab"
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(10):
            c = tuple(int(x) for x in np.clip(np.array(rgb) + rng.normal(0, 20, 3), 0, 255))
            Image.new("RGB", (32, 32), c).save(root / name / f"{i}.png")
            if i % 2 == 0:
                (root / name / f"{i}.txt").write_text(f"a {name} square")
        (root / name / "note.txt").write_text(f"{name}")  # a text-only example
    return root


def test_a_folder_per_label_groups_parts_by_stem(labelled):
    ex = read_examples(labelled)
    assert len(ex) == 22
    label, parts = ex[0]
    assert label == "blue" and parts["text"] == "a blue square" and parts["image"].name == "0.png"
    assert [p for lab, p in ex if "image" not in p] == [{"text": "blue"}, {"text": "red"}]


def test_a_table_of_parts(tmp_path, labelled):
    rows = [{"label": "red", "image": "lab/red/1.png"}, {"label": "blue", "text": "blue"}]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    ex = read_examples(tmp_path / "t.jsonl")
    assert ex == [("red", {"image": (labelled / "red" / "1.png").resolve()}),
                  ("blue", {"text": "blue"})]  # fmt: skip


def test_refusals(tmp_path, labelled, tiny_clip_dir):
    from encoders import load_encoder

    (labelled / "red" / "x.pdf").write_bytes(b"%PDF")
    with pytest.raises(ClassifierError, match=r"x\.pdf: unknown kind of file; a label folder"):
        read_examples(labelled)
    (tmp_path / "t.jsonl").write_text('{"text": "a"}\n')
    with pytest.raises(ClassifierError) as e:
        read_examples(tmp_path / "t.jsonl")
    assert (
        str(e.value) == f"{tmp_path / 't.jsonl'}: row 1 has no label (a `label` column is required)"
    )
    enc = load_encoder(f"hf:{tiny_clip_dir}")
    with pytest.raises(ClassifierError) as e:
        embed_examples([("a", {"text": "x"}), ("a", {"text": "y"})], enc)
    assert str(e.value) == "a classifier needs at least two labels, got 1: ['a']"
    with pytest.raises(ClassifierError) as e:
        embed_examples([("a", {"audio": tmp_path / "x.wav"}), ("b", {"text": "y"})], enc)
    assert str(e.value).startswith("the data has audio parts, which model 'hf:")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ClassifierError, match=r"^cannot use a labelled image: "):
        embed_examples([("a", {"image": tmp_path / "bad.png"}), ("b", {"text": "y"})], enc)


def test_fit_classifier_command(labelled, tmp_path, tiny_clip_dir):
    res = CliRunner().invoke(app, ["fit-classifier", "--data", str(labelled), "--out", "colours",
                                   "--fusion", "attention", "--model", f"hf:{tiny_clip_dir}",
                                   "--data-dir", str(tmp_path / "data"), "--epochs", "30"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "classifier 'colours': attention fusion of text, image, 2 labels, 18 training" in (
        res.stdout
    )
    status = Registry(tmp_path / "data" / "classifiers").status("colours")
    assert (status["status"], status["classes"], status["model"]) == (
        "ready",
        ["blue", "red"],
        f"hf:{tiny_clip_dir}",
    )
    res = CliRunner().invoke(app, ["fit-classifier", "--data", str(labelled), "--out", "x",
                                   "--fusion", "median"])  # fmt: skip
    assert res.exit_code == 2
    assert res.stderr == "error: --fusion must be one of early, late, attention, not 'median'\n"


def test_things_for_a_fusion_head(tmp_path, labelled):
    ex = read_examples(labelled, things=True)
    assert [g for g, _ in ex[:3]] == ["blue/0", "blue/1", "blue/2"]
    assert ex[0][1]["text"] == "a blue square" and ex[0][1]["image"].name == "0.png"
    rows = [{"group": "g1", "image": "lab/red/1.png"}, {"group": "g1", "text": "red"},
            {"text": "blue"}]  # fmt: skip
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    assert [g for g, _ in read_examples(tmp_path / "t.jsonl", things=True)] == ["g1", "g1", "row 3"]


def test_fit_fusion_head_command(labelled, tmp_path, tiny_clip_dir):
    args = ["fit-fusion-head", "--data", str(labelled), "--model", f"hf:{tiny_clip_dir}",
            "--data-dir", str(tmp_path / "data"), "--epochs", "5"]  # fmt: skip
    res = CliRunner().invoke(app, [*args, "--out", "squares"])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith(
        "fusion head 'squares': 8 training examples; validation leave-one-out recall@1 "
    )
    status = head_registry(tmp_path / "data").status("squares")
    assert (status["status"], status["parts"], status["model"]) == (
        "ready", ["text", "image"], f"hf:{tiny_clip_dir}")  # fmt: skip
    (labelled / "red" / "0.txt").unlink()  # nine things with two parts are left
    res = CliRunner().invoke(app, [*args, "--out", "fewer"])
    assert res.exit_code == 2
    assert res.stderr.splitlines()[-1] == (
        "error: a fusion head learns from things with two or more parts: the data has 9, it "
        "needs at least 10"
    )
    assert head_registry(tmp_path / "data").names() == ["squares"]  # nothing written
