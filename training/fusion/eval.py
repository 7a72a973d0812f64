"""The fusion suites of `jointspace eval`:

- fusion-tuxpaint: the Tux Paint stamps labelled by their category (the stamp's top folder, 16 of
  them), with the picture, the caption and (for a model with an audio tower) the sound effect as
  parts. Classifiers learn on the stamps of the training split and are scored on the held-out
  stamps (the split the house model never trained on): zero-shot on the picture, a linear probe
  per part, and early / late / attention fusion of every part; the fusions again with the picture
  or the caption removed at test time; and the expected calibration error of the fusions on the
  held-out stamps before and after temperature scaling, beside the ECE a perfectly calibrated
  classifier would show on that many stamps (the floor: with 84 stamps it is about 0.11).
- fusion-head: the learned fusion head against equal weights, on the Tux Paint stamps with three
  parts each (caption, picture, a recording): trained on the stamps of the training split, scored
  on the held-out ones by leave-one-out recall@1 (each part found among the held-out stamps' from
  the fusion of the other two). Twice: with the stamps' spoken descriptions in nine languages
  other than English as the recording (a part the towers cannot read, which the head should learn
  to weigh down), and with their sound effects and English descriptions (parts the audio tower
  was trained on, where equal weights are hard to beat). Needs an audio tower.
- fusion-fashion: a linear probe on 16 labelled Fashion-MNIST training images per class against
  zero-shot, on the test split; and calibration where there are enough examples to measure it:
  each classifier trained on 4,000 test images the house model never saw (its temperature fitted
  on a fifth of them), its ECE before and after scaling, and the floor, on 2,000 others.

Imports the encoders, fusion and the training data, nothing of FAISS or HTTP.
"""

from __future__ import annotations

import numpy as np

from encoders.base import AUDIO, Encoder
from encoders.decode import decode_image
from fusion.classifier import KINDS, Examples, ece, ece_floor, fit, softmax
from fusion.head import HeadConfig, equal_weights, leave_one_out_recall, train_head
from housedata.sets import EVAL_TEMPLATES, FASHION_CLASSES, fashion_mnist, in_split
from training.audio.data import RATE, foreign_descriptions, stamps
from training.metrics import class_vectors, images
from training.suites import suite

FUSIONS = ("early", "late", "attention")
EPOCHS = 200
WORDS = {"naturalforces": "natural forces"}  # category folder -> words for zero-shot prompts


def stamp_examples(enc: Encoder) -> tuple[Examples, np.ndarray]:
    """Every stamp as an example (parts: text, image and, with an audio tower, audio) and a mask
    of the held-out ones."""
    from encoders.audio import decode_audio

    every = stamps()
    parts = ("text", "image", "audio") if AUDIO in enc.modalities else ("text", "image")
    classes = sorted({s.key.split("/")[0] for s in every})
    vectors = np.zeros((len(every), len(parts), enc.dim), np.float32)
    present = np.zeros((len(every), len(parts)), bool)
    vectors[:, 0] = enc.embed_text([s.caption for s in every])
    vectors[:, 1] = enc.embed_images([decode_image(s.png) for s in every])
    present[:, :2] = True
    if "audio" in parts:
        with_sound = [i for i, s in enumerate(every) if s.sound]
        clips = [decode_audio(every[i].sound, RATE, name=every[i].key) for i in with_sound]
        vectors[with_sound, 2] = enc.embed_audio(clips)
        present[with_sound, 2] = True
    labels = np.array([classes.index(s.key.split("/")[0]) for s in every])
    held_out = np.array([in_split(s.key, "test") for s in every])
    return Examples(vectors, present, labels, classes, parts), held_out


def accuracy(clf, ex: Examples) -> float:
    return float((clf.predict_proba(ex.vectors, ex.present).argmax(1) == ex.labels).mean())


def probe_accuracy(train: Examples, test: Examples, seed: int) -> float:
    """A linear probe on one part, over the categories that part has training examples of (a
    test example of another category counts as wrong)."""
    seen = np.unique(train.labels)
    remap = {int(c): i for i, c in enumerate(seen)}
    sub = Examples(train.vectors, train.present, np.array([remap[int(y)] for y in train.labels]),
                   [train.classes[c] for c in seen], train.modalities)  # fmt: skip
    probe = fit(sub, "linear", seed=seed, epochs=EPOCHS)
    pred = seen[probe.predict_proba(test.vectors, test.present).argmax(1)]
    return float((pred == test.labels).mean())


