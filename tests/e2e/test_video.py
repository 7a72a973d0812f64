"""Video through the API on a small random-weight CLIP written by the tests: /v1/embeddings video
items (the whole-video vector), /embed with segments (JSON and multipart upload), the metrics of
video decoding, and the refusals with their messages."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from encoders.video import decode_video
from housedata.writer import write_video

RED, GREEN, BLUE = (200, 30, 30), (30, 200, 30), (30, 30, 200)
ALLOWED_VIDEO = "MP4/MOV (H.264, HEVC, MPEG-4, AV1, VP9), WebM/Matroska (VP8, VP9, AV1, H.264), GIF"


def err(r, status: int, type_: str, message: str) -> None:
    assert r.status_code == status, r.text
    assert r.json() == {"error": {"type": type_, "message": message, "code": status}}


def clip(colours=(RED, GREEN, BLUE), seconds=2.0, kind="MP4") -> bytes:
    frames = []
    for c in colours:
        for i in range(int(seconds * 8)):
            a = np.zeros((48, 64, 3), np.uint8)
            a[:] = c
            a[12:24, i * 3 : i * 3 + 8] = 255
            frames.append(a)
    return write_video(frames, 8, kind)


def url(data: bytes, mime: str = "video/mp4") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def embedded(client, data: bytes, interval=4.0, shots=False):
    enc = client.app.state.runtime.encoder
    return enc.encode_video([decode_video(data, shots=shots)], interval, shots=shots)[0]


def test_openai_embeddings_take_video_items(client):
    mp4, webm = clip(), clip((BLUE, RED), kind="WebM")
    r = client.post("/v1/embeddings", json={"input": [
        "a red dress", {"type": "video", "video": url(mp4)},
        {"type": "video", "video": url(webm, "video/webm")}]})  # fmt: skip
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert [d["index"] for d in data] == [0, 1, 2]
    np.testing.assert_allclose(data[1]["embedding"], embedded(client, mp4).vector, atol=1e-5)
    np.testing.assert_allclose(data[2]["embedding"], embedded(client, webm).vector, atol=1e-5)


def test_embed_gives_segments_with_start_and_end(client):
    mp4 = clip()
    r = client.post("/embed", json={"texts": ["a dress"], "videos": [url(mp4)]})
    assert r.status_code == 200, r.text
    embs = r.json()["embeddings"]
    assert [e["modality"] for e in embs] == ["text", "video"]
    video = embs[1]
    assert [(s["start"], s["end"]) for s in video["segments"]] == [(0.0, 4.0), (4.0, 6.0)]
    want = embedded(client, mp4)
    np.testing.assert_allclose(video["vector"], want.vector, atol=1e-5)
    np.testing.assert_allclose([s["vector"] for s in video["segments"]], want.segment_vectors,
                               atol=1e-5)  # fmt: skip

    r = client.post("/embed", json={"videos": [url(mp4)], "segments": {"interval": 1.5,
                                    "start": 1.0, "end": 4.0}})  # fmt: skip
    spans = [(s["start"], s["end"]) for s in r.json()["embeddings"][0]["segments"]]
    assert spans == [(1.0, 2.5), (2.5, 4.0)]
    r = client.post("/embed", json={"videos": [url(mp4)], "segments": {"shots": True}})
    segs = r.json()["embeddings"][0]["segments"]
    assert [(s["start"], s["end"]) for s in segs] == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]
    np.testing.assert_allclose([s["vector"] for s in segs],
                               embedded(client, mp4, shots=True).segment_vectors, atol=1e-5)  # fmt: skip


def test_embed_multipart_upload_of_a_video(client, png):
    mp4 = clip()
    gif = clip((GREEN,), kind="GIF")
    r = client.post("/embed", files=[("files", ("a.bin", mp4)), ("files", ("b.gif", gif))],
                    data={"interval": "3", "texts": "a dress"})  # fmt: skip
    assert r.status_code == 200, r.text
    embs = r.json()["embeddings"]
    # a GIF upload is an image (its first frame); an MP4 with a video stream is a video
    assert [e["modality"] for e in embs] == ["text", "image", "video"]
    assert [(s["start"], s["end"]) for s in embs[2]["segments"]] == [(0.0, 3.0), (3.0, 6.0)]
    r = client.post("/embed", files=[("files", ("a.mp4", mp4))], data={"interval": "soon"})
    err(r, 422, "invalid_input", "interval: 'soon' is not a number")
    r = client.post("/embed", files=[("files", ("a.mp4", mp4))],
                    data={"interval": "3", "shots": "true"})  # fmt: skip
    err(r, 422, "invalid_input", "give interval or shots, not both")
    r = client.post("/embed", files=[("files", ("x.txt", b"plain words"))])
    err(r, 422, "invalid_input", "x.txt: not a supported image (JPEG, PNG, WEBP, GIF, BMP), audio "
        f"(WAV, FLAC, Ogg (Vorbis, Opus), MP3, M4A/AAC) or video format ({ALLOWED_VIDEO})")  # fmt: skip


def test_video_refusals(client, make_client, tiny_clap_dir):
    r = client.post("/v1/embeddings", json={"input": [{"type": "video", "video": url(b"GIF89a")}]})
    err(r, 422, "invalid_input", "input 0: corrupt GIF header")
    r = client.post("/embed", json={"videos": [url(b"not a video at all")]})
    err(
        r, 422, "invalid_input", f"video 0: not a supported video format (allowed: {ALLOWED_VIDEO})"
    )
    mp4 = clip()
    r = client.post("/embed", json={"videos": [url(mp4[: len(mp4) // 2])]})
    err(r, 422, "invalid_input", "video 0: corrupt MP4 header")
    r = client.post("/embed", json={"videos": [url(mp4)], "segments": {"start": 8}})
    err(r, 422, "invalid_input", "segment range 8-6 s is empty (the video is 6.000 s long)")
    r = client.post("/embed", json={"videos": [url(mp4)], "segments": {"shots": True,
                                                                        "interval": 2}})  # fmt: skip
    assert (
        r.status_code == 422 and "give interval or shots, not both" in r.json()["error"]["message"]
    )
    with make_client(f"hf:{tiny_clap_dir}") as clap:
        r = clap.post("/embed", json={"videos": [url(mp4)]})
        err(r, 422, "unsupported_modality", f"model 'hf:{tiny_clap_dir}' has no image tower (it "
            "embeds: audio, text); models with one: 'house', 'open_clip:' models, and 'hf:' CLIP, "
            "SigLIP, SigLIP 2 and ALIGN models")  # fmt: skip


@pytest.mark.parametrize("limit,message", [
    ({"max_video_seconds": 4.0},
     "video 0: the header declares 6.0 s of video, over the limit of 4 s"),
    ({"max_video_frames": 2}, "video 0: more than 2 frames at 1 per second, over the limit "
     "(sample less often, or send a shorter video)"),
    ({"max_video_pixels": 1000},
     "video 0: frames of 64x48 are 0.0 megapixels, over the limit of 0.001"),
    ({"max_video_bytes": 1000}, "video 0: {n} bytes is over the limit of 1000 bytes"),
])  # fmt: skip
def test_video_limits_come_from_the_settings(make_client, tiny_clip_dir, limit, message):
    mp4 = clip()
    with make_client(f"hf:{tiny_clip_dir}", **limit) as c:
        r = c.post("/embed", json={"videos": [url(mp4)]})
        err(r, 422, "invalid_input", message.format(n=len(mp4)))


def test_video_decoding_shows_in_the_metrics(client):
    r = client.post("/embed", json={"videos": [url(clip()), url(clip((RED,)))]})
    assert r.status_code == 200, r.text
    text = client.get("/metrics").text
    assert "jointspace_video_frames_total 8.0" in text
    assert 'jointspace_videos{state="decoding"} 0.0' in text
    assert 'jointspace_videos{state="waiting"} 0.0' in text
    name = client.app.state.runtime.served.default.id
    assert f'jointspace_batch_size_bucket{{le="8.0",modality="image",model="{name}"}} 1.0' in text
    seconds = [ln for ln in text.splitlines() if ln.startswith("jointspace_video_seconds_total")]
    assert seconds == ["jointspace_video_seconds_total 8.0"]


def count(client, name: str) -> int:
    return client.get(f"/collections/{name}").json()["count"]


def test_video_items_are_stored_as_segments(client):
    assert client.post("/collections", json={"name": "clips"}).status_code == 201
    mp4 = clip()
    r = client.put("/collections/clips/items", json={"items": [
        {"id": "dress", "video": url(mp4), "metadata": {"shop": "a"},
         "segments": {"interval": 2}},
        {"id": "note", "text": "a red dress"}]})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["upserted"] == 2
    assert count(client, "clips") == 5  # the whole video, its 3 segments, the note
    seg = client.get("/collections/clips/items/dress@1", params={"include_vector": True}).json()
    assert seg["metadata"] == {"shop": "a", "video_id": "dress", "start": 2.0, "end": 4.0,
                               "segment": 1}  # fmt: skip
    want = embedded(client, mp4, interval=2.0)
    np.testing.assert_allclose(seg["vector"], want.segment_vectors[1], atol=1e-5)
    whole = client.get("/collections/clips/items/dress", params={"include_vector": True}).json()
    assert whole["metadata"] == {"shop": "a", "video_id": "dress", "start": 0.0, "end": 6.0,
                                 "segments": 3}  # fmt: skip
    np.testing.assert_allclose(whole["vector"], want.vector, atol=1e-5)
    media = client.get(whole["media"])
    assert media.headers["content-type"] == "video/mp4" and media.content == mp4
    thumb = client.get(seg["media"])
    assert thumb.headers["content-type"] == "image/png"

    # a query for a moment: that segment first
    r = client.post("/collections/clips/search", json={"query": {"vector": seg["vector"]}, "k": 1})
    assert r.json()["hits"][0]["id"] == "dress@1"


def test_search_groups_segments_by_video(client):
    client.post("/collections", json={"name": "g"})
    items = [{"id": f"v{i}", "video": url(clip(colours)), "segments": {"interval": 1}}
             for i, colours in enumerate([(RED, GREEN), (RED, BLUE), (GREEN, BLUE)])]  # fmt: skip
    assert client.put("/collections/g/items", json={"items": items}).status_code == 200
    q = client.get("/collections/g/items/v0@0", params={"include_vector": True}).json()["vector"]
    body = {"query": {"vector": q}, "k": 3, "filter": {"segment": {"$exists": True}}}
    plain = client.post("/collections/g/search", json=body).json()["hits"]
    assert len({h["metadata"]["video_id"] for h in plain}) < 3  # a video's segments crowd in
    grouped = client.post("/collections/g/search", json={**body, "group_by": "video_id"})
    hits = grouped.json()["hits"]
    assert sorted(h["metadata"]["video_id"] for h in hits) == ["v0", "v1", "v2"]
    assert hits[0]["id"] == "v0@0" and hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_replacing_or_deleting_a_video_takes_its_segments(client):
    client.post("/collections", json={"name": "r"})
    put = lambda items: client.put("/collections/r/items", json={"items": items})  # noqa: E731
    assert put([{"id": "v", "video": url(clip()), "segments": {"interval": 2}}]).status_code == 200
    old_thumb = client.get("/collections/r/items/v@2").json()["media"]
    assert put([{"id": "v", "video": url(clip()), "segments": {"interval": 4}}]).status_code == 200
    assert count(client, "r") == 3
    assert client.get("/collections/r/items/v@2").status_code == 404
    assert client.get(old_thumb).status_code == 404
    assert put([{"id": "v", "text": "no longer a video"}]).status_code == 200
    assert count(client, "r") == 1
    assert client.get("/collections/r/items/v").json()["media"] is None

    assert put([{"id": "w", "video": url(clip())}]).status_code == 200
    assert count(client, "r") == 4
    r = client.delete("/collections/r/items/w")
    assert r.status_code == 200 and r.json() == {"deleted": 3}
    assert count(client, "r") == 1


def test_a_shrinking_video_is_one_transaction(client, monkeypatch):
    """Replacing a 3-segment video with a 2-segment one writes the whole item, its segments and
    the removal of the stale segment in one store transaction: there is no second write a crash
    could fall before."""
    from index.store import ItemStore

    client.post("/collections", json={"name": "t"})
    put = lambda items: client.put("/collections/t/items", json={"items": items})  # noqa: E731
    assert put([{"id": "v", "video": url(clip()), "segments": {"interval": 2}}]).status_code == 200
    before = client.get("/collections/t").json()["lsn"]
    writes = []
    real = ItemStore._transaction

    def counted(self):
        writes.append(1)
        return real(self)

    monkeypatch.setattr(ItemStore, "_transaction", counted)
    r = put([{"id": "v", "video": url(clip()), "segments": {"interval": 4}}])
    assert r.status_code == 200 and r.json()["lsn"] == before + 1
    assert len(writes) == 1
    assert count(client, "t") == 3
    assert client.get("/collections/t/items/v").json()["metadata"]["segments"] == 2
    assert [client.get(f"/collections/t/items/v@{i}").status_code for i in range(3)] == [
        200, 200, 404,
    ]  # fmt: skip


def test_video_item_refusals(client, make_client, tiny_clap_dir):
    client.post("/collections", json={"name": "bad"})
    r = client.put("/collections/bad/items", json={"items": [
        {"id": "v", "video": url(clip()), "metadata": {"start": 3, "end": 4}}]})  # fmt: skip
    err(r, 422, "invalid_input", "item 'v': metadata key(s) end, start are set by the service on "
        "video items; rename them")  # fmt: skip
    r = client.put("/collections/bad/items", json={"items": [{"id": "x" * 507,
                                                              "video": url(clip())}]})  # fmt: skip
    err(r, 422, "invalid_input", f"item '{'x' * 507}': a video's id has at most 506 characters "
        "(its segments' ids add '@' and an index)")  # fmt: skip
    r = client.put("/collections/bad/items", json={"items": [{"id": "v", "video": url(b"RIFF")}]})
    err(r, 422, "invalid_input", "item 'v': not a supported video format (allowed: "
        f"{ALLOWED_VIDEO.split('(allowed: ')[-1]})")  # fmt: skip
    assert count(client, "bad") == 0


def test_pooling_option_and_its_refusal(client, make_client, tiny_clip_dir):
    from encoders.house import default_house_dir

    mp4 = clip()
    r = client.post("/embed", json={"videos": [url(mp4)], "segments": {"pooling": "temporal"}})
    err(r, 422, "invalid_input", f"model 'hf:{tiny_clip_dir}' has no temporal head: use pooling "
        "'mean' (the house model ships one in models/house/temporal)")  # fmt: skip
    r = client.post("/embed", files=[("files", ("a.mp4", mp4))], data={"pooling": "max"})
    err(r, 422, "invalid_input", "pooling: give it once, as mean or temporal")
    if not (default_house_dir() / "temporal" / "model.safetensors").is_file():
        pytest.skip("models/house/temporal is not shipped")
    with make_client("house") as house:
        enc = house.app.state.runtime.encoder
        want = {p: enc.encode_video([decode_video(mp4)], 4.0, pooling=p)[0]
                for p in ("mean", "temporal")}  # fmt: skip
        got = {}
        for p in ("mean", "temporal", None):
            body = {"videos": [url(mp4)]} | ({"segments": {"pooling": p}} if p else {})
            got[p] = house.post("/embed", json=body).json()["embeddings"][0]["vector"]
        np.testing.assert_allclose(got["mean"], want["mean"].vector, atol=1e-5)
        np.testing.assert_allclose(got["temporal"], want["temporal"].vector, atol=1e-5)
        assert got[None] == got["temporal"]  # video_pooling "auto": the head when there is one
        assert float(np.dot(got["mean"], got["temporal"])) < 0.99999
