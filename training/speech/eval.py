"""Evaluation of the speech recogniser (the packaged Whisper tiny.en) with any model's text tower,
on espeak-ng voices that the house audio tower's training never heard (`HELD_OUT_VARIANTS`).

Suites:
- speech-queries: Fashion-MNIST class names and free wordings of Tux Paint stamp captions, spoken,
  read as speech (transcribed, then the text tower) against read as sound (the audio tower, where
  the model has one: the baseline); top-1 beside chance;
- speech-moments: clips whose picture is the same throughout while a voice says a different phrase
  in each 4 s slot; a text query for a phrase must find the right clip's segment (rank-1) with its
  start within 1 s of when it was said; the baseline is the frames, which are the same everywhere
  (any segment is as near as any other: chance);
- speech-wer: the recogniser's word error rate on held-out voices, beside the training voices' and
  the baseline of writing nothing (1.0).
Works through the `Encoder` interface and encoders.speech only. Knows nothing of FAISS or HTTP.
"""

from __future__ import annotations

import re

import numpy as np

from encoders.base import AUDIO, Encoder
from encoders.speech import PACKAGED, Recogniser, resolve_recogniser
from housedata.sets import COLOURS, EVAL_TEMPLATES, FASHION_CLASSES, MissingData
from training.audio.data import (
    ESPEAK_LANGS,
    HELD_OUT_VARIANTS,
    RATE,
    TRAIN_VARIANTS,
    Voice,
    speak,
    stamps,
)
from training.suites import suite

SLOT_S = 4.0  # seconds per phrase in a speech-moments clip
WORDINGS = ["{}", "show me the {}", "I am looking for a {}"]


def _recogniser() -> Recogniser:
    return Recogniser(resolve_recogniser(PACKAGED))


def _has_recogniser(_: Encoder) -> bool:
    try:
        resolve_recogniser(PACKAGED)
    except Exception:
        return False
    return True


def _voices(held_out: bool) -> list[Voice]:
    variants = HELD_OUT_VARIANTS if held_out else TRAIN_VARIANTS[::5]
    return [Voice(ESPEAK_LANGS[i % 2], v) for i, v in enumerate(variants)]


def _top1(asr: Recogniser, enc: Encoder, waves: list[np.ndarray], targets: np.ndarray,
          truth: np.ndarray) -> tuple[float, float | None]:  # fmt: skip
    """(top-1 read as speech, top-1 read as sound or None) of spoken queries against `targets`."""
    said = [asr.transcribe(w).text or "nothing" for w in waves]
    speech = float(((enc.embed_text(said) @ targets.T).argmax(1) == truth).mean())
    if AUDIO not in enc.modalities:
        return speech, None
    from training.audio.eval import _embed

    return speech, float(((_embed(enc, waves) @ targets.T).argmax(1) == truth).mean())


@suite("speech-queries", available=_has_recogniser)
def speech_queries(enc: Encoder, limit: int | None = None, seed: int = 0, **_) -> dict:
    from training.metrics import class_vectors

    asr, voices = _recogniser(), _voices(True)
    rng = np.random.default_rng(seed)
    classes = class_vectors(enc, FASHION_CLASSES, EVAL_TEMPLATES)
    waves, truth = [], []
    for label, name in enumerate(FASHION_CLASSES):
        for j, v in enumerate(voices[: limit or len(voices)]):
            waves.append(speak(WORDINGS[(label + j) % len(WORDINGS)].format(name), v))
            truth.append(label)
    out = {"fashion_n": len(truth), "fashion_chance@1": 1 / len(FASHION_CLASSES)}
    speech, sound = _top1(asr, enc, waves, classes, np.array(truth))
    out["fashion_speech_top1"] = speech
    if sound is not None:
        out["baseline:fashion_speech_top1"] = sound
    try:
        caps = list(dict.fromkeys(s.caption for s in stamps()))
    except MissingData:
        return out
    pick = rng.choice(len(caps), min(limit or 40, len(caps)), replace=False)
    waves = [speak(WORDINGS[i % len(WORDINGS)].format(caps[c].lower()), voices[i % len(voices)])
             for i, c in enumerate(pick)]  # fmt: skip
    speech, sound = _top1(asr, enc, waves, enc.embed_text(caps), pick)
    out |= {"stamps_n": len(pick), "stamps_chance@1": 1 / len(caps), "stamps_speech_top1": speech}
    if sound is not None:
        out["baseline:stamps_speech_top1"] = sound
    return out


