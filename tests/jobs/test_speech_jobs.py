"""What is said in batch jobs (`job embed --speech`), with the packaged Whisper tiny.en and clips
the tests make with espeak-ng: a row per stretch of speech with its times and its text's vector,
the transcript on the parent row, the API's items once ingested (keyword search included), resume
and every refusal with its message."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from encoders import Waveform, load_encoder
from housedata.writer import write_video
from index import Catalog
from jobs import JobError, JobOptions, embed_job, ingest

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
SAID = "Free shipping on all orders this weekend."
RATE = 22_050


def speak(text: str, before: float) -> np.ndarray:
    wav = subprocess.run(["espeak-ng", "-v", "en-us", "--stdout", text], capture_output=True,
                         check=True, timeout=30).stdout  # fmt: skip
    x, rate = sf.read(io.BytesIO(wav), dtype="float32")
    assert rate == RATE
    return np.concatenate([np.zeros(int(before * RATE), np.float32), x,
                           np.zeros(RATE // 2, np.float32)])  # fmt: skip


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("speech") / "src"
    src.mkdir()
    said = speak(SAID, before=1.5)
    sf.write(src / "talk.wav", said, RATE, format="WAV", subtype="PCM_16")
    (src / "talk.json").write_text(json.dumps({"shop": "north"}))
    seconds = len(said) / RATE
    frames = [np.full((32, 32, 3), 120, np.uint8)] * int(seconds * 8)
    (src / "advert.mp4").write_bytes(write_video(frames, 8, "MP4", Waveform(said, RATE)))
    return src


def rows(out: Path) -> list[dict]:
    return [r for p in sorted(out.glob("shard-*.parquet")) for r in pq.read_table(p).to_pylist()]


@pytest.fixture(scope="module")
def job(sources, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("job") / "out"
    embed_job([sources], out, "house", JobOptions(workers=0, speech=True))
    return out


def test_speech_rows_carry_what_was_said_and_when(job):
    got = {r["id"]: r for r in rows(job)}
    assert sorted(got) == ["advert.mp4", "advert.mp4@0", "advert.mp4@1", "advert.mp4@s0",
                           "talk.wav", "talk.wav@s0"]  # fmt: skip
    talk, line = got["talk.wav"], got["talk.wav@s0"]
    assert json.loads(talk["metadata"]) == {"shop": "north", "transcript": SAID,
                                            "speech_segments": 1}  # fmt: skip
    assert line["modality"] == "speech" and line["source"] == "talk.wav"
    assert json.loads(line["metadata"]) == {"shop": "north", "parent": "talk.wav",
                                            "transcript": SAID, "speech_segment": 0}  # fmt: skip
    assert 1.0 <= line["start"] <= 2.0 < line["end"]
    house = load_encoder("house", device="cpu")
    np.testing.assert_allclose(line["vector"], house.embed_text([SAID])[0], atol=1e-5)
    spoken = json.loads(got["advert.mp4@s0"]["metadata"])
    assert spoken == {"video_id": "advert.mp4", "parent": "advert.mp4", "transcript": SAID,
                      "speech_segment": 0}  # fmt: skip
    whole = json.loads(got["advert.mp4"]["metadata"])
    assert whole["transcript"] == SAID and whole["speech_segments"] == 1
    manifest = json.loads((job / "_manifest.json").read_text())
    assert manifest["speech"] == {"asr": "tiny.en"}
    assert manifest["rows"] == {"audio": 1, "speech": 2, "video": 3}


def test_ingested_speech_is_the_apis_and_found_by_keyword(sources, job, tmp_path):
    from fastapi.testclient import TestClient

    from runtime.settings import Settings
    from service.app import create_app

    cat = Catalog(tmp_path / "cols")
    ingest(job, cat, "v")
    col = cat.get("v")
    mine = {it.id: (it.metadata, it.vector) for it in col.get(list(col.ids()))}
    found = col.keyword_search("weekend shipping", k=5)
    assert sorted(h.id for h in found) == ["advert.mp4@s0", "talk.wav@s0"]
    cat.close()
    data = (sources / "talk.wav").read_bytes()
    item = {"id": "talk.wav", "audio": "data:audio/wav;base64," + base64.b64encode(data).decode(),
            "speech": True, "metadata": {"shop": "north"}}  # fmt: skip
    s = Settings.load({}, model="house", data_dir=tmp_path / "api", demo=False,
                      max_queue_wait_ms=30_000)  # fmt: skip
    with TestClient(create_app(s)) as c:
        assert c.post("/collections", json={"name": "v"}).status_code == 201
        r = c.put("/collections/v/items", json={"items": [item]})
        assert r.status_code == 200, r.text
        api = c.app.state.runtime.catalog.get("v")
        theirs = {it.id: (it.metadata, it.vector) for it in api.get(list(api.ids()))}
    assert sorted(theirs) == ["talk.wav", "talk.wav@s0"]
    for item_id, (meta, vec) in theirs.items():
        got_meta, got_vec = mine[item_id]
        extra = {"source": "talk.wav", "modality": "speech" if "@s" in item_id else "audio"}
        assert got_meta == {**meta, **extra}, item_id
        np.testing.assert_allclose(got_vec, vec, atol=1e-5, err_msg=item_id)


def test_resume_without_speech_is_refused(sources, job):
    with pytest.raises(JobError) as e:
        embed_job([sources], job, "house", JobOptions(workers=0))
    assert str(e.value) == (
        f"{job} holds a job with speech (asr tiny.en); this one is without speech: give the same "
        "--speech and --asr, or choose another --out"
    )


def test_speech_keys_in_metadata_are_refused(sources, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(sources, src)
    (src / "talk.json").write_text(json.dumps({"transcript": "mine"}))
    out = tmp_path / "out"
    embed_job([src], out, "house", JobOptions(workers=0, speech=True))
    errors = [json.loads(x) for x in (out / "_errors.jsonl").read_text().splitlines()]
    assert errors == [{"id": "talk.wav", "source": "talk.wav", "modality": "audio",
                       "error": "metadata key(s) transcript are set on the rows of inputs with "
                       "speech; rename them"}]  # fmt: skip


@pytest.mark.parametrize(("asr", "message"), [
    ("off", "--speech needs a speech recogniser: --asr is off"),
    ("/nowhere", "asr '/nowhere': no CTranslate2 Whisper model (model.bin) there"),
])  # fmt: skip
def test_recogniser_refusals_before_any_work(sources, tmp_path, asr, message):
    out = tmp_path / "out"
    with pytest.raises(JobError) as e:
        embed_job([sources], out, "house", JobOptions(workers=0, speech=True, asr=asr))
    assert str(e.value) == message
    assert not out.exists()
