"""`jointspace caption`: one JSON line per file, in order; refusals in one line."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf
from PIL import Image
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def test_caption_prints_one_json_line_per_file_in_order(tmp_path, captioned_dir, tone):
    red, blue, wav = tmp_path / "red.png", tmp_path / "blue.png", tmp_path / "beep.wav"
    Image.new("RGB", (16, 16), (200, 20, 20)).save(red)
    Image.new("RGB", (16, 16), (20, 20, 200)).save(blue)
    sf.write(wav, tone(1.0, 16_000), 16_000)
    model = f"house:{captioned_dir}"
    r = runner.invoke(
        app, ["caption", str(red), str(wav), str(blue), "--model", model, "--max-tokens", "4"]
    )
    assert r.exit_code == 0, r.output
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["file"] for x in lines] == [str(red), str(wav), str(blue)]
    alone = runner.invoke(app, ["caption", str(blue), "--model", model, "--max-tokens", "4"])
    assert json.loads(alone.stdout)["caption"] == lines[2]["caption"]
    assert all(isinstance(x["caption"], str) and x["caption"] for x in lines)


def test_caption_refusals(tmp_path, tiny_clip_dir):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    img = tmp_path / "ok.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    r = runner.invoke(app, ["caption", str(tmp_path / "missing.png")])
    assert r.exit_code == 2 and "missing.png: No such file or directory" in r.output
    r = runner.invoke(app, ["caption", str(img), "--model", f"hf:{tiny_clip_dir}"])
    assert r.exit_code == 2
    assert (
        "has no captioner; models with one: 'house', and model directories with a captioner "
        "(model:DIR; train one: jointspace train --target captioner --model DIR --data SRC)"
        in r.output
    )
