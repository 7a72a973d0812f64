"""The keyword side of a FAISS collection: the text each item puts in the store's FTS5 index
(its text input and the metadata fields named in `text_fields`, index/keywords.py), BM25 keyword
search over that index, and the fusion of a vector search with it (index/hybrid.py), the searches
under the collection's read lock.

A mixin for index.collection.Collection, which provides `store`, `metric`, `text_fields`, `_lock`,
`_vector`, `_rescore_n` and the checks. Must not import index.collection (which builds on it),
torch or anything of HTTP; knows nothing of FAISS, whose side the collection's `_vector` searches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from index.checks import Hit
from index.errors import CollectionError, KeywordQueryError
from index.exact import score
from index.filters import compile_filter
from index.hybrid import FusedHit, fuse
from index.keywords import fts_query, indexed_text


class KeywordSearch:
    def _texts(self, texts: Sequence[str | None] | None, metadata: Sequence[dict | None] | None,
               n: int) -> list[str | None]:  # fmt: skip
        """What the keyword index holds for each of n items being written (None: nothing)."""
        texts = [None] * n if texts is None else list(texts)
        if len(texts) != n:
            raise CollectionError(f"{n} ids but {len(texts)} texts")
        metas = [None] * n if metadata is None else list(metadata)
        return [indexed_text(t, m, self.text_fields) for t, m in zip(texts, metas, strict=True)]

    def keyword_search(self, text: str, k: int = 10, filter: dict | None = None) -> list[Hit]:
        """The k items whose indexed text best matches `text` by BM25 (index/keywords.py says
        how a query reads), best first; a hit's score is its BM25 score (higher is better)."""
        self._check_open()
        self._check_k(k)
        match = fts_query(text)
        where = compile_filter(filter) if filter else None
        with self._lock.read():
            return self._keyword(text, match, k, where)

    def _keyword(self, text: str, match: str, k: int, where) -> list[Hit]:
        try:
            rows = self.store.keyword(match, k, *(where or (None, [])))
        except KeywordQueryError as e:
            raise KeywordQueryError(
                f"keyword query {text!r} is not valid FTS5 query syntax ({e}): leave out the "
                'operators to match plain words, or quote a word with punctuation ("SKU-4411")'
            ) from None
        found = self.store.describe([label for label, _ in rows])
        return [Hit(found[x][0], s, found[x][1]) for x, s in rows if x in found]

    def hybrid_search(
        self, query: np.ndarray, text: str, k: int = 10, filter: dict | None = None, *,
        fusion: str = "weighted", alpha: float = 0.5, k_each: int = 100,
        exact_rerank: bool = False, rescore: int | None = None, nprobe: int = 32, ef: int = 64,
    ) -> list[FusedHit]:  # fmt: skip
        """The best k of a vector search for `query` and a keyword search for `text`, each of
        k_each hits under the same filter and the same read view, every item of the union
        scored on both signals and fused (index/hybrid.py)."""
        self._check_open()
        self._check_k(k)
        self._check_k(k_each)
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 <= alpha <= 1:
            raise CollectionError(f"alpha must be a number from 0 to 1, not {alpha!r}")
        q = self._check_queries(query)[:1]
        match = fts_query(text)
        where = compile_filter(filter) if filter else None
        n = self._rescore_n(k_each, exact_rerank, rescore)
        with self._lock.read():
            vec = self._vector(q, k_each, where, n, nprobe, ef)[0]
            kw = self._keyword(text, match, k_each, where)
            cands = self._both_scores(q, match, vec, kw)
        return fuse(cands, k, fusion, float(alpha), self.metric)

    def _both_scores(self, q: np.ndarray, match: str, vec: list[Hit],
                     kw: list[Hit]) -> list[FusedHit]:  # fmt: skip
        """The union of both sides' hits, each with its exact vector score and its BM25 score
        (None without a match); the caller holds the read lock."""
        cands = {h.id: FusedHit(h.id, 0.0, h.metadata, ["vector"]) for h in vec}
        for h in kw:
            cands.setdefault(h.id, FusedHit(h.id, 0.0, h.metadata)).found_by.append("keyword")
        if not cands:
            return []
        found = self.store.get(list(cands))
        labels = [found[i][0] for i in cands]
        exact = score(q, np.stack([found[i][1] for i in cands]), self.metric)[0]
        marks = ",".join("?" * len(labels))
        bm25 = dict(self.store.keyword(match, len(labels), f"label IN ({marks})", labels))
        for c, label, s in zip(cands.values(), labels, exact, strict=True):
            c.vector_score, c.bm25 = float(s), bm25.get(label)
        return list(cands.values())
