"""Videos in batch jobs: one row per segment (and per sound segment) with `start`/`end`, the
API's vectors, ids and metadata once ingested, resume, stale segments on re-ingest, and every
refusal with its message."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cli.main import app
from encoders import Waveform, load_encoder
from encoders.video import decode_video
from fusion import fuse
from housedata.writer import write_video
from index import Catalog
from jobs import JobError, JobOptions, VideoOptions, embed_job, ingest

RATE = 16_000


def clip(seconds: int = 4, colour=(180, 40, 40)) -> bytes:
    """A still picture; a 440 Hz tone for the first half, then a 1.5 kHz one."""
    t = np.arange(seconds * RATE // 2) / RATE
    sound = np.concatenate([0.4 * np.sin(2 * np.pi * 440 * t), 0.4 * np.sin(2 * np.pi * 1500 * t)])
    frames = [np.full((32, 32, 3), colour, np.uint8)] * (8 * seconds)
    return write_video(frames, 8, "MP4", Waveform(sound.astype(np.float32), RATE))


@pytest.fixture(scope="module")
def house():
    return load_encoder("house", device="cpu")


@pytest.fixture()
def folder(tmp_path) -> Path:
    src = tmp_path / "src"
    (src / "shop").mkdir(parents=True)
    (src / "shop" / "dress.mp4").write_bytes(clip())
    (src / "shop" / "dress.json").write_text(json.dumps({"shop": "north"}))
    (src / "shop" / "dress.txt").write_text("a red dress")
    (src / "bad.webm").write_bytes(b"\x1a\x45\xdf\xa3 not really a video")
    return src


def rows(out: Path) -> list[dict]:
    found = []
    for path in sorted(out.glob("shard-*.parquet")):
        found += pq.read_table(path).to_pylist()
    return found


def errors(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "_errors.jsonl").read_text().splitlines()]


def separate(**kw) -> JobOptions:
    return JobOptions(workers=0, video=VideoOptions(interval=2, audio="separate"), **kw)


def test_a_video_becomes_rows_with_times(folder, tmp_path):
    out = tmp_path / "out"
    manifest = embed_job([folder], out, "house", JobOptions(workers=1, video=VideoOptions(
        interval=2, audio="separate")))  # fmt: skip
    got = rows(out)
    assert [(r["id"], r["modality"], r["start"], r["end"]) for r in got] == [
        ("shop/dress.mp4", "video", 0.0, 4.0),
        ("shop/dress.mp4@a0", "audio", 0.0, 2.0),
        ("shop/dress.mp4@a1", "audio", 2.0, 4.0),
        ("shop/dress.mp4@0", "video", 0.0, 2.0),
        ("shop/dress.mp4@1", "video", 2.0, 4.0),
    ]
    user = {"shop": "north", "text": "a red dress", "video_id": "shop/dress.mp4"}
    assert [json.loads(r["metadata"]) for r in got] == [
        {**user, "segments": 2, "sound_segments": 2},
        {**user, "sound_segment": 0},
        {**user, "sound_segment": 1},
        {**user, "segment": 0},
        {**user, "segment": 1},
    ]
    assert {r["source"] for r in got} == {"shop/dress.mp4"}
    assert errors(out) == [{"id": "bad.webm", "source": "bad.webm", "modality": "video",
                            "error": "corrupt WebM header"}]  # fmt: skip
    assert manifest["items"] == 2 and manifest["errors"] == 1
    assert manifest["rows"] == {"audio": 2, "video": 3}
    assert manifest["video"] == {"fps": 1.0, "interval": 2, "shots": False, "pooling": "temporal",
                                 "audio": "separate", "weights": None}  # fmt: skip


def api_items(tmp_path, data: bytes, segments: dict) -> dict[str, tuple[dict, np.ndarray]]:
    """The same video upserted through the API: id -> (metadata, vector)."""
    from fastapi.testclient import TestClient

    from runtime.settings import Settings
    from service.app import create_app

    s = Settings.load({}, model="house", data_dir=tmp_path / "api", demo=False, asr="off",
                      max_queue_wait_ms=30_000)  # fmt: skip
    item = {"id": "shop/dress.mp4", "video": "data:video/mp4;base64,"
            + base64.b64encode(data).decode(), "segments": segments,
            "metadata": {"shop": "north", "text": "a red dress"}}  # fmt: skip
    with TestClient(create_app(s)) as c:
        assert c.post("/collections", json={"name": "v"}).status_code == 201
        r = c.put("/collections/v/items", json={"items": [item]})
        assert r.status_code == 200, r.text
        col = c.app.state.runtime.catalog.get("v")
        return {it.id: (it.metadata, it.vector) for it in col.get(list(col.ids()))}


@pytest.mark.parametrize("segments", [{"interval": 2, "audio": "separate"},
                                      {"interval": 2, "audio": "fuse",
                                       "weights": {"image": 1.0, "audio": 2.0}},
                                      {"interval": 1.5, "pooling": "mean"}])  # fmt: skip
def test_ingested_rows_are_the_items_the_api_stores(folder, tmp_path, segments):
    out = tmp_path / "out"
    video = VideoOptions(**segments)
    embed_job([folder], out, "house", JobOptions(workers=0, video=video))
    cat = Catalog(tmp_path / "cols")
    ingest(out, cat, "v")
    col = cat.get("v")
    mine = {it.id: (it.metadata, it.vector) for it in col.get(list(col.ids()))}
    cat.close()
    theirs = api_items(tmp_path, (folder / "shop" / "dress.mp4").read_bytes(), segments)
    assert sorted(mine) == sorted(theirs)
    for item_id, (meta, vec) in theirs.items():
        got_meta, got_vec = mine[item_id]
        extra = {"source": "shop/dress.mp4", "modality": "audio" if "@a" in item_id else "video"}
        assert got_meta == {**meta, **extra}, item_id
        np.testing.assert_allclose(got_vec, vec, atol=1e-5, err_msg=item_id)


def test_fuse_weighs_frames_against_sound(folder, tmp_path, house):
    out = tmp_path / "out"
    weights = {"image": 1.0, "audio": 2.0}
    video = VideoOptions(interval=2, audio="fuse", weights=weights, pooling="mean")
    embed_job([folder], out, "house", JobOptions(workers=0, video=video))
    got = {r["id"]: r for r in rows(out)}
    assert sorted(got) == ["shop/dress.mp4", "shop/dress.mp4@0", "shop/dress.mp4@1"]
    v = decode_video(folder / "shop" / "dress.mp4", audio_rate=house.audio_rate)
    frames = house.encode_video([v], 2, pooling="mean")[0]
    w = v.audio
    heard = house.embed_audio([Waveform(w.samples[: 2 * w.rate], w.rate),
                               Waveform(w.samples[2 * w.rate : 4 * w.rate], w.rate)])  # fmt: skip
    for i in range(2):
        want = fuse({"image": frames.segment_vectors[i], "audio": heard[i]}, weights)
        np.testing.assert_allclose(got[f"shop/dress.mp4@{i}"]["vector"], want, atol=1e-5)


def test_resume_redoes_only_the_missing_shard(folder, tmp_path):
    (folder / "shop" / "coat.mp4").write_bytes(clip(2, (40, 40, 180)))
    out = tmp_path / "out"
    opts = separate(shard_size=1)
    embed_job([folder], out, "house", opts)
    before = rows(out)
    (out / "shard-00001.parquet").unlink()
    manifest = json.loads((out / "_manifest.json").read_text())
    (out / "_manifest.json").write_text(json.dumps({**manifest, "complete": False}))
    again = embed_job([folder], out, "house", opts)
    assert again["last_run"]["shards"] == 1 and again["last_run"]["items"] == 1
    after = rows(out)
    assert [(r["id"], r["start"], r["end"]) for r in after] == [
        (r["id"], r["start"], r["end"]) for r in before
    ]
    np.testing.assert_allclose([r["vector"] for r in after], [r["vector"] for r in before])
    with pytest.raises(JobError) as e:
        embed_job([folder], out, "house", JobOptions(workers=0, shard_size=1))
    assert str(e.value) == (
        f"{out} holds videos cut and embedded with other options (fps 1.0, interval 2, shots "
        "False, pooling temporal, audio separate); this job asks for fps 1.0, interval 4.0, "
        "shots False, pooling temporal, audio off: give the same options, or choose another --out"
    )


def test_reingesting_a_shorter_cut_removes_the_old_segments(folder, tmp_path):
    cat = Catalog(tmp_path / "cols")
    embed_job([folder], tmp_path / "a", "house", separate())
    ingest(tmp_path / "a", cat, "v")
    assert cat.get("v").count == 5
    embed_job([folder], tmp_path / "b", "house", JobOptions(workers=0))  # one 4 s segment
    ingest(tmp_path / "b", cat, "v")
    col = cat.get("v")
    assert sorted(col.ids()) == ["shop/dress.mp4", "shop/dress.mp4@0"]
    assert col.get(["shop/dress.mp4"])[0].metadata["segments"] == 1
    cat.close()


def test_video_rows_refuse_metadata_keys_they_set(folder, tmp_path):
    (folder / "shop" / "dress.json").write_text(json.dumps({"start": 3, "segment": "x"}))
    out = tmp_path / "out"
    embed_job([folder], out, "house", JobOptions(workers=0))
    assert errors(out)[1] == {"id": "shop/dress.mp4", "source": "shop/dress.mp4",
                              "modality": "video", "error": "metadata key(s) segment, start are "
                              "set on video rows; rename them"}  # fmt: skip


@pytest.mark.parametrize(("video", "message"), [
    (VideoOptions(audio="loud"), "--video-audio must be one of off, fuse, separate, not 'loud'"),
    (VideoOptions(weights={"image": 2.0}),
     "--video-weights weigh the frames against the sound: they need --video-audio fuse"),
    (VideoOptions(audio="fuse", weights={"text": 1.0}),
     "--video-weights name image and audio, not text"),
    (VideoOptions(pooling="max"), "--pooling must be auto, mean, temporal, not 'max'"),
])  # fmt: skip
def test_refusals_before_any_work(folder, tmp_path, video, message):
    out = tmp_path / "out"
    with pytest.raises(JobError) as e:
        embed_job([folder], out, "house", JobOptions(workers=0, video=video))
    assert str(e.value) == message
    assert not out.exists()


def test_a_model_without_an_audio_tower_refuses_sound(folder, tmp_path, tiny_clip_dir):
    spec = f"hf:{tiny_clip_dir}"
    with pytest.raises(JobError) as e:
        embed_job([folder], tmp_path / "o", spec, JobOptions(workers=0,
                                                             video=VideoOptions(audio="fuse")))  # fmt: skip
    name = load_encoder(spec, device="cpu").name
    assert str(e.value) == f"--video-audio fuse needs an audio tower; model '{name}' has none"
    manifest = embed_job([folder], tmp_path / "p", spec, JobOptions(workers=0))
    assert manifest["rows"] == {"video": 2}  # the whole video and its one 4 s segment


def test_cli_video_options(folder, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["job", "embed", str(folder), "--out", str(tmp_path / "o"),
                              "--video-audio", "fuse", "--video-weights", "image=1,audio"])  # fmt: skip
    assert res.exit_code == 2
    assert (
        "--video-weights takes name=number pairs such as image=1,audio=2, not 'image=1,audio'"
        in (res.output)
    )
    res = runner.invoke(app, ["job", "embed", str(folder), "--out", str(tmp_path / "o"),
                              "--workers", "0", "--interval", "2", "--video-audio", "separate"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert f"{tmp_path / 'o'}: 2 audio, 3 video; 1 errors" in " ".join(res.output.split())


def test_ray_runner_cuts_videos_as_the_local_one(folder, tmp_path):
    pytest.importorskip("ray.data")
    video = VideoOptions(interval=2, audio="separate")
    embed_job([folder], tmp_path / "local", "house", JobOptions(workers=0, video=video))
    embed_job([folder], tmp_path / "ray", "house", JobOptions(runner="ray", workers=1,
                                                               video=video))  # fmt: skip
    a, b = rows(tmp_path / "local"), rows(tmp_path / "ray")
    assert [(r["id"], r["start"], r["end"], r["metadata"]) for r in a] == [
        (r["id"], r["start"], r["end"], r["metadata"]) for r in b
    ]
    np.testing.assert_allclose([r["vector"] for r in a], [r["vector"] for r in b], atol=1e-5)
