"""What is said in a batch job's audio and video inputs (`job embed --speech`): the recogniser a
job uses, the sound a worker decodes for it, and the rows a transcript adds: one per stretch of
speech (`ID@sN`, modality `speech`, its text's vector, `start`/`end` filled), with the ids and
metadata the API's `"speech": true` items have (index.children), and the transcript in the
parent row's metadata.

The recogniser is encoders.speech's (the packaged Whisper tiny.en by default); it runs in the
process that holds the model, one input at a time. Must not import anything of HTTP.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from encoders.audio import AudioLimits, decode_audio
from encoders.base import TEXT, Encoder
from encoders.errors import InputError, ModelLoadError
from encoders.speech import SPEECH_RATE, Recogniser, resolve_recogniser
from encoders.video import VideoLimits, audio_track
from index.children import SPEECH_KEYS, speech_item_rows, taken, with_transcript
from jobs.errors import JobError
from jobs.output import Row

SPOKEN = ("audio", "video")  # the inputs that can hold speech


def recogniser(asr: str, enc: Encoder) -> tuple[Recogniser, str]:
    """The recogniser `asr` names and its directory (what an actor elsewhere loads), checked
    before any work starts."""
    if TEXT not in enc.modalities:
        raise JobError(f"--speech embeds what is said with the text tower; model '{enc.name}' "
                       "has none")  # fmt: skip
    try:
        folder = resolve_recogniser(asr)
    except ModelLoadError as e:
        raise JobError(str(e)) from None
    if folder is None:
        raise JobError("--speech needs a speech recogniser: --asr is off")
    return Recogniser(folder), str(folder)


def speech_samples(data: bytes, name: str, modality: str, audio: AudioLimits,
                   video: VideoLimits) -> np.ndarray:  # fmt: skip
    """The input's sound as the recogniser takes it (mono at 16 kHz; a video without a sound
    track: none), within the same limits as its decoding."""
    if modality == "video":
        wave = audio_track(data, SPEECH_RATE, video, name)
        return np.zeros(0, np.float32) if wave is None else wave.samples
    return decode_audio(data, SPEECH_RATE, limits=audio, name=name).samples


def check_metadata(metadata: dict) -> None:
    if keys := taken(metadata, SPEECH_KEYS):
        raise InputError(f"metadata key(s) {keys} are set on the rows of inputs with "
                         "speech; rename them")  # fmt: skip


def with_speech(enc: Encoder, rec: Recogniser, metadata: dict, rows: list[Row],
                samples: np.ndarray, batch_size: int) -> list[Row]:  # fmt: skip
    """An input's rows (its own first) with its transcript added: the parent row's metadata
    gains `transcript` and `speech_segments`, and each stretch of speech becomes a row that
    carries the input's own `metadata`."""
    parent = rows[0]
    t = rec.transcribe(samples)
    texts = [s.text for s in t.segments]
    vecs = [enc.embed_text(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
    vectors = list(np.concatenate(vecs)) if vecs else []
    said = [(s.start, s.end, s.text) for s in t.segments]
    video = parent.modality == "video"
    ids, vectors, metas = speech_item_rows(parent.id, metadata, said, vectors, video)
    head = replace(parent, metadata=with_transcript(parent.metadata, t.text, len(said)))
    out = [head, *rows[1:]]
    for rid, vec, meta in zip(ids, vectors, metas, strict=True):
        a, b = meta.pop("start"), meta.pop("end")  # the row's own columns
        out.append(Row(parent.index, rid, parent.source, "speech", vec, meta, a, b))
    return out
