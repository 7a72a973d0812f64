"""The generation suite: draw held-out prompts with the image decoder, judge the pictures with the
house model itself.

- garments: every item x colour ("a catalogue photo of a red dress.", in wordings never used in
  training) drawn twice (with `limit`: that many of them, once) from the prior's image vector;
  each picture is embedded by the house image tower and classified among the 90 "<colour>
  <item>" classes (prompt ensemble of the held-out wordings): item accuracy, colour accuracy,
  both. Beside them: chance (0.1, 1/9), the baseline of drawing from the prompt's text vector
  itself (no prior), and real test images of the same item and colour through the same
  classifier; and the mean cosine between each picture's vector and its prompt's vector, for
  drawn and for real pictures.
- composed: a red test garment's vector moved by "in blue instead of red" (the search's parser and
  arithmetic) is drawn; share classified as the same item, as blue, and both; with the terms' text
  vectors as search uses them, and with the terms mapped through the prior first.
- stamps and emoji (held-out): is a picture drawn from a caption nearer that caption than the
  other held-out captions (R@1), beside the same for the real pictures: how far the decoder is
  from drawing things other than garments.

Imports encoders, fusion, generation and the training data; nothing of the service or the index.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from encoders.base import Encoder
from fusion import compose, parse_modification
from fusion.classify import class_matrix
from fusion.compose import DEFAULT_WEIGHT
from generation.decoder import (
    DEFAULT_GUIDANCE,
    MODIFICATION_WEIGHT,
    ImageDecoder,
    decoder_dir,
    load_decoder,
    require_decoder,
    sample,
)
from generation.prior import load_prior
from housedata.sets import COLOURS, EVAL_TEMPLATES, FASHION_CLASSES, fashion_mnist, tint
from training.captioner.data import pictures
from training.suites import suite

CHUNK = 64
GUIDANCE_SWEEP = (1.0, 2.0, 3.0)
TERM_WEIGHTS = tuple(sorted({0.3, 0.5, 0.8, MODIFICATION_WEIGHT}))


def draw(dec: ImageDecoder, vectors: np.ndarray, steps: int, guidance: float, seed: int) -> list:
    """Pictures of many vectors, CHUNK at a time (seeded per chunk), as PIL images."""
    out = []
    for i in range(0, len(vectors), CHUNK):
        px = sample(dec, vectors[i : i + CHUNK], steps, guidance, seed + i)
        out += [Image.fromarray(p) for p in px]
    return out


def judge(vectors: np.ndarray, fashion: tuple[list, np.ndarray], want: list) -> dict:
    """Item, colour and both accuracy of pictures (their image vectors) among the (item, colour)
    classes of `fashion_classes`."""
    pairs, classes = fashion
    pred = (vectors @ classes.T).argmax(1)
    got = [pairs[p] for p in pred]
    item = np.mean([g[0] == w[0] for g, w in zip(got, want, strict=True)])
    colour = np.mean([g[1] == w[1] for g, w in zip(got, want, strict=True)])
    both = np.mean([g == w for g, w in zip(got, want, strict=True)])
    return {"item@1": float(item), "colour@1": float(colour), "both@1": float(both)}


def real_garments(pairs: list, per: int, seed: int) -> list:
    """`per` test images of each (item, colour), tinted."""
    grey, labels = fashion_mnist("test")
    rng = np.random.default_rng([seed, 22])
    names = list(COLOURS)
    out = []
    for i, c in pairs:
        for j in rng.choice(np.flatnonzero(labels == i), per, replace=False):
            out.append(Image.fromarray(tint(grey[j], names[c])))
    return out


def fashion_classes(enc: Encoder) -> tuple[list[tuple[int, int]], np.ndarray]:
    """The 90 (item, colour) pairs and their class vectors (held-out wordings' ensemble)."""
    names = list(COLOURS)
    pairs = [(i, c) for i in range(len(FASHION_CLASSES)) for c in range(len(names))]
    words = [f"{names[c]} {FASHION_CLASSES[i]}" for i, c in pairs]
    prompts = [t.format(w) for w in words for t in EVAL_TEMPLATES]
    return pairs, class_matrix(enc.embed_text(prompts), len(words))


def prompts_of(pairs: list, seed: int, limit: int | None) -> tuple[list[int], list[str]]:
    """Which pairs are asked (all, or `limit` drawn by the seed) and a held-out wording each."""
    names = list(COLOURS)
    rng = np.random.default_rng([seed, 21])
    words = [f"{names[c]} {FASHION_CLASSES[i]}" for i, c in pairs]
    prompts = [EVAL_TEMPLATES[rng.integers(len(EVAL_TEMPLATES))].format(w) for w in words]
    asked = sorted(rng.choice(len(pairs), limit, replace=False)) if limit else range(len(pairs))
    return list(asked), [prompts[i] for i in asked]


def garments(enc, dec, prior, fashion, n_per: int, steps: int, guidance: float, seed: int,
             limit: int | None = None) -> dict:  # fmt: skip
    """Every item x colour (or `limit` of them), drawn from the prior's vector, from the text
    vector (baseline) and from a real test image's vector (what the decoder alone keeps)."""
    pairs = fashion[0]
    asked, prompts = prompts_of(pairs, seed, limit)
    tv = np.repeat(enc.embed_text(prompts), n_per, 0)
    want = [pairs[i] for i in asked for _ in range(n_per)]
    real = real_garments([pairs[i] for i in asked], n_per, seed)
    rv = enc.embed_images(real)
    drawn = enc.embed_images(draw(dec, prior.image_vectors(tv), steps, guidance, seed))
    out = judge(drawn, fashion, want)
    got = {"baseline:": enc.embed_images(draw(dec, tv, steps, guidance, seed)),
           "recon_": enc.embed_images(draw(dec, rv, steps, guidance, seed)),
           "real_": rv}  # fmt: skip
    for prefix, vecs in got.items():
        out |= {f"{prefix}{k}": v for k, v in judge(vecs, fashion, want).items()}
    out["cosine_to_prompt"] = float(np.mean(np.sum(drawn * tv, 1)))
    out["real_cosine_to_prompt"] = float(np.mean(np.sum(rv * tv, 1)))
    out |= {"chance_item@1": 1 / len(FASHION_CLASSES), "chance_colour@1": 1 / len(COLOURS),
            "chance@1": 1 / len(pairs), "prompts": len(asked)}  # fmt: skip
    out["pictures"] = len(drawn)
    return out


def guidance_sweep(enc, dec, prior, fashion, steps: int, seed: int,
                   scales=GUIDANCE_SWEEP) -> dict:  # fmt: skip
    """Item and colour of one picture per prompt (prior path) at several guidance scales."""
    pairs = fashion[0]
    asked, prompts = prompts_of(pairs, seed, None)
    v = prior.image_vectors(enc.embed_text(prompts))
    out = {}
    for g in scales:
        drawn = enc.embed_images(draw(dec, v, steps, g, seed))
        got = judge(drawn, fashion, [pairs[i] for i in asked])
        out |= {f"guidance{g:g}_{k}": val for k, val in got.items() if k != "both@1"}
    return out


def composed(enc, dec, prior, fashion, n: int, steps: int, guidance: float, seed: int) -> dict:
    """Red test garments drawn "in blue instead of red": the terms' prior vectors at several
    weights, and their text vectors at search's weight."""
    grey, labels = fashion_mnist("test")
    pick = np.random.default_rng([seed, 23]).choice(len(labels), n, replace=False)
    q = enc.embed_images([Image.fromarray(tint(grey[j], "red")) for j in pick])
    terms = parse_modification("in blue instead of red", weight=1.0)
    tv = enc.embed_text([t.text for t in terms])
    sign = np.array([t.weight for t in terms])
    want = [(int(labels[j]), list(COLOURS).index("blue")) for j in pick]
    runs = [(f"prior_w{w:g}", prior.image_vectors(tv), w) for w in TERM_WEIGHTS]
    runs.append((f"text_w{DEFAULT_WEIGHT:g}", tv, DEFAULT_WEIGHT))
    out = {}
    for name, term_vectors, w in runs:
        vec = np.stack([compose(v, term_vectors, sign * w) for v in q])
        got = judge(enc.embed_images(draw(dec, vec, steps, guidance, seed)), fashion, want)
        out |= {f"composed_{name}_{k}": v for k, v in got.items()}
    out["composed_pictures"] = n
    return out


def others(enc, dec, prior, steps: int, guidance: float, seed: int) -> dict:
    """Held-out stamps and emoji: caption R@1 of drawn pictures against real ones."""
    images, caps, srcs = pictures("test", 0, seed, ("tuxpaint", "emoji"))
    out = {}
    for src in ("tuxpaint", "emoji"):
        idx = [i for i, s in enumerate(srcs) if s == src]
        texts = sorted({caps[i] for i in idx})
        tv = enc.embed_text(texts)
        want = np.array([texts.index(caps[i]) for i in idx])
        drawn = draw(dec, prior.image_vectors(tv[want]), steps, guidance, seed)
        for name, imgs in (("drawn", drawn), ("real", [images[i] for i in idx])):
            hit = (enc.embed_images(imgs) @ tv.T).argmax(1) == want
            out[f"{src}_{name}_caption@1"] = float(hit.mean())
        out[f"{src}_chance@1"] = 1 / len(texts)
    return out


def _has_decoder(enc: Encoder) -> bool:
    return decoder_dir(enc) is not None


@suite("generation", available=_has_decoder)
def generation(enc: Encoder, limit: int | None = None, seed: int = 0, steps: int = 25,
               guidance: float = DEFAULT_GUIDANCE, **_) -> dict:  # fmt: skip
    folder = require_decoder(enc)
    dec, prior = load_decoder(folder), load_prior(folder)
    n_per = 1 if limit else 2
    fashion = fashion_classes(enc)
    out = garments(enc, dec, prior, fashion, n_per, steps, guidance, seed, limit)
    out |= composed(enc, dec, prior, fashion, min(limit or 60, 60), steps, guidance, seed)
    if not limit:
        out |= guidance_sweep(enc, dec, prior, fashion, steps, seed)
        out |= others(enc, dec, prior, steps, guidance, seed)
    out |= {"steps": steps, "guidance": guidance}
    return out
