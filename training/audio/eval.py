"""Evaluation of any encoder with an audio tower, on held-out sounds and held-out voices.

Suites (each also measured on the training side, so overfitting shows):
- audio-speech: Fashion-MNIST class names spoken by espeak-ng voices training never heard,
  classified zero-shot against the ten class prompts (top-1);
- audio-sounds: held-out Tux Paint sound effects -> every stamp caption (Recall@1/5) and -> every
  stamp picture (Recall@5).
Beside each figure: chance, and a simple baseline that needs no joint space, nearest neighbour on
log-mel statistics (mean and spread per mel band) against training recordings. Works through the
`Encoder` interface only. Knows nothing of FAISS or HTTP.
"""

from __future__ import annotations

import numpy as np
import torch

from encoders.audio import Waveform, decode_audio, resample
from encoders.base import Encoder
from housedata.sets import EVAL_TEMPLATES, FASHION_CLASSES, in_split
from training.audio.data import (
    ESPEAK_LANGS,
    HELD_OUT_VARIANTS,
    RATE,
    SPOKEN_TEMPLATES,
    TRAIN_VARIANTS,
    Voice,
    speak,
    stamps,
)
from training.suites import suite


def spoken_fashion_set(
    split: str, templates: int = 3, langs: int = 4
) -> tuple[list[np.ndarray], np.ndarray]:
    """Each class name said in `templates` wordings by voices of the split (16 kHz)."""
    variants = HELD_OUT_VARIANTS if split == "test" else TRAIN_VARIANTS[:: len(TRAIN_VARIANTS) // 4]
    waves, labels = [], []
    for label, name in enumerate(FASHION_CLASSES):
        for t in SPOKEN_TEMPLATES[:templates]:
            for lang in ESPEAK_LANGS[:langs]:
                for v in variants:
                    waves.append(speak(t.format(name), Voice(lang, v)))
                    labels.append(label)
    return waves, np.array(labels)


def mel_stats(waves: list[np.ndarray]) -> np.ndarray:
    """Baseline features: per-band mean and spread of the log-mel spectrogram, standardised."""
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(RATE, n_fft=400, hop_length=160, n_mels=64)
    rows = []
    with torch.no_grad():
        for w in waves:
            m = torch.log(mel(torch.from_numpy(w)) + 1e-6)
            rows.append(torch.cat([m.mean(1), m.std(1)]).numpy())
    x = np.stack(rows)
    x = x - x.mean(0)
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-9)


def _embed(enc: Encoder, waves: list[np.ndarray]) -> np.ndarray:
    return enc.embed_audio(
        [Waveform(resample(w, RATE, enc.audio_rate), enc.audio_rate) for w in waves]
    )


@suite("audio-speech", needs_audio=True)
def audio_speech(enc: Encoder, **_) -> dict:
    from training.metrics import class_vectors

    classes = class_vectors(enc, FASHION_CLASSES, EVAL_TEMPLATES)
    train_w, train_y = spoken_fashion_set("train")
    test_w, test_y = spoken_fashion_set("test")
    out = {"n_test": len(test_y), "n_train": len(train_y)}
    for side, waves, y in (("held_out", test_w, test_y), ("train", train_w, train_y)):
        pred = (_embed(enc, waves) @ classes.T).argmax(1)
        out[f"{side}_voices_top1"] = float((pred == y).mean())
    feats = mel_stats(train_w + test_w)
    nearest = (feats[len(train_w) :] @ feats[: len(train_w)].T).argmax(1)
    out["baseline:held_out_voices_top1"] = float((train_y[nearest] == test_y).mean())
    out["chance@1"] = 1 / len(FASHION_CLASSES)
    return out


