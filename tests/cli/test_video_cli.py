"""`jointspace embed --video`: one JSON line per segment and one for the whole video, with the
vectors the encoder gives; --shots, --out; refusals in one line before the model loads."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
from typer.testing import CliRunner

from cli.main import app
from encoders import load_encoder
from encoders.video import decode_video
from housedata.writer import write_video

runner = CliRunner()


def write_clip(path, colours=((200, 30, 30), (30, 200, 30), (30, 30, 200))):
    frames = [np.full((48, 64, 3), c, np.uint8) for c in colours for _ in range(16)]
    path.write_bytes(write_video(frames, 8))
    return path


def test_embed_video_prints_a_line_per_segment(tmp_path, tiny_clip_dir):
    mp4 = write_clip(tmp_path / "clip.mp4")
    model = f"hf:{tiny_clip_dir}"
    r = runner.invoke(app, ["embed", "--model", model, "--video", str(mp4), "--interval", "4"])
    assert r.exit_code == 0, r.output
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(x["start"], x["end"], x["whole"]) for x in lines] == [
        (0.0, 4.0, False), (4.0, 6.0, False), (0.0, 6.0, True)]  # fmt: skip
    want = load_encoder(model).encode_video([decode_video(mp4)], 4.0)[0]
    np.testing.assert_allclose(lines[0]["vector"], want.segment_vectors[0], atol=1e-5)
    np.testing.assert_allclose(lines[2]["vector"], want.vector, atol=1e-5)

    r = runner.invoke(app, ["embed", "--model", model, "--video", str(mp4), "--shots"])
    spans = [(x["start"], x["end"]) for x in map(json.loads, r.stdout.splitlines())]
    assert spans == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0), (0.0, 6.0)]

    out = tmp_path / "v.parquet"
    r = runner.invoke(app, ["embed", "--model", model, "--video", str(mp4), "--out", str(out)])
    assert r.exit_code == 0, r.output
    table = pq.read_table(out).to_pydict()
    assert table["id"] == [f"{mp4}#t=0,4", f"{mp4}#t=4,6", f"{mp4}#t=0,6"]
    assert table["modality"] == ["video"] * 3


def test_embed_video_refusals(tmp_path, tiny_clip_dir):
    mp4 = write_clip(tmp_path / "clip.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64)
    model = f"hf:{tiny_clip_dir}"
    r = runner.invoke(app, ["embed", "--model", model, "--video", str(bad)])
    assert r.exit_code == 2 and f"{bad}: corrupt MP4 header" in r.output
    r = runner.invoke(app, ["embed", "--model", model, "--video", str(mp4), "--text", "a dog"])
    assert r.exit_code == 2 and "--video is embedded alone" in r.output
    r = runner.invoke(app, ["embed", "--model", model, "--video", str(mp4), "--shots",
                            "--interval", "2"])  # fmt: skip
    assert r.exit_code == 2 and "give --interval or --shots, not both" in r.output
    r = runner.invoke(app, ["embed", "--model", model, "--video", str(mp4), "--max-seconds", "3"])
    assert r.exit_code == 2
    assert f"{mp4}: the header declares 6.0 s of video, over the limit of 3 s" in r.output
