"""Evaluation of any encoder on the held-out splits: zero-shot classification and retrieval.

Works through the `Encoder` interface only, so every model spec (house, open_clip, hf) is measured
the same way. Suites:
- fashion-zero-shot: Fashion-MNIST test split (10k), top-1 with an ensemble of prompt wordings never
  used in training (`EVAL_TEMPLATES`);
- fashion-tinted: the test split, each image tinted with a colour fixed by the seed; for every
  "a <colour> <item>" query, is the top image of the right colour and item (Recall@1), and of the
  right colour, and of the right item, each measured on its own;
- tuxpaint, emoji: held-out captions, text-to-image and image-to-text Recall@1/5/10 against chance;
- audio-speech, audio-sounds (models with an audio tower): training.audio_eval;
- fusion-tuxpaint, fusion-fashion: trained fusion classifiers, training.fusion_eval;
- video-order, video-moments (models with an image tower): training.video_eval.
Knows nothing of FAISS or HTTP.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from encoders.base import AUDIO, Encoder
from fusion import class_matrix
from training.data import (
    COLOURS,
    EVAL_TEMPLATES,
    FASHION_CLASSES,
    NotoEmoji,
    TuxPaintStamps,
    fashion_mnist,
    tint,
)

IMAGE_SUITES = ("fashion-zero-shot", "fashion-tinted", "fashion-composed", "tuxpaint", "emoji")
FUSION_SUITES = ("fusion-tuxpaint", "fusion-fashion")
VIDEO_SUITES = ("video-order", "video-moments")
AUDIO_SUITES = ("audio-speech", "audio-sounds", "fusion-head")  # need an audio tower
SUITES = (*IMAGE_SUITES, "audio-speech", "audio-sounds", *FUSION_SUITES, "fusion-head",
          *VIDEO_SUITES, "captioning", "generation")  # fmt: skip
COMPOSED_TINTS = ["white", "red", "blue", "green", "yellow"]


def _images(arr: np.ndarray) -> list[Image.Image]:
    return [Image.fromarray(a).convert("RGB") for a in arr]


def class_vectors(enc: Encoder, classes: list[str], templates: list[str]) -> np.ndarray:
    """One unit vector per class: the mean of its prompts' vectors (a prompt ensemble)."""
    return class_matrix(
        enc.embed_text([t.format(c) for c in classes for t in templates]), len(classes)
    )


def fashion_zero_shot(enc: Encoder, limit: int | None = None, **_) -> dict:
    grey, labels = fashion_mnist("test")
    grey, labels = grey[:limit], labels[:limit]
    img = enc.embed_images(_images(grey))
    pred = (img @ class_vectors(enc, FASHION_CLASSES, EVAL_TEMPLATES).T).argmax(1)
    per_class = {c: float((pred[labels == i] == i).mean()) for i, c in enumerate(FASHION_CLASSES)}
    return {"top1": float((pred == labels).mean()), "n": len(labels), "per_class": per_class}


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


def tuxpaint(enc: Encoder, seed: int = 0, **_) -> dict:
    ds = TuxPaintStamps("test", seed)
    pairs = [ds[i] for i in range(len(ds))]
    return retrieval([p.image for p in pairs], [p.caption for p in pairs], enc)


def emoji(enc: Encoder, seed: int = 0, **_) -> dict:
    ds = NotoEmoji("test", seed)
    pairs = [ds[i] for i in range(len(ds))]
    return retrieval([p.image for p in pairs], [p.caption for p in pairs], enc)


def _audio(name: str) -> Callable[..., dict]:
    def run(enc: Encoder, **kw) -> dict:
        from training import audio_eval

        return getattr(audio_eval, name)(enc, **kw)

    return run


def _fusion(name: str) -> Callable[..., dict]:
    def run(enc: Encoder, **kw) -> dict:
        from training import fusion_eval

        return getattr(fusion_eval, name)(enc, **kw)

    return run


