"""The captioning suite of `jointspace eval`: the model's captioner on held-out data, in one run.

- BLEU-4 and CIDEr (pycocoevalcap's scorers; captions lower-cased and split into words) of the
  captions of held-out pictures (tinted Fashion-MNIST test images, Tux Paint stamps and emoji of
  the test split) against their reference captions (for a garment: every wording of its item in
  its colour), beside the retrieval baseline: the training caption nearest to the picture in the
  joint space.
- On tinted Fashion-MNIST test images: the share of captions that name the right item (any of
  its synonyms, and no other item) and the right colour, beside chance (1/10, 1/9).
- The same scores for held-out Tux Paint sounds through the audio tower (reported, no target).

Imports the encoders, generation and the training data, nothing of the service or the index.
"""

from __future__ import annotations

import re

import numpy as np

from encoders.base import AUDIO, Encoder
from generation.captioner import Captioner, captioner_dir, load_captioner
from housedata.sets import COLOURS, FASHION_SYNONYMS, NotoEmoji, in_split
from training.captioner.data import SOURCES, build, sentence
from training.suites import suite

MAX_TOKENS = 20


def in_chunks(captioner: Captioner, vectors: np.ndarray, size: int = 64) -> list[str]:
    """Greedy captions, decoded `size` at a time (bounded memory)."""
    out: list[str] = []
    for at in range(0, len(vectors), size):
        out += captioner.caption(vectors[at : at + size], max_tokens=MAX_TOKENS)
    return out


def words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", text.lower()))


def scores(refs: list[list[str]], hyps: list[str]) -> dict:
    """BLEU-1, BLEU-4 and CIDEr of hypotheses against their references (BLEU-4 needs four-word
    captions: most garment captions have three or four words)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    gts = {i: [words(r) for r in rs] for i, rs in enumerate(refs)}
    res = {i: [words(h) or "empty"] for i, h in enumerate(hyps)}
    bleu = Bleu(4).compute_score(gts, res, verbose=0)[0]
    cider = Cider().compute_score(gts, res)[0]
    return {"bleu1": float(bleu[0]), "bleu4": float(bleu[3]), "cider": float(cider)}


def prefixed(prefix: str, metrics: dict) -> dict:
    return {prefix + k: v for k, v in metrics.items()}


def named_items(caption: str) -> set[int]:
    """The Fashion-MNIST items a caption names: longest wordings first, so that 't-shirt' is not
    also read as 'shirt'."""
    text, found = f" {words(caption)} ", set()
    names = sorted(
        ((n, i) for i, ns in enumerate(FASHION_SYNONYMS) for n in ns), key=lambda x: -len(x[0])
    )
    for name, item in names:
        if f" {name} " in text:
            found.add(item)
            text = text.replace(f" {name} ", " ")
    return found


def named_colour(caption: str) -> set[str]:
    found = set(words(caption).split())
    return {c for c in COLOURS if c in found}


def train_captions(seed: int = 0) -> list[str]:
    """Every caption the captioner trains on, without rendering a picture: each item wording in
    each colour, and the stamps' and emoji names of the training split."""
    from training.audio.data import stamps

    out = {sentence(f"{c} {n}") for c in COLOURS for ns in FASHION_SYNONYMS for n in ns}
    out |= {
        sentence(s.caption) for s in stamps() if in_split(s.key, "train") and sentence(s.caption)
    }
    out |= {sentence(p) for p in _emoji_names("train")}
    return sorted(out)


def _emoji_names(split: str) -> list[str]:
    import unicodedata

    return [unicodedata.name(ch).lower() for ch in NotoEmoji(split).chars]


def _has_captioner(enc: Encoder) -> bool:
    return captioner_dir(enc) is not None


@suite("captioning", available=_has_captioner)
def captioning_suite(enc: Encoder, **kw) -> dict:
    """The captioning suite with the model's own captioner."""
    folder = captioner_dir(enc)
    if folder is None:
        raise ValueError(f"model '{enc.name}' has no captioner for the captioning suite")
    return captioning(enc, load_captioner(folder), **kw)


def captioning(enc: Encoder, captioner: Captioner, limit: int | None = None, seed: int = 0) -> dict:
    n = limit or 1000
    held = build(enc, "test", n_fashion=n, seed=seed + 1, sources=SOURCES)
    bank = train_captions(seed)
    bank_v = enc.embed_text(bank)
    refs = [_references(c, s) for c, s in zip(held.captions, held.sources, strict=True)]
    hyps = in_chunks(captioner, held.images)
    nearest = [bank[i] for i in (held.images @ bank_v.T).argmax(1)]
    out: dict = {"n_pictures": len(hyps), "n_fashion": held.sources.count("fashion"),
                 "n_train_captions": len(bank)}  # fmt: skip
    out |= scores(refs, hyps) | prefixed("baseline:", scores(refs, nearest))
    garments = [i for i, s in enumerate(held.sources) if s == "fashion"]
    truth = [held.captions[i] for i in garments]  # made from the item's label and its tint
    for name, caps in (("", hyps), ("baseline:", nearest)):
        said = [caps[i] for i in garments]
        out[f"{name}fashion_item_top1"] = float(
            np.mean([named_items(c) == named_items(t) for c, t in zip(said, truth, strict=True)])
        )
        out[f"{name}fashion_colour_top1"] = float(
            np.mean([named_colour(c) == named_colour(t) for c, t in zip(said, truth, strict=True)])
        )
    out["chance_item@1"], out["chance_colour@1"] = 0.1, 1 / len(COLOURS)
    if AUDIO in enc.modalities:
        out |= _sounds(enc, captioner, bank, bank_v)
    out["examples"] = [
        f"{c} -> {h}"
        for c, h in list(zip(held.captions, hyps, strict=True))[:: max(1, len(hyps) // 12)]
    ]
    return out


def _references(caption: str, source: str) -> list[str]:
    """A garment's references are every wording of its item in its colour."""
    if source != "fashion":
        return [caption]
    return [
        sentence(f"{colour} {name}")
        for colour in named_colour(caption)
        for item in named_items(caption)
        for name in FASHION_SYNONYMS[item]
    ] or [caption]


def _sounds(enc: Encoder, captioner: Captioner, bank: list[str], bank_v: np.ndarray) -> dict:
    from encoders.audio import decode_audio
    from training.audio.data import RATE, stamps

    held = [s for s in stamps() if s.sound and in_split(s.key, "test") and sentence(s.caption)]
    if not held:
        return {}
    vecs = enc.embed_audio([decode_audio(s.sound, RATE, name=s.key) for s in held])
    refs = [[sentence(s.caption)] for s in held]
    hyps = in_chunks(captioner, vecs)
    nearest = [bank[i] for i in (vecs @ bank_v.T).argmax(1)]
    out = {"n_sounds": len(held)}
    out |= prefixed("sounds_", scores(refs, hyps))
    out |= prefixed("baseline:sounds_", scores(refs, nearest))
    out["sound_examples"] = [f"{r[0]} -> {h}" for r, h in zip(refs, hyps, strict=True)]
    return out
