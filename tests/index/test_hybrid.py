"""The keyword index beside the vectors: written, replaced and deleted with the items; keyword and
hybrid searches under filters; each fusion's arithmetic on a toy example; the refusals."""

from __future__ import annotations

import numpy as np
import pytest

from index import CollectionError, KeywordQueryError, Unsupported
from index.hybrid import FusedHit, fuse
from index.keywords import fts_query, indexed_text


def unit(*rows) -> np.ndarray:
    v = np.array(rows, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def shop(faiss_cat):
    col = faiss_cat.create("shop", 3, text_fields=["brand", "sizes"])
    col.upsert(
        ["boot", "shoe", "hat", "coat"],
        unit([1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0, 1]),
        [{"brand": "Acme", "sizes": [42, 43], "price": 90},
         {"brand": "Zeta", "price": 40},
         {"brand": "Acme", "price": 15},
         None],
        texts=["leather boot SKU-4411", "running shoe", None, "wool coat"],
    )  # fmt: skip
    return col


def ids(hits) -> list[str]:
    return [h.id for h in hits]


def test_indexed_text_and_query_forms():
    meta = {"brand": "Acme", "dims": {"w": 3}, "tags": ["red", 7, True, {"x": 1}], "ok": True}
    got = indexed_text("a boot", meta, ["brand", "dims.w", "tags", "ok", "missing"])
    assert got == "a boot\nAcme\n3\nred\n7"
    assert indexed_text(None, None, ["brand"]) is None
    assert fts_query("red SKU-4411") == '"red" OR "SKU-4411"'
    assert fts_query('say "hi') == 'say "hi'  # syntax: as written
    assert fts_query("boot AND red") == "boot AND red"
    with pytest.raises(CollectionError, match=r"^a keyword query needs at least one word$"):
        fts_query("  ")


def test_keyword_search_reads_text_and_text_fields(shop):
    assert ids(shop.keyword_search("SKU-4411")) == ["boot"]
    assert ids(shop.keyword_search("sku-4411 boots")) == ["boot"]  # case, stemming
    assert ids(shop.keyword_search("acme")) == ["hat", "boot"]  # the shorter text ranks first
    assert ids(shop.keyword_search("43")) == ["boot"]  # a list field's numbers
    assert shop.keyword_search("price") == []  # fields not named are not indexed
    hit = shop.keyword_search("coat")[0]
    assert hit.metadata is None and hit.score > 0


def test_text_follows_replace_and_delete(shop):
    shop.upsert(["boot"], unit([1, 0, 0]), [{"brand": "Nova"}], texts=["suede boot"])
    assert shop.keyword_search("leather") == [] and shop.keyword_search("acme")[0].id == "hat"
    assert ids(shop.keyword_search("suede nova")) == ["boot"]
    shop.upsert(["hat2"], unit([0, 1, 0]), None, remove=["hat"])
    assert ids(shop.keyword_search("acme")) == []
    assert shop.delete(["coat"]) == 1
    assert shop.keyword_search("wool") == []
    rows = shop.store._r.execute("SELECT rowid FROM texts ORDER BY rowid").fetchall()
    labels = shop.store._r.execute("SELECT label FROM items WHERE id IN ('boot', 'shoe')")
    assert [r[0] for r in rows] == sorted(r[0] for r in labels)


def test_filters_apply_to_both_sides(shop):
    assert ids(shop.keyword_search("acme", filter={"price": {"$gt": 50}})) == ["boot"]
    fused = shop.hybrid_search(unit([0, 1, 0])[0], "acme", k=4, filter={"price": {"$lt": 50}})
    assert ids(fused) == ["hat", "shoe"]
    assert fused[0].found_by == ["vector", "keyword"] and fused[1].found_by == ["vector"]
    assert fused[1].bm25 is None and fused[0].bm25 > 0


def test_keyword_syntax_error_names_the_query(shop):
    with pytest.raises(KeywordQueryError) as e:
        shop.keyword_search('"leather boot')
    assert str(e.value) == (
        "keyword query '\"leather boot' is not valid FTS5 query syntax (unterminated string): "
        "leave out the operators to match plain words, or quote a word with punctuation "
        '("SKU-4411")'
    )
    with pytest.raises(KeywordQueryError, match=r"^keyword query 'boot AND' is not valid"):
        shop.hybrid_search(unit([1, 0, 0])[0], "boot AND", k=2)
    with pytest.raises(CollectionError, match=r"^alpha must be a number from 0 to 1, not 2$"):
        shop.hybrid_search(unit([1, 0, 0])[0], "boot", alpha=2)


def cands(*rows) -> list[FusedHit]:
    """(id, vector score, bm25 or None) -> candidates, in the given order."""
    return [FusedHit(i, 0.0, None, ["vector"], v, b) for i, v, b in rows]


def test_rrf_arithmetic():
    got = fuse(cands(("a", 0.9, None), ("b", 0.8, 2.0), ("c", 0.1, 5.0), ("d", 0.1, 2.0)),
               k=4, fusion="rrf", alpha=0.5, metric="ip")  # fmt: skip
    # vector ranks a 1, b 2, c 3, d 3 (tied); keyword ranks c 1, b 2, d 2 (tied), a none
    want = {"a": 0.5 / 61, "b": 0.5 / 62 + 0.5 / 62, "c": 0.5 / 63 + 0.5 / 61,
            "d": 0.5 / 63 + 0.5 / 62}  # fmt: skip
    assert ids(got) == ["c", "b", "d", "a"]  # c: 0.016133, b: 0.016129
    for h in got:
        assert h.score == pytest.approx(want[h.id], abs=1e-15)
    only_vector = fuse(cands(("a", 0.9, None), ("b", 0.8, 9.0)), k=2, fusion="rrf", alpha=1.0)
    assert ids(only_vector) == ["a", "b"]


def test_weighted_arithmetic():
    rows = (("a", 0.6, None), ("b", 0.2, 2.0), ("c", -0.2, 8.0), ("d", 0.6, 4.0))
    got = {h.id: h.score for h in fuse(cands(*rows), k=4, fusion="weighted", alpha=0.25)}
    # cosine: v' = (v + 1) / (0.6 + 1): a 1, b 0.75, c 0.5, d 1; b' = bm25 / 8: b .25, c 1, d .5
    assert got == pytest.approx({"a": 0.25, "b": 0.25 * 0.75 + 0.75 * 0.25,
                                 "c": 0.25 * 0.5 + 0.75, "d": 0.25 + 0.75 * 0.5})  # fmt: skip
    ip = fuse(cands(("a", 3.0, None), ("b", 1.0, None), ("c", 2.0, None)), k=3, metric="ip")
    assert [(h.id, h.score) for h in ip] == [("a", 0.5), ("c", 0.25), ("b", 0.0)]  # min-max
    l2 = fuse(cands(("a", 0.2, None), ("b", 1.0, None)), k=2, metric="l2")
    assert [(h.id, h.score) for h in l2] == [("a", 0.5), ("b", 0.0)]  # smaller distance: better
    tie = fuse(cands(("a", 0.5, None), ("b", 0.5, None)), k=2)
    assert [(h.id, h.score) for h in tie] == [("a", 0.5), ("b", 0.5)]  # the given order
    assert fuse([], k=3) == []
    with pytest.raises(ValueError, match=r"^fusion must be one of weighted, rrf, not 'max'$"):
        fuse(cands(("a", 0.5, None)), k=1, fusion="max")


def test_text_fields_are_checked_and_reopened(faiss_cat, tmp_path):
    with pytest.raises(CollectionError, match=r"^text_fields names a key twice$"):
        faiss_cat.create("t", 3, text_fields=["a", "a"])
    with pytest.raises(CollectionError, match=r"^bad filter key '\$x'$"):
        faiss_cat.create("t", 3, text_fields=["$x"])
    faiss_cat.create("t", 3, text_fields=["title"])
    assert faiss_cat.create("t", 3, text_fields=["title"], exist_ok=True).text_fields == ["title"]
    with pytest.raises(Exception, match="already exists"):
        faiss_cat.create("t", 3, text_fields=["brand"], exist_ok=True)


def test_a_collection_without_text_finds_nothing_by_keywords(faiss_cat):
    col = faiss_cat.create("plain", 3)
    col.upsert(["x"], unit([1, 0, 0]), [{"title": "boot"}])
    assert col.keyword_search("boot") == []
    assert ids(col.hybrid_search(unit([1, 0, 0])[0], "boot")) == ["x"]


def test_milvus_refuses_keywords_and_text_fields(tmp_path):
    from tests.index.conftest import open_backend

    cat = open_backend("milvus", tmp_path)
    try:
        with pytest.raises(Unsupported) as e:
            cat.create("m", 3, text_fields=["title"])
        assert str(e.value) == "text_fields needs the FAISS backend (index_backend=faiss)"
        with pytest.raises(Unsupported, match=r"^quantization needs the FAISS backend"):
            cat.create("m", 3, quantization="int8")
        col = cat.create("m", 3)
        msg = ("keyword and hybrid search need the FAISS backend (index_backend=faiss): "
               "collections on Milvus have no keyword index")  # fmt: skip
        with pytest.raises(Unsupported) as e:
            col.keyword_search("boot")
        assert str(e.value) == msg
        with pytest.raises(Unsupported):
            col.hybrid_search(unit([1, 0, 0])[0], "boot")
    finally:
        cat.close()
