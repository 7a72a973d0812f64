"""Safe video decoding and segments: every allowed container decodes to sampled RGB frames with
their times; every refusal names the input and the limit; decoding stops at the caps; a clip with
known cuts gives those cuts and those segments; a video's vectors through the house image tower
(batched == one by one, two resolutions give close vectors)."""

from __future__ import annotations

import numpy as np
import pytest

from encoders import InputError, Waveform, load_encoder
from encoders.house import default_house_dir
from encoders.video import (
    Video,
    VideoLimits,
    decode_video,
    has_video_stream,
    mean_pool,
    segments,
    sniff_video,
)
from housedata.writer import write_video

RED, GREEN, BLUE = (200, 30, 30), (30, 200, 30), (30, 30, 200)


def shots_clip(colours, seconds=2.0, fps=8, size=(48, 64)) -> list[np.ndarray]:
    """One shot per colour, `seconds` each, with a white bar moving across it."""
    h, w = size
    frames = []
    for c in colours:
        for i in range(int(seconds * fps)):
            a = np.zeros((h, w, 3), np.uint8)
            a[:] = c
            x = i * (w - 8) // int(seconds * fps)
            a[h // 4 : h // 2, x : x + 8] = 255
            frames.append(a)
    return frames


@pytest.mark.parametrize("kind", ["MP4", "WebM", "GIF"])
def test_every_allowed_container_decodes(kind):
    data = write_video(shots_clip([RED, GREEN, BLUE]), 8, kind)
    assert sniff_video(data[:16]) == kind
    v = decode_video(data, name=kind)
    assert v.times == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert abs(v.duration - 6.0) < 0.02
    assert (v.width, v.height) == (64, 48)
    assert all(f.mode == "RGB" and f.size == (64, 48) for f in v.frames)
    r, g, b = np.asarray(v.frames[0]).reshape(-1, 3).mean(0)
    assert r > 150 and g < 100 and b < 100


def test_frames_are_scaled_down_to_the_side_never_up():
    data = write_video(shots_clip([RED], size=(120, 200)), 8)
    assert decode_video(data, side=60).frames[0].size == (100, 60)
    assert decode_video(data, side=512).frames[0].size == (200, 120)


def test_sampling_rate_is_a_parameter():
    data = write_video(shots_clip([RED, GREEN]), 8)
    assert decode_video(data, fps=2).times == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    assert decode_video(data, fps=0.5).times == [0.0, 2.0]


def test_shot_boundaries_of_a_clip_with_known_cuts():
    data = write_video(shots_clip([RED, GREEN, BLUE, RED], seconds=1.5), 8)
    v = decode_video(data, fps=0.5, shots=True)
    assert v.cuts == [1.5, 3.0, 4.5]
    # the first frame of every shot is kept, whatever the sampling rate
    assert v.times == [0.0, 1.5, 3.0, 4.5]
    spans = [(s.start, s.end, s.frames) for s in segments(v, shots=True)]
    assert spans == [(0.0, 1.5, [0]), (1.5, 3.0, [1]), (3.0, 4.5, [2]), (4.5, 6.0, [3])]


def test_a_moving_bar_is_not_a_cut():
    assert decode_video(write_video(shots_clip([GREEN], seconds=4)), shots=True).cuts == []


def test_interval_segments_start_and_end():
    v = decode_video(write_video(shots_clip([RED, GREEN, BLUE]), 8))
    spans = [(s.start, s.end, s.frames) for s in segments(v, 4.0)]
    assert spans == [(0.0, 4.0, [0, 1, 2, 3]), (4.0, 6.0, [4, 5])]
    spans = [(s.start, s.end, s.frames) for s in segments(v, 1.5, start=1.0, end=4.0)]
    assert spans == [(1.0, 2.5, [1, 2]), (2.5, 4.0, [3])]
    # a span with no sampled frame takes the nearest one
    assert [s.frames for s in segments(v, 0.5, start=0.0, end=1.0)] == [[0], [1]]
    with pytest.raises(InputError, match=r"^segment range 7-6 s is empty \(the video is 6.000 s"):
        segments(v, 4.0, start=7.0)
    with pytest.raises(InputError, match=r"^interval must be a positive number of seconds, not 0$"):
        segments(v, 0)


def test_the_audio_track_goes_through_the_audio_decoder(tone):
    wave = Waveform(tone(3.0, 16_000), 16_000)
    for kind in ("MP4", "WebM"):
        data = write_video(shots_clip([RED]), 8, kind, audio=wave)
        v = decode_video(data, audio_rate=16_000)
        assert v.audio is not None and v.audio.rate == 16_000
        assert abs(v.audio.seconds - 3.0) < 0.1
    assert decode_video(write_video(shots_clip([RED]), 8), audio_rate=16_000).audio is None


ALLOWED = "MP4/MOV (H.264, HEVC, MPEG-4, AV1, VP9), WebM/Matroska (VP8, VP9, AV1, H.264), GIF"


def refused(data, message, **kw):
    with pytest.raises(InputError) as e:
        decode_video(data, name="clip", **kw)
    assert str(e.value) == message


def test_refusals_name_the_input_and_the_limit(tone):
    mp4 = write_video(shots_clip([RED, GREEN, BLUE]), 8)
    refused(b"", "clip: empty file")
    refused(b"hello world, not a video", f"clip: not a supported video format (allowed: {ALLOWED})")
    refused(mp4, "clip: 2000 bytes is over the limit of 1000 bytes".replace("2000", str(len(mp4))),
            limits=VideoLimits(max_bytes=1000))  # fmt: skip
    refused(mp4, "clip: the header declares 6.0 s of video, over the limit of 4 s",
            limits=VideoLimits(max_seconds=4))  # fmt: skip
    refused(mp4, "clip: more than 3 frames at 1 per second, over the limit (sample less often, "
            "or send a shorter video)", limits=VideoLimits(max_frames=3))  # fmt: skip
    refused(mp4, "clip: frames of 64x48 are 0.0 megapixels, over the limit of 0.001",
            limits=VideoLimits(max_pixels=1000))  # fmt: skip
    refused(mp4, "clip: fps must be above 0 and at most 30, not 0", fps=0)
    from encoders.audio import encode_audio

    m4a = encode_audio(tone(1.0, 16_000), 16_000, "M4A")
    assert not has_video_stream(m4a) and has_video_stream(mp4)
    refused(m4a, "clip: MP4 file has no video stream")


def test_corrupt_and_truncated_files_are_refused():
    mp4 = write_video(shots_clip([RED, GREEN, BLUE]), 8)
    refused(mp4[: len(mp4) // 2], "clip: corrupt MP4 header")  # the index is at the end
    webm = write_video(shots_clip([RED, GREEN, BLUE] * 2), 8, "WebM")
    refused(webm[: len(webm) // 2], "clip: truncated WebM data (5.0 s of a declared 12.0 s)")
    garbage = webm[:200] + bytes(range(256)) * 40
    with pytest.raises(InputError, match=r"^clip: (truncated|corrupt)"):
        decode_video(garbage, name="clip")


def test_a_header_that_lies_about_its_length_stops_at_the_cap():
    # a GIF declares no length: decoding stops at the duration cap, not at the end of the data
    gif = write_video(shots_clip([RED, GREEN], seconds=3), 8, "GIF")
    refused(gif, "clip: the header declares 6.0 s of video, over the limit of 2 s",
            limits=VideoLimits(max_seconds=2))  # fmt: skip


def test_mean_pool():
    vecs = np.eye(3, dtype=np.float32)
    v = Video([], [0.0, 1.0, 2.0], 3.0)
    out = mean_pool(vecs, segments(v, 2.0))
    np.testing.assert_allclose(out.vector, np.full(3, 3**-0.5), atol=1e-6)
    np.testing.assert_allclose(out.segment_vectors, [[2**-0.5, 2**-0.5, 0], [0, 0, 1]], atol=1e-6)


house_only = pytest.mark.skipif(
    not (default_house_dir() / "model.safetensors").is_file(), reason="models/house not shipped"
)


@pytest.fixture(scope="module")
def house():
    return load_encoder("house", device="cpu")


@house_only
def test_batched_videos_equal_one_by_one(house):
    a = decode_video(write_video(shots_clip([RED, GREEN, BLUE]), 8))
    b = decode_video(write_video(shots_clip([BLUE, RED]), 8))
    together = house.encode_video([a, b], 2.0)
    for v, got in zip([a, b], together, strict=True):
        alone = house.encode_video([v], 2.0)[0]
        np.testing.assert_allclose(got.vector, alone.vector, atol=1e-5)
        np.testing.assert_allclose(got.segment_vectors, alone.segment_vectors, atol=1e-5)
    frames = house.embed_images(a.frames)
    np.testing.assert_allclose(together[0].segment_vectors[0],
                               mean_pool(frames, segments(a, 2.0)).segment_vectors[0],
                               atol=1e-5)  # fmt: skip


@house_only
def test_two_resolutions_give_close_vectors(house):
    small = decode_video(write_video(shots_clip([RED, GREEN, BLUE], size=(96, 128)), 8))
    large = decode_video(write_video(shots_clip([RED, GREEN, BLUE], size=(288, 384)), 8))
    other = decode_video(write_video(shots_clip([GREEN, BLUE, RED], size=(96, 128)), 8))
    a, b, c = house.encode_video([small, large, other], 2.0)
    assert float(a.vector @ b.vector) > 0.95
    same = np.sum(a.segment_vectors * b.segment_vectors, 1)
    assert (same > 0.95).all()
    # each segment is closer to itself at the other resolution than to another colour's segment
    assert (same > np.sum(a.segment_vectors * c.segment_vectors, 1) + 0.1).all()


@house_only
def test_a_video_needs_an_image_tower_and_decoded_input(house):
    with pytest.raises(InputError, match=r"^video 0 is bytes, not a decoded video"):
        house.encode_video([b"abc"])