def without(ex: Examples, part: str) -> Examples:
    present = ex.present.copy()
    present[:, ex.modalities.index(part)] = False
    keep = present.any(axis=1)
    return Examples(ex.vectors[keep], present[keep], ex.labels[keep], ex.classes, ex.modalities)


@suite("fusion-tuxpaint")
def fusion_tuxpaint(enc: Encoder, seed: int = 0, **_) -> dict:
    ex, held_out = stamp_examples(enc)
    train, test = ex.subset(np.flatnonzero(~held_out)), ex.subset(np.flatnonzero(held_out))
    out: dict = {"n_train": len(train.labels), "n_test": len(test.labels),
                 "n_classes": len(ex.classes), "parts": ", ".join(ex.modalities)}  # fmt: skip
    words = [WORDS.get(c, c) for c in ex.classes]
    zs = test.vectors[:, 1] @ class_vectors(enc, words, EVAL_TEMPLATES).T
    out["zero_shot_image_top1"] = float((zs.argmax(1) == test.labels).mean())
    for part in ex.modalities:
        out[f"probe_{part}_top1"] = probe_accuracy(train.only(part), test.only(part), seed)
    best_single = max(out[f"probe_{p}_top1"] for p in ex.modalities)
    for kind in FUSIONS:
        clf = fit(train, kind, seed=seed, epochs=EPOCHS)
        out[f"{kind}_top1"] = accuracy(clf, test)
        out[f"{kind}_no_image_top1"] = accuracy(clf, without(test, "image"))
        out[f"{kind}_no_text_top1"] = accuracy(clf, without(test, "text"))
        logits = clf.logits(test.vectors, test.present)
        out[f"{kind}_ece_before"] = ece(softmax(logits), test.labels)
        scaled = softmax(logits / clf.temperature)
        out[f"{kind}_ece_after"] = ece(scaled, test.labels)
        out[f"{kind}_ece_floor"] = ece_floor(scaled)
        out[f"baseline:{kind}_top1"] = best_single  # the best single part, probed
    counts = np.bincount(test.labels, minlength=len(ex.classes))
    out["chance@1"] = float(counts.max() / counts.sum())  # always the most common category
    return out


