"""`jointspace generate`: PNG files of a prompt or an image (with a modification), the same pixels
for the same seed, and refusals in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from encoders.house import default_house_dir
from generation.decoder import has_decoder

runner = CliRunner()
shipped = pytest.mark.skipif(
    not has_decoder(default_house_dir() / "decoder"), reason="needs models/house/decoder"
)


@shipped
def test_generate_writes_pngs(tmp_path):
    out = tmp_path / "sandal.png"
    r = runner.invoke(app, ["generate", "a blue sandal", "-o", str(out), "--steps", "5"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"file": str(out), "seed": 0}
    img = Image.open(out)
    assert img.size == (32, 32) and img.mode == "RGB"
    r = runner.invoke(app, ["generate", "a blue sandal", "-o", str(tmp_path / "two.png"), "-n", "2",
                            "--steps", "5"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert [json.loads(x)["file"] for x in r.stdout.splitlines()] == [
        str(tmp_path / "two-1.png"), str(tmp_path / "two-2.png")]  # fmt: skip
    assert np.array_equal(np.asarray(img), np.asarray(Image.open(tmp_path / "two-1.png")))
    red = tmp_path / "red.png"
    Image.new("RGB", (28, 28), (220, 30, 30)).save(red)
    r = runner.invoke(app, ["generate", "--image", str(red), "--modification",
                            "in blue instead of red", "-o", str(tmp_path / "blue.png"),
                            "--steps", "5"])  # fmt: skip
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "-o", "x.png"], "give a prompt or --image (one of the two)"),
        (["generate", "a hat", "--image", "x.png"], "give a prompt or --image (one of the two)"),
        (["generate", "a hat", "-o", "x.jpg"], "--out must name a .png file, not x.jpg"),
    ],
)
def test_refusals(args, message):
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and message in r.stderr


def test_a_model_without_a_decoder(tiny_clip_dir, tmp_path):
    r = runner.invoke(app, ["generate", "a hat", "--model", f"hf:{tiny_clip_dir}", "-o",
                            str(tmp_path / "x.png")])  # fmt: skip
    assert r.exit_code == 2 and "has no image decoder; models with one: 'house'" in r.stderr
