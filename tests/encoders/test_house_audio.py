"""The shipped house audio tower: the same sound gives the same vector whatever its container or
sample rate, windows are embedded alone whatever they are batched with, and the tower's files load
through the `house` spec (and refuse to load when they do not match)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from encoders import InputError, ModelLoadError, Waveform, decode_audio, load_encoder
from encoders.audio import encode_audio
from encoders.house import default_house_dir

AUDIO_DIR = default_house_dir() / "audio"
pytestmark = pytest.mark.skipif(
    not (AUDIO_DIR / "model.safetensors").is_file(), reason="models/house/audio is not shipped"
)


@pytest.fixture(scope="module")
def house():
    return load_encoder("house", device="cpu")


def speechlike(seconds: float, rate: int) -> np.ndarray:
    """Harmonics with a moving formant and syllable-like bursts: energy across the mel bands."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
    return (0.3 * wave * envelope / np.abs(wave).max()).astype(np.float32)


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_wav_and_flac_give_the_same_vector(house):
    wave = speechlike(3.0, 16_000)
    wav = house.embed_audio([decode_audio(encode_audio(wave, 16_000, "WAV"))])[0]
    flac = house.embed_audio([decode_audio(encode_audio(wave, 16_000, "FLAC"))])[0]
    assert cos(wav, flac) >= 0.999


def test_16_and_44_khz_give_nearly_the_same_vector(house):
    at16 = house.embed_audio([decode_audio(encode_audio(speechlike(3.0, 16_000), 16_000))])[0]
    at44 = house.embed_audio([decode_audio(encode_audio(speechlike(3.0, 44_100), 44_100))])[0]
    assert cos(at16, at44) >= 0.98


def test_batched_equals_one_by_one(house):
    clips = [Waveform(speechlike(s, 16_000), 16_000) for s in (1.0, 2.5, 1.0, 23.0)]
    together = house.encode_audio(clips)
    for i, c in enumerate(clips):
        alone = house.encode_audio([c])
        np.testing.assert_allclose(alone.vectors[0], together.vectors[i], atol=1e-5)
    assert together.segments[3] == [(0.0, 10.0), (10.0, 20.0), (20.0, 23.0)]


def test_a_clip_at_another_rate_is_refused(house):
    with pytest.raises(InputError, match=r"^audio 0 is at 8000 Hz; this model takes 16000 Hz$"):
        house.embed_audio([Waveform(np.zeros(8000, np.float32), 8000)])


def test_an_audio_tower_that_does_not_match_is_a_load_error(tmp_path):
    d = tmp_path / "house"
    shutil.copytree(default_house_dir(), d, ignore=shutil.ignore_patterns("*.md", "eval.json"))
    cfg = (d / "audio" / "config.json").read_text().replace('"embed_dim": 256', '"embed_dim": 128')
    (d / "audio" / "config.json").write_text(cfg)
    with pytest.raises(ModelLoadError, match=r"cannot load the audio tower at .*audio: "):
        load_encoder(f"house:{d}", device="cpu")
