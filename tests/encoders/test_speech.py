"""Which Whisper model a setting names (no transcription here: the e2e speech tests transcribe),
the refusals at start-up with their messages, and the word error rate of the speech eval suite."""

from __future__ import annotations

import huggingface_hub.constants
import pytest

from encoders import ModelLoadError
from encoders.speech import packaged_dir, resolve_recogniser
from runtime.settings import Settings, SettingsError
from runtime.speech import Speech
from training.speech.eval import wer, words

FIX = "set JOINTSPACE_ASR to a model directory, to tiny.en (packaged), or to off"


def test_the_packaged_tiny_en_is_the_default_and_off_is_none():
    assert packaged_dir() is not None and (packaged_dir() / "model.bin").is_file()
    assert Settings.load({}).asr == "tiny.en"
    assert resolve_recogniser("tiny.en") == packaged_dir()
    assert resolve_recogniser(str(packaged_dir())) == packaged_dir()
    assert resolve_recogniser("off") is None and resolve_recogniser("OFF") is None
    assert Speech(Settings.load({}, asr="off")).batcher is None


def test_names_that_cannot_be_had_stop_the_start(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError) as e:
        resolve_recogniser("small")
    msg = str(e.value)
    assert msg.startswith("asr 'small': not found locally and could not be downloaded (")
    assert msg.endswith(f"); {FIX}")
    with pytest.raises(ModelLoadError, match=r"^asr 'whisper-xl': not a Whisper size \(tiny.en, "):
        resolve_recogniser("whisper-xl")
    with pytest.raises(ModelLoadError) as e:
        resolve_recogniser(str(tmp_path))
    assert str(e.value) == f"asr '{tmp_path}': no CTranslate2 Whisper model (model.bin) there"
    with pytest.raises(SettingsError) as e:
        Speech(Settings.load({"JOINTSPACE_ASR": str(tmp_path)}))
    assert str(e.value) == (f"asr (JOINTSPACE_ASR): asr '{tmp_path}': no CTranslate2 Whisper "
                            "model (model.bin) there")  # fmt: skip


def test_word_error_counts_edits_over_reference_words():
    assert words("The Red-dress, on SALE.") == ["the", "red", "dress", "on", "sale"]
    assert wer(["a", "red", "dress"], ["a", "red", "dress"]) == (0, 3)
    assert wer(["a", "red", "dress"], ["a", "dress"]) == (1, 3)
    assert wer(["a", "red", "dress"], ["the", "bed", "dress", "too"]) == (3, 3)
    assert wer(["a", "b"], []) == (2, 2)
