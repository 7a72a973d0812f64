"""Search a collection: by text, image, vector or an item's id, optionally moved by weighted text
terms or a modification phrase ("in blue instead of red"); by keywords (BM25), or both fused."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request

from encoders import InputError
from fusion import compose, parse_modification
from index import check_towers
from runtime.videos import grouped_search
from service import schemas as S
from service.contract import BATCHED, errors, operation_id
from service.deps import (
    LEASE,
    Lease,
    disconnect_watch,
    embed_query,
    get_catalog,
    media_urls,
    open_collection,
    require,
)
from service.routes.collections import Name

router = APIRouter(tags=["search"], generate_unique_id_function=operation_id)


@router.post(
    "/collections/{name}/search", response_model=S.SearchResponse,
    responses=errors(400, 404, 409, *BATCHED),
)  # fmt: skip
async def search_collection(
    req: S.SearchRequest, request: Request, name: str = Name, catalog=Depends(get_catalog),
    lease: Lease = LEASE, _=require("read"), gone: asyncio.Event = Depends(disconnect_watch),
) -> S.SearchResponse:  # fmt: skip
    """Query by text, image, vector or an item's id; optionally moved by weighted text terms
    or a modification phrase ("in blue instead of red"). An id query leaves that item out.
    `group_by` keeps the best hit per value of a metadata field (`video_id`: the best moment of
    each video). `mode` keyword ranks the items' text by BM25, hybrid fuses that with the vector
    search (`hybrid`: fusion, alpha, k_each); each hit says which side found it. The query is
    embedded by the collection's own model (`model`, when given, must name it)."""
    col = await open_collection(catalog, name)
    text = check_mode(req)
    if req.mode == "keyword":
        lease.check(col, req.model)
        return await keyword_hits(col, text, req, media_urls(request, name))
    pipe = (await lease.for_collection(col, req.model)).pipeline
    check_towers(col, pipe.encoder.model_digest)  # the query meets the collection's vectors
    url = media_urls(request, name)
    found_query = await embed_query(pipe, req.query, gone, col)
    q, exclude = found_query.vector, found_query.ref
    terms = list(req.terms)
    if req.modification:
        terms += [
            S.TermIn(text=t.text, weight=t.weight) for t in parse_modification(req.modification)
        ]
    if terms:
        tv = await pipe.texts([t.text for t in terms], cancel=gone)
        try:
            q = compose(q, tv, [t.weight for t in terms])
        except ValueError as e:
            raise InputError(str(e)) from None
    if req.mode == "hybrid":
        opts = req.hybrid
        fused = await asyncio.to_thread(
            col.hybrid_search, q, text, req.k, req.filter, fusion=opts.fusion, alpha=opts.alpha,
            k_each=opts.k_each, exact_rerank=req.exact_rerank, rescore=req.rescore,
        )  # fmt: skip
        hits = [S.Hit(id=h.id, score=h.score, metadata=h.metadata, media=url(h.id),
                      found_by=h.found_by, vector_score=h.vector_score, bm25=h.bm25)
                for h in fused]  # fmt: skip
        return S.SearchResponse(hits=hits, terms=terms)
    if req.group_by:
        found = await asyncio.to_thread(grouped_search, col, q, req.k, req.filter, req.group_by,
                                        exclude, req.exact_rerank)  # fmt: skip
    else:
        k = req.k + (1 if exclude else 0)
        found = (await asyncio.to_thread(col.search, q, k, req.filter,
                                         exact_rerank=req.exact_rerank,
                                         rescore=req.rescore))[0]  # fmt: skip
    hits = [S.Hit(id=h.id, score=h.score, metadata=h.metadata, media=url(h.id),
                  found_by=["vector"], vector_score=h.score)
            for h in found if h.id != exclude][: req.k]  # fmt: skip
    return S.SearchResponse(hits=hits, terms=terms)


async def keyword_hits(col, text: str, req: S.SearchRequest, url) -> S.SearchResponse:
    found = await asyncio.to_thread(col.keyword_search, text, req.k, req.filter)
    hits = [S.Hit(id=h.id, score=h.score, metadata=h.metadata, media=url(h.id),
                  found_by=["keyword"], bm25=h.score) for h in found]  # fmt: skip
    return S.SearchResponse(hits=hits, terms=[])


def check_mode(req: S.SearchRequest) -> str | None:
    """The keyword side's text for mode keyword or hybrid (None for vector), with the requests
    a mode cannot answer refused."""
    given = "hybrid" in req.model_fields_set
    if req.mode == "vector":
        if given:
            raise InputError('hybrid options are for "mode": "hybrid"')
        return None
    text = getattr(req.query, "text", None)
    if text is None:
        raise InputError(f"mode {req.mode} needs a text query: its keyword side matches words")
    if given and req.mode != "hybrid":
        raise InputError('hybrid options are for "mode": "hybrid"')
    if req.group_by:
        raise InputError(f"group_by works with mode vector only, not {req.mode}")
    if req.mode == "keyword" and (req.terms or req.modification):
        raise InputError("terms and modification move the query vector: not for mode keyword")
    return text
