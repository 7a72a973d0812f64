"""A video's sound track in its segments, on the house model (image and audio towers): `"audio":
"fuse"` (each segment's vector from its frames and its sound window, by the weights), `"audio":
"separate"` (sound segments `ID@aN` beside the frame segments, replaced and deleted with the
video), and the refusals with their messages."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from encoders import Waveform
from encoders.video import decode_video
from fusion import fuse
from housedata.writer import write_video

RATE = 16_000


def clip() -> bytes:
    """4 s of one still picture; a 440 Hz tone for 2 s, then a 1.5 kHz one."""
    t = np.arange(2 * RATE) / RATE
    sound = np.concatenate([0.4 * np.sin(2 * np.pi * 440 * t), 0.4 * np.sin(2 * np.pi * 1500 * t)])
    frames = [np.full((32, 32, 3), (180, 40, 40), np.uint8)] * 32
    return write_video(frames, 8, "MP4", Waveform(sound.astype(np.float32), RATE))


def url(data: bytes) -> str:
    return "data:video/mp4;base64," + base64.b64encode(data).decode()


def err(r, status: int, type_: str, message: str) -> None:
    assert r.status_code == status, r.text
    assert r.json() == {"error": {"type": type_, "message": message, "code": status}}


@pytest.fixture(scope="module")
def house(tmp_path_factory):
    from fastapi.testclient import TestClient

    from runtime.settings import Settings
    from service.app import create_app

    s = Settings.load({}, model="house", data_dir=tmp_path_factory.mktemp("d"), demo=False,
                      asr="off", max_queue_wait_ms=30_000)  # fmt: skip
    with TestClient(create_app(s)) as c:
        yield c


def windows(c, data: bytes, spans) -> np.ndarray:
    enc = c.app.state.runtime.encoder
    wave = decode_video(data, audio_rate=enc.audio_rate).audio
    parts = [Waveform(wave.samples[int(a * wave.rate) : int(b * wave.rate)], wave.rate)
             for a, b in spans]  # fmt: skip
    return enc.embed_audio(parts)


def test_fuse_makes_each_segment_from_its_frames_and_its_sound(house):
    data = clip()
    segs = {"interval": 2}
    frames = house.post("/embed", json={"videos": [url(data)], "segments": segs}).json()
    weights = {"image": 1.0, "audio": 2.0}
    fused = house.post("/embed", json={"videos": [url(data)], "segments": {
        **segs, "audio": "fuse", "weights": weights}})  # fmt: skip
    assert fused.status_code == 200, fused.text
    got = fused.json()["embeddings"][0]["segments"]
    spans = [(s["start"], s["end"]) for s in got]
    assert spans == [(0.0, 2.0), (2.0, 4.0)]
    heard = windows(house, data, spans)
    for s, f, a in zip(got, frames["embeddings"][0]["segments"], heard, strict=True):
        want = fuse({"image": np.array(f["vector"]), "audio": a}, weights)
        np.testing.assert_allclose(s["vector"], want, atol=1e-4)
    a, b = (np.array(s["vector"]) for s in got)
    fa, fb = (np.array(s["vector"]) for s in frames["embeddings"][0]["segments"])
    assert float(fa @ fb) > 0.999 and float(a @ b) < float(fa @ fb)  # the sound tells them apart


def test_separate_stores_sound_segments_replaced_and_deleted_with_the_video(house):
    data = clip()
    assert house.post("/collections", json={"name": "heard"}).status_code == 201
    item = {"id": "v", "video": url(data), "segments": {"interval": 2, "audio": "separate"}}
    r = house.put("/collections/heard/items", json={"items": [item]})
    assert r.status_code == 200, r.text
    whole = house.get("/collections/heard/items/v").json()["metadata"]
    assert whole["segments"] == 2 and whole["sound_segments"] == 2
    got = house.get("/collections/heard/items/v@a1", params={"include_vector": True}).json()
    assert got["metadata"] == {"video_id": "v", "start": 2.0, "end": 4.0, "sound_segment": 1}
    np.testing.assert_allclose(got["vector"], windows(house, data, [(2.0, 4.0)])[0], atol=1e-4)
    item["segments"] = {"interval": 2}  # replaced without its sound
    assert house.put("/collections/heard/items", json={"items": [item]}).status_code == 200
    assert house.get("/collections/heard/items/v@a0").status_code == 404
    item["segments"] = {"interval": 2, "audio": "separate"}
    assert house.put("/collections/heard/items", json={"items": [item]}).status_code == 200
    r = house.delete("/collections/heard/items/v")
    assert r.json() == {"deleted": 5}  # the video, 2 frame segments, 2 sound segments
    assert house.get("/collections/heard/items/v@a1").status_code == 404


def test_sound_refusals(house, client):
    data = url(clip())
    err(house.post("/embed", json={"videos": [data], "segments": {"audio": "separate",
                                   "weights": {"audio": 2}}}),
        422, "invalid_request", 'segments.function-after[_one_way(), VideoSegments]: weights are for "audio": "fuse"')  # fmt: skip
    err(house.post("/embed", json={"videos": [data], "segments": {"audio": "fuse", "weights": {
        "audio": 0, "image": 0}}}), 422, "invalid_request",
        "segments.function-after[_one_way(), VideoSegments]: the weights leave nothing of the "
        "video: give a part a weight > 0")  # fmt: skip
    r = client.post("/embed", json={"videos": [data], "segments": {"audio": "fuse"}})
    assert r.status_code == 422 and r.json()["error"]["type"] == "unsupported_modality"
