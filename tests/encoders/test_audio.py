"""Safe audio decoding: every allowed format decodes to mono float32 at the asked rate; every
refusal names the input and the limit; decoding stops at the duration cap; windows cut long clips."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

import encoders.audio as A
from encoders import InputError, Waveform
from encoders.audio import AudioLimits, decode_audio, encode_audio, sniff_audio, windows
from housedata.sets import TUXPAINT_DIR

RATE = 22_050


@pytest.mark.parametrize(
    "kind,sniffed", [("WAV", "WAV"), ("FLAC", "FLAC"), ("Ogg", "Ogg"), ("Opus", "Ogg"),
                     ("MP3", "MP3"), ("M4A", "M4A"), ("AAC", "AAC")],
)  # fmt: skip
def test_every_allowed_format_decodes(kind, sniffed, tone):
    data = encode_audio(tone(1.0, RATE), RATE, kind)
    assert sniff_audio(data[:16]) == sniffed
    w = decode_audio(data, 16_000, name=kind)
    assert w.rate == 16_000 and w.samples.dtype == np.float32 and w.samples.ndim == 1
    # lossy codecs add priming and pad the last frame (AAC: about 70 ms here)
    assert abs(w.seconds - 1.0) < 0.1
    assert 0.3 < float(np.abs(w.samples).max()) <= 1.0


def test_stereo_is_mixed_to_mono(tone):
    left = tone(1.0, RATE)
    data = encode_audio(np.stack([left, np.zeros_like(left)]), RATE, "WAV")
    w = decode_audio(data, RATE)
    np.testing.assert_allclose(w.samples, left / 2, atol=1e-4)


def test_resampling_keeps_the_signal(tone):
    w = decode_audio(encode_audio(tone(1.0, 44_100), 44_100, "WAV"), 16_000)
    np.testing.assert_allclose(w.samples[100:-100], tone(1.0, 16_000)[100:-100], atol=0.02)


@pytest.mark.skipif(not TUXPAINT_DIR.exists(), reason="needs tuxpaint-stamps-default")
def test_tux_paint_ogg_vorbis_decodes():
    w = decode_audio(TUXPAINT_DIR / "animals/mammals/badger.ogg")
    assert w.rate == 16_000 and 6.9 < w.seconds < 7.1


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, "PNG")
    return buf.getvalue()


ALLOWED = "WAV, FLAC, Ogg (Vorbis, Opus), MP3, M4A/AAC"


def test_refusals_name_the_input(tone):
    wav = encode_audio(tone(3.0, RATE), RATE, "WAV")
    flac = encode_audio(tone(3.0, RATE), RATE, "FLAC")
    stereo = encode_audio(np.stack([tone(1.0, RATE)] * 2), RATE, "WAV")
    cases = [
        (b"", {}, "clip: empty file"),
        (_png(), {}, f"clip: not a supported audio format (allowed: {ALLOWED})"),
        (
            b"hello, I am text pretending to be audio",
            {},
            f"clip: not a supported audio format (allowed: {ALLOWED})",
        ),
        (flac[:40], {}, "clip: corrupt FLAC header"),
        (flac[: len(flac) // 2], {}, "clip: truncated or corrupt FLAC data"),
        (wav[:66_189], {}, f"clip: truncated WAV data (66189 of {len(wav)} bytes)"),
        (
            wav,
            {"max_seconds": 1.0},
            "clip: the header declares 3.0 s of audio, over the limit of 1 s",
        ),
        (wav, {"max_seconds": 2.5}, "clip: at least 2.5 s of audio, over the limit of 2.5 s"),
        (stereo, {"max_channels": 1}, "clip: 2 channels (allowed: 1 to 1)"),
        (wav, {"min_rate": 32_000}, "clip: sample rate 22050 Hz is outside 32000-192000 Hz"),
        (wav, {"max_bytes": 1000}, f"clip: {len(wav)} bytes is over the limit of 1000 bytes"),
    ]
    for data, limits, message in cases:
        with pytest.raises(InputError) as e:
            decode_audio(data, limits=AudioLimits(**limits), name="clip")
        assert str(e.value) == message


def _wav_header(n_samples: int, rate: int = 8000) -> bytes:
    """A 16-bit mono WAV header that declares `n_samples` samples."""
    data_bytes = 2 * n_samples
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, rate, 2 * rate, 2, 16)
            + b"data" + struct.pack("<I", data_bytes))  # fmt: skip


def test_zero_length_audio_is_refused():
    with pytest.raises(InputError, match=r"^clip: WAV file holds no audio samples$"):
        decode_audio(_wav_header(0), name="clip")


def test_a_header_that_claims_too_much_is_refused_before_decoding(monkeypatch):
    data = encode_audio(np.zeros(8000 * 600, np.float32), 8000, "FLAC")  # 10 min of silence
    assert len(data) < 200_000
    decoded = []
    monkeypatch.setattr(A, "_frames", lambda *a: decoded.append(1) or iter(()))
    with pytest.raises(
        InputError, match=r"^bomb: the header declares 600\.0 s of audio, over the limit of 60 s$"
    ):
        decode_audio(data, limits=AudioLimits(max_seconds=60), name="bomb")
    assert decoded == []


def test_a_wav_header_that_lies_costs_nothing():
    """A data chunk that claims two hours but holds one second decodes to the one second there is
    (a size over the byte cap reads as a streaming writer's placeholder); a claim within the cap
    that the bytes do not hold is a truncated file."""
    lying = _wav_header(8000 * 7200) + b"\0" * 16_000
    assert decode_audio(lying, 8000, name="bomb").seconds == 1.0
    short = _wav_header(8000 * 3) + b"\0" * 16_000
    with pytest.raises(InputError, match=r"^cut: truncated WAV data \(16044 of 48044 bytes\)$"):
        decode_audio(short, name="cut")


def _flac_without_length(data: bytes) -> bytes:
    """The FLAC with STREAMINFO's total-samples field zeroed ("unknown", as streamed encoders
    write it): 36 bits at the end of the 8 bytes from offset 18."""
    packed = int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)
    return data[:18] + packed.to_bytes(8, "big") + data[26:]


def test_decoding_stops_at_the_cap(monkeypatch, tone):
    """No declared duration to check first: samples are counted as they come and decoding stops
    at the first frame past the cap, not at the end of the file."""
    data = _flac_without_length(encode_audio(tone(30.0, 8000), 8000, "FLAC"))
    seen = []
    real = A._frames

    def counting(container, stream):
        for chunk in real(container, stream):
            seen.append(len(chunk))
            yield chunk

    monkeypatch.setattr(A, "_frames", counting)
    with pytest.raises(
        InputError, match=r"^bomb: at least 5\.\d s of audio, over the limit of 5 s$"
    ):
        decode_audio(data, limits=AudioLimits(max_seconds=5.0), name="bomb")
    assert sum(seen) <= 5 * 8000 + max(seen)
    assert sum(seen) < 30 * 8000 / 2


def test_windows_cut_long_clips():
    w = Waveform(np.zeros(25 * 100, np.float32), 100)
    assert [(c.start, c.end) for c in windows(w, 10)] == [(0.0, 10.0), (10.0, 20.0), (20.0, 25.0)]
    w = Waveform(np.zeros(2030, np.float32), 100)  # a 0.3 s tail joins the window before it
    assert [(c.start, c.end) for c in windows(w, 10)] == [(0.0, 10.0), (10.0, 20.3)]
    w = Waveform(np.zeros(20, np.float32), 100)
    assert [(c.start, c.end) for c in windows(w, 10)] == [(0.0, 0.2)]
    with pytest.raises(InputError, match="window length must be positive, not 0"):
        windows(w, 0)
