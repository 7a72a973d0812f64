"""Audio through every door of the API, on a small random-weight CLAP (text + audio) written by the
tests: /v1/embeddings, /embed (JSON and multipart, with windows), collection items with playable
media, audio queries, /classify, the per-modality metrics, and the refusals with their messages."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from encoders import decode_audio
from encoders.audio import encode_audio

ALLOWED = "WAV, FLAC, Ogg (Vorbis, Opus), MP3, M4A/AAC"


def err(r, status: int, type_: str, message: str) -> None:
    assert r.status_code == status, r.text
    assert r.json() == {"error": {"type": type_, "message": message, "code": status}}


@pytest.fixture
def clap(make_client, tiny_clap_dir):
    with make_client(f"hf:{tiny_clap_dir}") as c:
        yield c


@pytest.fixture
def sound(tone):
    def make(seconds=1.0, freq=440.0, kind="WAV", rate=16_000) -> bytes:
        return encode_audio(tone(seconds, rate, freq), rate, kind)

    return make


def url(data: bytes, mime: str = "audio/wav") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def vector_of(client, data: bytes) -> np.ndarray:
    enc = client.app.state.runtime.encoder
    return enc.embed_audio([decode_audio(data, enc.audio_rate)])[0]


def test_openai_embeddings_take_audio_items(clap, sound):
    wav = sound()
    r = clap.post(
        "/v1/embeddings",
        json={
            "input": [
                "a dog",
                {"type": "audio", "audio": url(wav)},
                {"type": "text", "text": "a cat"},
            ]
        },
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert [d["index"] for d in data] == [0, 1, 2]
    np.testing.assert_allclose(data[1]["embedding"], vector_of(clap, wav), atol=1e-5)


def test_embed_json_gives_windows(clap, sound):
    long = sound(5.3)
    r = clap.post("/embed", json={"texts": ["a dog"], "audios": [url(long), url(sound(0.5))]})
    assert r.status_code == 200, r.text
    embs = r.json()["embeddings"]
    assert [e["modality"] for e in embs] == ["text", "audio", "audio"]
    assert embs[0]["segments"] is None
    spans = [(s["start"], s["end"]) for s in embs[1]["segments"]]
    assert spans == [(0.0, 2.0), (2.0, 4.0), (4.0, 5.3)]
    assert [(s["start"], s["end"]) for s in embs[2]["segments"]] == [(0.0, 0.5)]
    np.testing.assert_allclose(embs[1]["vector"], vector_of(clap, long), atol=1e-5)


def test_embed_multipart_tells_audio_from_images_by_bytes(clap, sound):
    files = [("files", ("a.png", sound(kind="FLAC"), "image/png")),  # the name and type lie
             ("files", ("b.mp3", sound(kind="MP3"), "audio/mpeg"))]  # fmt: skip
    r = clap.post("/embed", files=files, data={"texts": "a bell"})
    assert r.status_code == 200, r.text
    assert [e["modality"] for e in r.json()["embeddings"]] == ["text", "audio", "audio"]
    r = clap.post("/embed", files=[("files", ("x.wav", b"just some text", "audio/wav"))])
    err(r, 422, "invalid_input", "x.wav: not a supported image (JPEG, PNG, WEBP, GIF, BMP), audio "
        f"({ALLOWED}) or video format (MP4/MOV (H.264, HEVC, MPEG-4, AV1, VP9), WebM/Matroska "
        "(VP8, VP9, AV1, H.264), GIF)")  # fmt: skip


def test_audio_items_search_classify_and_media(clap, sound):
    assert clap.post("/collections", json={"name": "sounds"}).status_code == 201
    bell, hum = sound(1.0, 880.0), sound(1.5, 120.0, kind="FLAC")
    r = clap.put(
        "/collections/sounds/items",
        json={
            "items": [
                {"id": "bell", "audio": url(bell), "metadata": {"caption": "a bell"}},
                {"id": "hum", "audio": url(hum, "audio/flac")},
                {"id": "word", "text": "a dog"},
            ]
        },
    )
    assert r.status_code == 200, r.text
    item = clap.get("/collections/sounds/items/bell", params={"include_vector": True}).json()
    np.testing.assert_allclose(item["vector"], vector_of(clap, bell), atol=1e-5)
    assert item["media"].endswith(".wav")
    media = clap.get(item["media"])
    assert media.status_code == 200 and media.headers["content-type"] == "audio/wav"
    assert media.content == bell
    assert clap.get("/collections/sounds/items/hum").json()["media"].endswith(".flac")
    assert clap.get("/collections/sounds/items/word").json()["media"] is None

    r = clap.post("/collections/sounds/search", json={"query": {"audio": url(hum)}, "k": 3})
    assert r.status_code == 200, r.text
    top = r.json()["hits"][0]
    assert top["id"] == "hum" and top["score"] == pytest.approx(1.0, abs=1e-5)

    r = clap.post("/classify", json={"input": {"audio": url(bell)}, "labels": ["dog", "cat"]})
    assert r.status_code == 200, r.text
    assert sorted(s["label"] for s in r.json()["scores"]) == ["cat", "dog"]

    # a replaced item keeps no stale medium; a deleted one leaves none
    old = item["media"]
    r = clap.put("/collections/sounds/items", json={"items": [{"id": "bell", "text": "a bell"}]})
    assert r.status_code == 200 and clap.get(old).status_code == 404
    hum_media = clap.get("/collections/sounds/items/hum").json()["media"]
    assert clap.delete("/collections/sounds/items/hum").status_code == 200
    assert clap.get(hum_media).status_code == 404


def test_audio_refusals(clap, make_client, sound, png, tiny_clip_dir, tiny_clap_dir):
    r = clap.post("/v1/embeddings", json={"input": [{"type": "audio", "audio": png()}]})
    err(r, 422, "invalid_input", f"input 0: not a supported audio format (allowed: {ALLOWED})")
    wav = sound()
    r = clap.post("/embed", json={"audios": [url(wav[:60])]})
    err(r, 422, "invalid_input", f"audio 0: truncated WAV data (60 of {len(wav)} bytes)")
    r = clap.post("/embed", json={"images": [png()]})
    err(r, 422, "unsupported_modality", f"model 'hf:{tiny_clap_dir}' has no image tower (it "
        "embeds: audio, text); models with one: 'house', 'open_clip:' models, and 'hf:' CLIP, "
        "SigLIP, SigLIP 2 and ALIGN models")  # fmt: skip
    with make_client(f"hf:{tiny_clip_dir}") as clip:
        r = clip.post("/collections/x/search", json={"query": {"audio": url(sound())}})
        assert r.status_code == 404  # the collection is looked up first
        r = clip.post("/embed", json={"audios": [url(sound())]})
        err(r, 422, "unsupported_modality", f"model 'hf:{tiny_clip_dir}' has no audio tower (it "
            "embeds: image, text); models with one: 'house', 'hf:' CLAP checkpoints such as "
            "hf:laion/clap-htsat-unfused, and model directories with an audio part")  # fmt: skip
    with make_client(f"hf:{tiny_clap_dir}", max_audio_seconds=1.0) as short:
        r = short.post("/embed", json={"audios": [url(sound(3.0))]})
        err(r, 422, "invalid_input",
            "audio 0: the header declares 3.0 s of audio, over the limit of 1 s")  # fmt: skip


def test_audio_metrics_are_per_modality(clap, sound):
    clap.post("/embed", json={"audios": [url(sound()), url(sound(0.5))]})
    text = clap.get("/metrics").text
    name = clap.app.state.runtime.served.default.id
    assert f'jointspace_batch_size_bucket{{le="2.0",modality="audio",model="{name}"}} 1.0' in text
