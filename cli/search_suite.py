"""The `hybrid-search` eval suite: Recall@10 of vector, keyword and hybrid search on a catalog made
offline, per query group. It lives beside the CLI because it needs both the encoders and the
collections (training may not load the index); `jointspace eval` imports it so that it registers.

The catalog: Fashion-MNIST test images, each tinted one of the house colours, with metadata
`title` ("<Brand> <class>", the brand an invented word shared by a few items) and `sku` (a unique
"SKU-<n>"), both in the collection's `text_fields`; the colour is only in the picture.
Query groups (a query's relevant items, R):
- code: "<class> SKU-<n>": R = that one item;
- rare-word: "<Brand> <class>": R = the items of that brand and class;
- visual: "a <colour> <synonym>" in words the titles never use ("trainer", "purse"; classes whose
  every synonym shares a word with the title, such as sandal/sandals, are left out): R = the
  items of that colour and class;
- visual-shared-words: "a <colour> <class>": as visual, but the class name is in every title of
  that class, so the keyword side ranks all of them, whatever their colour.
Recall@10 of one query = |top 10 and R| / min(10, |R|), averaged over the group's queries.
`hybrid` is the search's default (weighted fusion, alpha 0.5, k_each 100), `hybrid-rrf` the same
with rrf fusion. The targets: hybrid >= the better of vector and keyword on every group, and
>= vector + 0.1 on the keyword groups (code, rare-word).
"""

from __future__ import annotations

import tempfile

import numpy as np

from encoders.base import Encoder
from training.suites import suite

MODES = ("vector", "keyword", "hybrid", "hybrid-rrf")
GROUP_QUERIES = 100
SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]


def brand_names(n: int, rng: np.random.Generator) -> list[str]:
    """n distinct invented words of three syllables ("Kelvaro")."""
    out: set[str] = set()
    while len(out) < n:
        out.add("".join(rng.choice(SYLLABLES, 3)).capitalize())
    return sorted(out)


def catalog(limit: int, seed: int) -> dict:
    """The items: images, labels, colours, brands and metadata."""
    from housedata.sets import COLOURS, FASHION_CLASSES, fashion_mnist

    grey, labels = fashion_mnist("test")
    grey, labels = grey[:limit], labels[:limit]
    rng = np.random.default_rng([seed, 38])
    colours = rng.integers(len(COLOURS), size=len(labels))
    brands = brand_names(max(10, len(labels) // 13), rng)
    brand = rng.integers(len(brands), size=len(labels))
    skus = rng.choice(np.arange(1000, 100_000), size=len(labels), replace=False)
    metas = [{"title": f"{brands[b]} {FASHION_CLASSES[y]}", "sku": f"SKU-{s}"}
             for b, y, s in zip(brand, labels, skus, strict=True)]  # fmt: skip
    return {"grey": grey, "labels": labels, "colours": colours, "brand": brand,
            "brands": brands, "metas": metas}  # fmt: skip


def _visual_words(i: int) -> list[str]:
    """Synonyms of class i that share no word with its name."""
    from housedata.sets import FASHION_CLASSES, FASHION_SYNONYMS

    name = set(FASHION_CLASSES[i].replace("-", " ").split())
    return [s for s in FASHION_SYNONYMS[i][1:]
            if not set(s.replace("-", " ").split()) & name
            and not any(s.startswith(w) or w.startswith(s) for w in name)]  # fmt: skip


def queries(cat: dict, seed: int) -> dict[str, list[tuple[str, set[int]]]]:
    """group -> [(query text, relevant item indexes)]."""
    from housedata.sets import COLOURS, FASHION_CLASSES

    rng = np.random.default_rng([seed, 39])
    labels, colours, brand, metas = cat["labels"], cat["colours"], cat["brand"], cat["metas"]
    n = len(labels)
    picks = rng.choice(n, size=min(GROUP_QUERIES, n), replace=False)
    code = [(f"{FASHION_CLASSES[labels[j]]} {metas[j]['sku']}", {int(j)}) for j in picks]
    picks = rng.choice(n, size=min(GROUP_QUERIES, n), replace=False)
    rare = [(f"{cat['brands'][brand[j]]} {FASHION_CLASSES[labels[j]]}",
             set(np.flatnonzero((brand == brand[j]) & (labels == labels[j])).tolist()))
            for j in picks]  # fmt: skip
    names = list(COLOURS)
    visual, shared = [], []
    for c, colour in enumerate(names):
        for i, cls in enumerate(FASHION_CLASSES):
            rel = set(np.flatnonzero((colours == c) & (labels == i)).tolist())
            if not rel:
                continue
            shared.append((f"a {colour} {cls}", rel))
            words = _visual_words(i)
            if words:
                visual.append((f"a {colour} {words[int(rng.integers(len(words)))]}", rel))
    return {"code": code, "rare-word": rare, "visual": visual, "visual-shared-words": shared}


def recall_at_10(found: list[int], relevant: set[int]) -> float:
    return len(set(found[:10]) & relevant) / min(10, len(relevant))


@suite("hybrid-search")
def hybrid_search(enc: Encoder, limit: int | None = None, seed: int = 0, **_) -> dict:
    """Recall@10 of vector, keyword and hybrid search per query group, with the targets."""
    from PIL import Image

    from housedata.sets import COLOURS, tint
    from index import Catalog

    cat = catalog(limit or 2000, seed)
    names = list(COLOURS)
    imgs = [Image.fromarray(tint(g, names[c]))
            for g, c in zip(cat["grey"], cat["colours"], strict=True)]  # fmt: skip
    vecs = enc.embed_images(imgs)
    groups = queries(cat, seed)
    out: dict = {"catalog": len(vecs)}
    with tempfile.TemporaryDirectory() as tmp:
        catalog_ = Catalog(tmp, auto_maintain=False, search_device="cpu")
        try:
            col = catalog_.create("eval", enc.dim, text_fields=["title", "sku"])
            col.upsert([str(j) for j in range(len(vecs))], vecs, cat["metas"])
            for group, qs in groups.items():
                out |= _group(col, enc, group, qs)
        finally:
            catalog_.close()
    return out | _targets(out, list(groups))


def _group(col, enc: Encoder, group: str, qs: list[tuple[str, set[int]]]) -> dict:
    qv = enc.embed_text([q for q, _ in qs])
    scores: dict[str, list[float]] = {m: [] for m in MODES}
    for (text, rel), v in zip(qs, qv, strict=True):
        found = {
            "vector": col.search(v, 10)[0],
            "keyword": col.keyword_search(text, 10),
            "hybrid": col.hybrid_search(v, text, 10),
            "hybrid-rrf": col.hybrid_search(v, text, 10, fusion="rrf"),
        }
        for mode, hits in found.items():
            scores[mode].append(recall_at_10([int(h.id) for h in hits], rel))
    res = {f"{group}_{m}@10": float(np.mean(s)) for m, s in scores.items()}
    return res | {f"{group}_queries": len(qs)}


def _targets(res: dict, groups: list[str]) -> dict:
    """The worst margin of hybrid over the better side on any group (>= 0: the first target
    met), and of hybrid over vector on the keyword groups (>= 0.1: the second)."""
    best = min(
        res[f"{g}_hybrid@10"] - max(res[f"{g}_vector@10"], res[f"{g}_keyword@10"]) for g in groups
    )
    lift = min(res[f"{g}_hybrid@10"] - res[f"{g}_vector@10"] for g in ("code", "rare-word"))
    return {"margin_over_best": float(best), "margin_over_vector_keyword_groups": float(lift)}