def _video(name: str) -> Callable[..., dict]:
    def run(enc: Encoder, **kw) -> dict:
        from training import video_eval

        return getattr(video_eval, name)(enc, **kw)

    return run


def captioning(enc: Encoder, **kw) -> dict:
    from generation.captioner import captioner_dir, load_captioner
    from training.caption_eval import captioning as run

    folder = captioner_dir(enc)
    if folder is None:
        raise ValueError(f"model '{enc.name}' has no captioner for the captioning suite")
    return run(enc, load_captioner(folder), **kw)


def generation(enc: Encoder, **kw) -> dict:
    from training.generation_eval import generation as run

    return run(enc, **kw)


RUNNERS: dict[str, Callable[..., dict]] = {
    "fashion-zero-shot": fashion_zero_shot,
    "fashion-tinted": fashion_tinted,
    "fashion-composed": fashion_composed,
    "tuxpaint": tuxpaint,
    "emoji": emoji,
    "audio-speech": _audio("audio_speech"),
    "audio-sounds": _audio("audio_sounds"),
    "fusion-tuxpaint": _fusion("fusion_tuxpaint"),
    "fusion-fashion": _fusion("fusion_fashion"),
    "fusion-head": _fusion("fusion_head"),
    "video-order": _video("video_order"),
    "video-moments": _video("video_moments"),
    "captioning": captioning,
    "generation": generation,
}


def metric_rows(result: dict) -> list[tuple[str, str, float, float | None, float | None]]:
    """(suite, metric, value, chance or None, baseline or None) for every float metric of an
    `evaluate` result. A metric's chance is the suite's `chance_<tag>@k` where the metric's name
    has that tag (image, item, colour, interval), or `<prefix>_chance@k` where the metric is
    named `<prefix>_...`, else `chance@k`; its baseline is
    `baseline:<metric>`."""
    rows = []
    for suite, metrics in result["suites"].items():
        for key, val in metrics.items():
            chance_key = key.startswith(("chance", "baseline:")) or "_chance@" in key
            if chance_key or not isinstance(val, float):
                continue
            k = key.split("@")[-1] if "@" in key else ("1" if key.endswith("top1") else None)
            chance = None
            if k:
                chance = metrics.get(f"chance@{k}")
                for tag in ("image", "item", "colour", "interval"):
                    if tag in key and f"chance_{tag}@{k}" in metrics:
                        chance = metrics[f"chance_{tag}@{k}"]
                own = f"{key.split('_')[0]}_chance@{k}"  # tuxpaint_drawn_caption@1
                chance = metrics.get(own, chance)
            rows.append((suite, key, val, chance, metrics.get(f"baseline:{key}")))
    return rows


def default_suites(enc: Encoder) -> tuple[str, ...]:
    """Every suite the model's towers (and decoders) can run."""
    from generation.captioner import captioner_dir
    from generation.decoder import decoder_dir

    can = {"captioning": captioner_dir(enc) is not None,
           "generation": decoder_dir(enc) is not None,
           **dict.fromkeys(AUDIO_SUITES, AUDIO in enc.modalities)}  # fmt: skip
    return tuple(s for s in SUITES if can.get(s, True))


def evaluate(
    enc: Encoder, suites: tuple[str, ...] | None = None, limit: int | None = None, seed: int = 0
) -> dict:
    suites = suites or default_suites(enc)
    unknown = [s for s in suites if s not in RUNNERS]
    if unknown:
        raise ValueError(f"unknown eval suite(s) {', '.join(unknown)}; known: {', '.join(SUITES)}")
    if AUDIO not in enc.modalities and any(s in AUDIO_SUITES for s in suites):
        raise ValueError(
            f"model '{enc.name}' has no audio tower for the {', '.join(AUDIO_SUITES)} suites"
        )
    return {
        "model": enc.name,
        "seed": seed,
        "suites": {s: RUNNERS[s](enc, limit=limit, seed=seed) for s in suites},
    }
