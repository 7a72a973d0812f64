"""Which engine holds the collections: the `index_backend` setting parsed and opened.

    faiss                       FAISS + SQLite in the data directory (the default)
    milvus:PATH.db              milvus-lite, embedded: a database directory at PATH.db
    milvus:http://HOST:19530    a Milvus server or cluster

Both catalogs have the same methods (names, create, get, drop, close, space) and their
collections the same operations, so callers do not branch on the backend. Knows nothing of torch
or HTTP.
"""

from __future__ import annotations

from pathlib import Path

from index.catalog import Catalog
from index.space import SpaceGuard

FORMS = "faiss, milvus:PATH.db (milvus-lite) or milvus:http://HOST:19530 (a Milvus server)"


def parse_backend(spec: str) -> tuple[str, str]:
    """("faiss", "") or ("milvus", URI); ValueError naming the accepted forms."""
    spec = (spec or "").strip()
    if spec == "faiss":
        return "faiss", ""
    if spec.startswith("milvus:"):
        uri = spec[len("milvus:") :]
        if uri.startswith(("http://", "https://")) or (uri.endswith(".db") and len(uri) > 3):
            return "milvus", uri
    raise ValueError(f"index_backend must be {FORMS}, not {spec!r}")


def open_catalog(
    spec: str, root: Path, min_free: str | int = 0, token: str = "", **faiss_options
) -> Catalog:
    """The catalog for `spec`; `root` is the data directory's collections folder (FAISS), and
    the folder whose free space /health reports for a Milvus server."""
    kind, uri = parse_backend(spec)
    if kind == "faiss":
        return Catalog(root, min_free=min_free, **faiss_options)
    from index.milvus import MilvusCatalog

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if uri.startswith(("http://", "https://")):
        return MilvusCatalog(uri, SpaceGuard(root, 0), token=token)
    return MilvusCatalog(uri, SpaceGuard(Path(uri).absolute().parent, min_free), token=token)
