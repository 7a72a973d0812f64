"""Speech through the API with the packaged Whisper tiny.en and a small random-weight CLIP (no
audio tower): POST /transcribe on clips and videos the tests make with espeak-ng, transcripts
stored as speech segments (searched by vector and keyword, replaced and deleted with their
parent), spoken queries read as speech, and every refusal with its status and message."""

from __future__ import annotations

import base64
import io
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from encoders import Waveform
from housedata.writer import write_video

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
SAID = "Free shipping on all orders this weekend."
RATE = 22_050
OFF = ("speech recognition is off on this service (JOINTSPACE_ASR=off): set JOINTSPACE_ASR to a "
       "Whisper size or model directory to turn it on")  # fmt: skip


def speak(text: str, before: float = 0.0, after: float = 0.5) -> np.ndarray:
    wav = subprocess.run(["espeak-ng", "-v", "en-us", "--stdout", text], capture_output=True,
                         check=True, timeout=30).stdout  # fmt: skip
    x, rate = sf.read(io.BytesIO(wav), dtype="float32")
    assert rate == RATE
    return np.concatenate([np.zeros(int(before * RATE), np.float32), x,
                           np.zeros(int(after * RATE), np.float32)])  # fmt: skip


def wav_url(samples: np.ndarray) -> str:
    buf = io.BytesIO()
    sf.write(buf, samples, RATE, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode()


def video_url(samples: np.ndarray | None, seconds: float) -> str:
    frames = [np.full((32, 32, 3), 120, np.uint8) for _ in range(int(seconds * 8))]
    audio = Waveform(samples, RATE) if samples is not None else None
    return "data:video/mp4;base64," + base64.b64encode(write_video(frames, 8, "MP4",
                                                                   audio)).decode()  # fmt: skip


def err(r, status: int, type_: str, message: str) -> None:
    assert r.status_code == status, r.text
    assert r.json() == {"error": {"type": type_, "message": message, "code": status}}


@pytest.fixture(scope="module")
def sentence() -> np.ndarray:
    return speak(SAID, before=1.5)


def test_transcribe_gives_the_words_and_when_they_were_said(client, sentence):
    r = client.post("/transcribe", json={"input": {"audio": wav_url(sentence)}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["text"] == SAID
    assert [s["text"] for s in body["segments"]] == [SAID]
    seg = body["segments"][0]
    assert 1.0 <= seg["start"] <= 2.0 < seg["end"] <= body["duration"]
    assert body["duration"] == round(len(sentence) / RATE, 3)
    metrics = client.get("/metrics").text
    total = [ln for ln in metrics.splitlines() if ln.startswith("jointspace_speech_seconds_total")]
    assert float(total[0].split()[1]) == pytest.approx(len(sentence) / RATE, abs=1e-3)
    assert 'jointspace_batch_size_count{modality="speech",model="tiny.en"} 1.0' in metrics


def test_a_pause_of_a_second_parts_two_segments_each_timed_by_its_voice(client):
    # Whisper times "weekend," from 3.13 s to 4.49 s, over the silence: the detector's stretches
    # of speech part the segments and bound their times
    first = speak(SAID, before=1.5, after=0.0)
    clip = np.concatenate([first, speak("Call us today.", before=1.0)])
    r = client.post("/transcribe", json={"input": {"audio": wav_url(clip)}})
    assert r.status_code == 200, r.text
    segs = r.json()["segments"]
    assert [s["text"] for s in segs] == ["Free shipping on all orders this weekend.",
                                         "Call us today."]  # fmt: skip
    assert 1.5 <= segs[0]["start"] <= 1.6 and segs[0]["end"] <= len(first) / RATE
    assert len(first) / RATE + 1.0 <= segs[1]["start"] <= len(first) / RATE + 1.25


def test_silence_and_a_silent_video_give_no_segments(client, sentence):
    r = client.post("/transcribe", json={"input": {"audio": wav_url(np.zeros(2 * RATE,
                                                                             np.float32))}})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json() == {"text": "", "segments": [], "duration": 2.0}
    r = client.post("/transcribe", json={"input": {"video": video_url(None, 2.0)}})
    assert r.status_code == 200, r.text
    assert r.json() == {"text": "", "segments": [], "duration": 0.0}


def test_a_video_item_keeps_its_speech_replaced_and_deleted_with_it(client, sentence):
    assert client.post("/collections", json={"name": "talk"}).status_code == 201
    item = {"id": "ad", "video": video_url(sentence, 4.0), "speech": True,
            "metadata": {"brand": "Acme"}}  # fmt: skip
    r = client.put("/collections/talk/items", json={"items": [item]})
    assert r.status_code == 200, r.text
    seg = client.get("/collections/talk/items/ad@s0").json()["metadata"]
    assert seg["transcript"] == SAID and seg["parent"] == "ad" and seg["video_id"] == "ad"
    assert seg["brand"] == "Acme" and seg["speech_segment"] == 0 and 1.0 <= seg["start"] <= 2.0
    whole = client.get("/collections/talk/items/ad").json()["metadata"]
    assert whole["transcript"] == SAID and whole["speech_segments"] == 1
    assert whole["segments"] == 1 and "parent" not in whole

    r = client.post("/collections/talk/search", json={"query": {"text": SAID}, "k": 1})
    assert r.status_code == 200, r.text
    assert r.json()["hits"][0]["id"] == "ad@s0"
    assert r.json()["hits"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    r = client.post("/collections/talk/search", json={"query": {"text": "shipping"},
                                                      "mode": "keyword"})  # fmt: skip
    assert [h["id"] for h in r.json()["hits"]] == ["ad@s0"]

    item["video"] = video_url(None, 4.0)  # the same id, now without sound
    assert client.put("/collections/talk/items", json={"items": [item]}).status_code == 200
    assert client.get("/collections/talk/items/ad@s0").status_code == 404
    assert client.get("/collections/talk/items/ad").json()["metadata"]["speech_segments"] == 0


def test_deleting_the_parent_deletes_its_speech(client, sentence):
    assert client.post("/collections", json={"name": "talk"}).status_code == 201
    item = {"id": "ad", "video": video_url(sentence, 4.0), "speech": True}
    assert client.put("/collections/talk/items", json={"items": [item]}).status_code == 200
    r = client.delete("/collections/talk/items/ad")
    assert r.status_code == 200 and r.json() == {"deleted": 3}  # the video, @0 and @s0
    assert client.get("/collections/talk/items/ad@s0").status_code == 404


def test_a_spoken_query_read_as_speech_on_a_model_without_an_audio_tower(client, sentence):
    assert client.post("/collections", json={"name": "shop"}).status_code == 201
    items = [{"id": "deal", "text": SAID}, {"id": "boot", "text": "a leather boot"}]
    assert client.put("/collections/shop/items", json={"items": items}).status_code == 200
    q = {"audio": wav_url(sentence), "as": "speech"}
    r = client.post("/collections/shop/search", json={"query": q, "k": 2})
    assert r.status_code == 200, r.text
    assert r.json()["hits"][0]["id"] == "deal"
    assert r.json()["hits"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    silent = {"audio": wav_url(np.zeros(RATE, np.float32)), "as": "speech"}
    err(client.post("/collections/shop/search", json={"query": silent}), 422, "invalid_input",
        "query audio: no speech was recognised in it")  # fmt: skip
    r = client.post("/collections/shop/search", json={"query": {"audio": wav_url(sentence)}})
    assert r.status_code == 422 and r.json()["error"]["type"] == "unsupported_modality"


def test_with_speech_recognition_off_every_use_is_refused(make_client, tiny_clip_dir, sentence):
    with make_client(f"hf:{tiny_clip_dir}", asr="off") as c:
        assert "speech" not in c.app.state.runtime.batchers
        err(c.post("/transcribe", json={"input": {"audio": wav_url(sentence)}}), 422,
            "no_speech_recognition", OFF)  # fmt: skip
        assert c.post("/collections", json={"name": "talk"}).status_code == 201
        item = {"id": "ad", "video": video_url(None, 1.0), "speech": True}
        err(c.put("/collections/talk/items", json={"items": [item]}), 422,
            "no_speech_recognition", OFF)  # fmt: skip
        q = {"audio": wav_url(sentence), "as": "speech"}
        err(c.post("/collections/talk/search", json={"query": q}), 422,
            "no_speech_recognition", OFF)  # fmt: skip


def test_refusals_of_the_shapes(client):
    err(client.post("/transcribe", json={"input": {"text": "hello"}}), 422, "invalid_request",
        "input.TranscribeAudio.audio: Field required")  # fmt: skip
    assert client.post("/collections", json={"name": "talk"}).status_code == 201
    item = {"id": "ad", "video": video_url(None, 1.0), "speech": True,
            "metadata": {"transcript": "x"}}  # fmt: skip
    err(client.put("/collections/talk/items", json={"items": [item]}), 422, "invalid_input",
        "item 'ad': metadata key(s) transcript are set by the service on items with speech; "
        "rename them")  # fmt: skip
    q = {"audio": wav_url(np.zeros(RATE, np.float32)), "as": "words"}
    r = client.post("/collections/talk/search", json={"query": q})
    assert r.status_code == 422


def test_an_audio_item_with_speech_on_a_model_with_an_audio_tower(make_client, sentence):
    with make_client("house", max_queue_wait_ms=30_000) as c:
        assert c.post("/collections", json={"name": "talk"}).status_code == 201
        clip = wav_url(sentence)
        item = {"id": "ad", "audio": clip, "speech": True, "metadata": {"lang": "en"}}
        r = c.put("/collections/talk/items", json={"items": [item]})
        assert r.status_code == 200, r.text
        whole = c.get("/collections/talk/items/ad", params={"include_vector": True}).json()
        assert whole["metadata"] == {"lang": "en", "transcript": SAID, "speech_segments": 1}
        sound = c.post("/v1/embeddings", json={"input": [{"type": "audio", "audio": clip}]})
        np.testing.assert_allclose(whole["vector"], sound.json()["data"][0]["embedding"],
                                   atol=1e-5)  # fmt: skip
        seg = c.get("/collections/talk/items/ad@s0").json()["metadata"]
        assert {k: seg[k] for k in ("lang", "parent", "transcript", "speech_segment")} == {
            "lang": "en",
            "parent": "ad",
            "transcript": SAID,
            "speech_segment": 0,
        }
        assert "video_id" not in seg
        assert c.delete("/collections/talk/items/ad").json() == {"deleted": 2}


def test_transcribe_refuses_what_is_not_a_clip_or_a_video(client):
    err(client.post("/transcribe", json={"input": {"video": "AAAA"}}), 422, "invalid_input",
        "input: not a supported video format (allowed: MP4/MOV (H.264, HEVC, MPEG-4, AV1, VP9), "
        "WebM/Matroska (VP8, VP9, AV1, H.264), GIF)")  # fmt: skip
    head = base64.b64encode(b"\x1aE\xdf\xa3" + b"\x00" * 60).decode()
    err(
        client.post("/transcribe", json={"input": {"video": head}}),
        422,
        "invalid_input",
        "input: corrupt WebM header",
    )
    r = client.post("/transcribe", json={"input": {"audio": "AAAA"}})
    assert r.status_code == 422 and r.json()["error"]["type"] == "invalid_input"
