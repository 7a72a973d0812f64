"""Collection catalogs on each backend: FAISS in a data directory, and Milvus (milvus-lite, the
embedded build the CI installs), so that one suite checks both engines' semantics."""

from __future__ import annotations

import pytest

from index.backend import open_catalog

BACKENDS = ["faiss", "milvus"]


def open_backend(backend: str, tmp_path, **faiss_options):
    spec = "faiss" if backend == "faiss" else f"milvus:{tmp_path / 'milvus.db'}"
    return open_catalog(spec, tmp_path / "data", **faiss_options)


@pytest.fixture(params=BACKENDS)
def cat(request, tmp_path):
    """A catalog on each backend (FAISS without background maintenance)."""
    options = {"auto_maintain": False} if request.param == "faiss" else {}
    c = open_backend(request.param, tmp_path, **options)
    yield c
    c.close()


@pytest.fixture
def faiss_cat(tmp_path):
    """For what only the FAISS backend has: snapshots, rebuilds, tombstones, field indexes."""
    c = open_backend("faiss", tmp_path, auto_maintain=False)
    yield c
    c.close()