def _phrases(rng: np.random.Generator, n: int) -> list[str]:
    """`n` distinct phrases "a <colour> <item>" (no two alike, so each has one right answer)."""
    pairs = [(c, f) for c in COLOURS for f in FASHION_CLASSES]
    picked = rng.choice(len(pairs), n, replace=False)
    return [f"a {pairs[i][0]} {pairs[i][1].lower()}" for i in picked]


def _moment_clip(phrases: list[str], voice: Voice, rng) -> tuple[np.ndarray, list[float]]:
    """The phrases said one per SLOT_S slot, each at a random offset into it; (samples, starts)."""
    slot = int(SLOT_S * RATE)
    clip, starts = np.zeros(slot * len(phrases), np.float32), []
    for i, p in enumerate(phrases):
        w = speak(p, voice)[: slot - RATE // 2]
        at = i * slot + int(rng.integers(0, max(1, slot - len(w))))
        clip[at : at + len(w)] = w
        starts.append(at / RATE)
    return clip, starts


@suite("speech-moments", available=_has_recogniser)
def speech_moments(enc: Encoder, limit: int | None = None, seed: int = 0, **_) -> dict:
    asr, voices = _recogniser(), _voices(True)
    rng = np.random.default_rng(seed)
    segs, owners, queries = [], [], []  # segment texts; (clip, start) per segment; per phrase
    clips = limit or 12
    every = _phrases(rng, 3 * clips)
    for c in range(clips):
        phrases = every[3 * c : 3 * c + 3]
        clip, starts = _moment_clip(phrases, voices[c % len(voices)], rng)
        for s in asr.transcribe(clip).segments:
            segs.append(s.text)
            owners.append((c, s.start))
        queries += [(p, c, t) for p, t in zip(phrases, starts, strict=True)]
    found = (enc.embed_text([q for q, _, _ in queries]) @ enc.embed_text(segs).T).argmax(1)
    rank1 = [owners[f][0] == c for f, (_, c, _) in zip(found, queries, strict=True)]
    timed = [owners[f][0] == c and abs(owners[f][1] - t) <= 1.0
             for f, (_, c, t) in zip(found, queries, strict=True)]  # fmt: skip
    return {
        "queries": len(queries), "segments": len(segs), "moment_top1": float(np.mean(rank1)),
        "timed_moment_top1": float(np.mean(timed)), "chance@1": 1 / max(1, len(segs)),
        "baseline:timed_moment_top1": 1 / max(1, len(segs)),
    }  # fmt: skip


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def wer(ref: list[str], hyp: list[str]) -> tuple[int, int]:
    """(word edits, reference words): the Levenshtein distance over words."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1], len(ref)


@suite("speech-wer", available=_has_recogniser)
def speech_wer(enc: Encoder, limit: int | None = None, seed: int = 0, **_) -> dict:
    asr, rng = _recogniser(), np.random.default_rng(seed)
    out = {}
    for side, held in (("held_out", True), ("train", False)):
        edits = total = 0
        for i, v in enumerate(_voices(held)):
            for p in _phrases(rng, min(limit or 5, len(FASHION_CLASSES))):
                text = WORDINGS[i % len(WORDINGS)].format(p)
                e, n = wer(words(text), words(asr.transcribe(speak(text, v)).text))
                edits, total = edits + e, total + n
        out[f"{side}_voices_wer"] = edits / total
        out[f"{side}_words"] = total
    out["baseline:held_out_voices_wer"] = 1.0  # writing nothing
    return out