@suite("fusion-fashion")
def fusion_fashion(enc: Encoder, limit: int | None = None, seed: int = 0, **_) -> dict:
    grey, labels = fashion_mnist("train")
    rng = np.random.default_rng(seed)
    pick = np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), 16, replace=False) for c in range(10)]
    )
    train_v = enc.embed_images(images(grey[pick]))
    probe = fit(image_examples(train_v, labels[pick]), "linear", seed=seed, epochs=EPOCHS,
                val_fraction=0.0, calibrate=False)  # fmt: skip
    n = limit or 2000
    test_grey, test_labels = fashion_mnist("test")
    test_v = enc.embed_images(images(test_grey[: 3 * n]))
    test_v, pool_v, test_labels, pool_labels = (
        test_v[:n],
        test_v[n:],
        test_labels[:n],
        test_labels[n : 3 * n],
    )
    p = probe.predict_proba(test_v[:, None], np.ones((n, 1), bool))
    zs = test_v @ class_vectors(enc, FASHION_CLASSES, EVAL_TEMPLATES).T
    zero_shot = float((zs.argmax(1) == test_labels).mean())
    out = {
        "probe_16_per_class_top1": float((p.argmax(1) == test_labels).mean()),
        "baseline:probe_16_per_class_top1": zero_shot,
        "zero_shot_top1": zero_shot,
        "n_test": n,
        "n_calibration_train": len(pool_labels),
        "chance@1": 0.1,
    }
    test = image_examples(test_v, test_labels)
    for kind in KINDS:
        clf = fit(image_examples(pool_v, pool_labels), kind, seed=seed, epochs=EPOCHS // 2)
        logits = clf.logits(test.vectors, test.present)
        scaled = softmax(logits / clf.temperature)
        out[f"{kind}_4k_top1"] = float((scaled.argmax(1) == test_labels).mean())
        out[f"{kind}_4k_ece_before"] = ece(softmax(logits), test_labels)
        out[f"{kind}_4k_ece_after"] = ece(scaled, test_labels)
        out[f"{kind}_4k_ece_floor"] = ece_floor(scaled)
        out[f"{kind}_4k_temperature"] = clf.temperature
    return out


def image_examples(vectors: np.ndarray, labels: np.ndarray) -> Examples:
    """Fashion-MNIST images as one-part examples."""
    return Examples(vectors[:, None], np.ones((len(labels), 1), bool), np.asarray(labels),
                    list(FASHION_CLASSES), ("image",))  # fmt: skip


@suite("fusion-head", needs_audio=True)
def fusion_head(enc: Encoder, seed: int = 0, **_) -> dict:
    if AUDIO not in enc.modalities:
        raise ValueError(f"model '{enc.name}' has no audio tower for the fusion-head suite")
    every = stamps()
    text = enc.embed_text([s.caption for s in every])
    image = enc.embed_images([decode_image(s.png) for s in every])
    held_out = np.array([in_split(s.key, "test") for s in every])
    recordings = {
        "foreign": foreign_descriptions,
        "english": lambda s: [f for f in (s.sound, s.description) if f],
    }
    out: dict = {}
    for name, files in recordings.items():
        v, groups = recording_examples(enc, every, text, image, files)
        out |= head_figures(name, v, groups, held_out[groups], seed)
    return out


def recording_examples(enc: Encoder, every: list, text: np.ndarray, image: np.ndarray,
                       files) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """One example (caption, picture, recording) per recording of a stamp, and its stamp."""
    from encoders.audio import decode_audio

    pairs = [(i, f) for i, s in enumerate(every) for f in files(s)]
    groups = np.array([i for i, _ in pairs], int)
    sound = np.zeros((len(pairs), enc.dim), np.float32)
    for at in range(0, len(pairs), 256):
        chunk = pairs[at : at + 256]
        sound[at : at + len(chunk)] = enc.embed_audio(
            [decode_audio(f, RATE, name=every[i].key) for i, f in chunk]
        )
    return np.stack([text[groups], image[groups], sound], axis=1), groups


def head_figures(name: str, v: np.ndarray, groups: np.ndarray, test: np.ndarray,
                 seed: int) -> dict:  # fmt: skip
    """Leave-one-out recall@1 on the test examples, the head's beside equal weights'."""
    present = np.ones(v.shape[:2], bool)
    head = train_head(v[~test], present[~test], ("text", "image", "audio"), groups[~test],
                      HeadConfig(seed=seed))  # fmt: skip
    tv, tp, tg = v[test], present[test], groups[test]
    equal = leave_one_out_recall(equal_weights, tv, tp, tg)
    learned = leave_one_out_recall(head.apply, tv, tp, tg)
    two = leave_one_out_recall(equal_weights, tv[:, :2], tp[:, :2], tg)  # the recording left out
    out: dict = {f"{name}_train_examples": len(v) - len(tv), f"{name}_test_examples": len(tv),
                 f"{name}_test_stamps": len(np.unique(tg)),
                 f"{name}_kept_epoch": head.info["best_epoch"]}  # fmt: skip
    for m, part in enumerate(("caption", "picture", "recording")):
        out[f"{name}_{part}@1"] = learned[m]
        out[f"baseline:{name}_{part}@1"] = equal[m]
    out[f"{name}_mean@1"], out[f"baseline:{name}_mean@1"] = learned["mean"], equal["mean"]
    out[f"{name}_caption_from_picture@1"] = two[0]
    out[f"{name}_picture_from_caption@1"] = two[1]
    weights = head.part_weights(tv, tp).mean(axis=0)
    for m, part in enumerate(("caption", "picture", "recording")):
        out[f"{name}_weight_{part}"] = float(weights[m])
    out[f"{name}_chance@1"] = 1 / len(np.unique(tg))
    return out