@suite("audio-sounds", needs_audio=True)
def audio_sounds(enc: Encoder, seed: int = 0, **_) -> dict:
    from encoders.decode import decode_image

    every = stamps()
    captions = list(dict.fromkeys(s.caption for s in every))
    cap_vecs = enc.embed_text(captions)
    img_vecs = enc.embed_images([decode_image(s.png) for s in every])
    sides = {"held_out": [], "train": []}
    for i, s in enumerate(every):
        if s.sound:
            sides["held_out" if in_split(s.key, "test", seed) else "train"].append(i)
    waves = {
        i: decode_audio(every[i].sound, RATE, name=every[i].key).samples
        for idx in sides.values()
        for i in idx
    }
    out = {f"n_{k}": len(v) for k, v in sides.items()}
    out |= {"n_captions": len(captions), "n_pictures": len(every)}
    for side, idx in sides.items():
        vecs = _embed(enc, [waves[i] for i in idx])
        truth = np.array([captions.index(every[i].caption) for i in idx])
        out |= _recalls(side, vecs @ cap_vecs.T, truth, vecs @ img_vecs.T, np.array(idx))
    # Baseline: the caption and picture of the nearest training sound.
    feats = mel_stats([waves[i] for i in sides["held_out"] + sides["train"]])
    n = len(sides["held_out"])
    near5 = np.array(sides["train"])[np.argsort(-(feats[:n] @ feats[n:].T), axis=1)[:, :5]]
    held = sides["held_out"]
    out["baseline:held_out_caption_recall@1"] = float(
        np.mean(
            [every[j].caption == every[i].caption for i, j in zip(held, near5[:, 0], strict=True)]
        )
    )
    out["baseline:held_out_image_recall@5"] = float(
        np.mean((near5 == np.array(held)[:, None]).any(1))
    )
    out["chance@1"] = 1 / len(captions)
    out["chance@5"] = min(1.0, 5 / len(captions))
    out["chance_image@5"] = min(1.0, 5 / len(every))
    return out


def _recalls(side: str, to_cap: np.ndarray, truth: np.ndarray, to_img: np.ndarray, idx) -> dict:
    cap_rank = np.argsort(-to_cap, axis=1)
    img_rank = np.argsort(-to_img, axis=1)
    out = {}
    for k in (1, 5):
        out[f"{side}_caption_recall@{k}"] = float((cap_rank[:, :k] == truth[:, None]).any(1).mean())
    out[f"{side}_image_recall@5"] = float((img_rank[:, :5] == idx[:, None]).any(1).mean())
    return out


@suite("video-sound-moments", needs_audio=True)
def video_sound_moments(enc: Encoder, limit: int | None = None, seed: int = 0, **_) -> dict:
    """Moments found by what is heard: clips whose picture stays the same while the sound changes
    (one held-out stamp sound per 4 s segment); the caption of a sound must find its segment
    (rank-1 over every segment of every clip). Fused segments (frames and the sound window, as
    `"audio": "fuse"` makes them) against frames only, which are alike within a clip."""
    from encoders.decode import decode_image
    from fusion import fuse

    rng = np.random.default_rng(seed)
    every = stamps()
    held = [s for s in every if s.sound and in_split(s.key, "test", seed)]
    held = list({s.caption: s for s in held}.values())  # one sound per caption
    order = rng.permutation(len(held))
    clips = min(limit or 12, len(held) // 2)
    slot = int(4 * RATE)
    seg_img, seg_snd, truth = [], [], []
    for c in range(clips):
        pair = [held[i] for i in order[2 * c : 2 * c + 2]]
        picture = every[int(rng.integers(len(every)))]
        img = enc.embed_images([decode_image(picture.png)])[0]
        for s in pair:
            w = decode_audio(s.sound, RATE, name=s.key).samples[:slot]
            seg_img.append(img)
            seg_snd.append(np.pad(w, (0, slot - len(w))))
            truth.append(s.caption)
    heard = _embed(enc, seg_snd)
    fused = np.stack([fuse({"image": i, "audio": a}) for i, a in zip(seg_img, heard, strict=True)])
    q = enc.embed_text(truth)
    right = np.arange(len(truth))
    return {
        "clips": clips, "segments": len(truth),
        "fused_top1": float(((q @ fused.T).argmax(1) == right).mean()),
        "baseline:fused_top1": float(((q @ np.stack(seg_img).T).argmax(1) == right).mean()),
        "chance@1": 1 / len(truth),
    }  # fmt: skip
