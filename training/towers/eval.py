"""The house towers' eval suites, for any encoder on the held-out splits: zero-shot
classification and retrieval.

Works through the `Encoder` interface only, so every model spec (house, open_clip, hf) is measured
the same way. Suites (registered with training.suites):
- fashion-zero-shot: Fashion-MNIST test split (10k), top-1 with an ensemble of prompt wordings never
  used in training (`EVAL_TEMPLATES`);
- fashion-tinted: the test split, each image tinted with a colour fixed by the seed; for every
  "a <colour> <item>" query, is the top image of the right colour and item (Recall@1), and of the
  right colour, and of the right item, each measured on its own;
- fashion-composed: "like this but in blue" queries composed with fusion.compose;
- tuxpaint, emoji: held-out captions, text-to-image and image-to-text Recall@1/5/10 against chance;
- digits-zero-shot: the test split of scikit-learn's handwritten digits (a domain the house model
  never saw), top-1 with prompt wordings the fine-tuning captions never use, beside chance.
Imports no other suite module; knows nothing of FAISS or HTTP.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from encoders.base import Encoder
from housedata.sets import (
    COLOURS,
    DIGIT_EVAL_TEMPLATES,
    DIGIT_NAMES,
    EVAL_TEMPLATES,
    FASHION_CLASSES,
    NotoEmoji,
    TuxPaintStamps,
    digits,
    fashion_mnist,
    tint,
)
from training.metrics import class_vectors, images
from training.suites import suite

COMPOSED_TINTS = ["white", "red", "blue", "green", "yellow"]


@suite("fashion-zero-shot")
def fashion_zero_shot(enc: Encoder, limit: int | None = None, **_) -> dict:
    grey, labels = fashion_mnist("test")
    grey, labels = grey[:limit], labels[:limit]
    img = enc.embed_images(images(grey))
    pred = (img @ class_vectors(enc, FASHION_CLASSES, EVAL_TEMPLATES).T).argmax(1)
    per_class = {c: float((pred[labels == i] == i).mean()) for i, c in enumerate(FASHION_CLASSES)}
    return {"top1": float((pred == labels).mean()), "n": len(labels), "per_class": per_class}


@suite("fashion-tinted")
def fashion_tinted(enc: Encoder, limit: int | None = None, seed: int = 0, **_) -> dict:
    grey, labels = fashion_mnist("test")
    grey, labels = grey[:limit], labels[:limit]
    names = list(COLOURS)
    colour = np.random.default_rng([seed, 5]).integers(len(names), size=len(labels))
    imgs = [Image.fromarray(tint(g, names[c])) for g, c in zip(grey, colour, strict=True)]
    gallery = enc.embed_images(imgs)
    queries = [(c, i) for c in range(len(names)) for i in range(len(FASHION_CLASSES))]
    q = enc.embed_text([f"a {names[c]} {FASHION_CLASSES[i]}" for c, i in queries])
    top = np.argsort(-(q @ gallery.T), axis=1)[:, :10]
    both, col, item, r5, r10 = [], [], [], [], []
    for (c, i), row in zip(queries, top, strict=True):
        hit = (colour[row] == c) & (labels[row] == i)
        both.append(hit[0])
        col.append(colour[row[0]] == c)
        item.append(labels[row[0]] == i)
        r5.append(hit[:5].any())
        r10.append(hit[:10].any())
    return {
        "recall@1": float(np.mean(both)),
        "recall@5": float(np.mean(r5)),
        "recall@10": float(np.mean(r10)),
        "colour@1": float(np.mean(col)),
        "item@1": float(np.mean(item)),
        "chance@1": 1 / len(queries),
        "queries": len(queries),
        "gallery": len(labels),
    }


@suite("fashion-composed")
def fashion_composed(enc: Encoder, limit: int | None = None, seed: int = 0, **_) -> dict:
    """ "Like this but in blue": the gallery holds test images in five tints; the query is one of
    them (colour A) moved by the text of colour B; a hit is the same image in colour B at rank 1
    (the query image itself left out). Measured for a few term weights and two phrasings."""
    from fusion import compose, parse_modification

    grey, _ = fashion_mnist("test")
    n = min(limit or 200, 200)
    pick = np.random.default_rng([seed, 9]).choice(len(grey), size=n, replace=False)
    tints = COMPOSED_TINTS
    gallery = enc.embed_images([Image.fromarray(tint(grey[i], c)) for i in pick for c in tints])
    gid = np.array([(j, c) for j in range(n) for c in range(len(tints))])  # (image, tint) per row
    rng = np.random.default_rng([seed, 10])
    out: dict = {"images": n, "queries": 0}
    phrasings = {"plain": "{b}", "instead": "in {b} instead of {a}"}
    for pname, phr in phrasings.items():
        for w in (0.5, 0.8, 1.2):
            hits = []
            for j in range(n):
                a, b = rng.choice(len(tints), size=2, replace=False)
                terms = parse_modification(phr.format(a=tints[a], b=tints[b]), weight=w)
                tv = enc.embed_text([t.text for t in terms])
                q = compose(gallery[j * len(tints) + a], tv, [t.weight for t in terms])
                s = gallery @ q
                s[j * len(tints) + a] = -np.inf
                top = gid[int(np.argmax(s))]
                hits.append(top[0] == j and top[1] == b)
            out[f"{pname}@w{w}"] = float(np.mean(hits))
            out["queries"] += n
    return out


def retrieval(images: list[Image.Image], captions: list[str], enc: Encoder) -> dict:
    """Recall@k both ways; items sharing a caption count as relevant to each other."""
    img = enc.embed_images(images)
    uniq = list(dict.fromkeys(captions))
    txt = enc.embed_text(uniq)
    cap_id = np.array([uniq.index(c) for c in captions])
    t2i = np.argsort(-(txt @ img.T), axis=1)  # per unique caption, images
    i2t = np.argsort(-(img @ txt.T), axis=1)  # per image, unique captions
    out = {"n_images": len(images), "n_captions": len(uniq)}
    for k in (1, 5, 10):
        out[f"t2i_recall@{k}"] = float(
            np.mean([(cap_id[t2i[j, :k]] == j).any() for j in range(len(uniq))])
        )
        out[f"i2t_recall@{k}"] = float(
            np.mean([(i2t[j, :k] == cap_id[j]).any() for j in range(len(images))])
        )
        out[f"chance@{k}"] = min(1.0, k / len(images))
    return out


@suite("tuxpaint")
def tuxpaint(enc: Encoder, seed: int = 0, **_) -> dict:
    ds = TuxPaintStamps("test", seed)
    pairs = [ds[i] for i in range(len(ds))]
    return retrieval([p.image for p in pairs], [p.caption for p in pairs], enc)


@suite("emoji")
def emoji(enc: Encoder, seed: int = 0, **_) -> dict:
    ds = NotoEmoji("test", seed)
    pairs = [ds[i] for i in range(len(ds))]
    return retrieval([p.image for p in pairs], [p.caption for p in pairs], enc)


def _has_sklearn(_: Encoder) -> bool:
    import importlib.util

    return importlib.util.find_spec("sklearn") is not None


@suite("digits-zero-shot", available=_has_sklearn)
def digits_zero_shot(enc: Encoder, limit: int | None = None, seed: int = 0, **_) -> dict:
    grey, labels = digits("test", seed)
    grey, labels = grey[:limit], labels[:limit]
    img = enc.embed_images(images(grey))
    pred = (img @ class_vectors(enc, DIGIT_NAMES, DIGIT_EVAL_TEMPLATES).T).argmax(1)
    per_class = {c: float((pred[labels == i] == i).mean()) for i, c in enumerate(DIGIT_NAMES)}
    return {"top1": float((pred == labels).mean()), "chance@1": 1 / len(DIGIT_NAMES),
            "n": len(labels), "per_class": per_class}  # fmt: skip
