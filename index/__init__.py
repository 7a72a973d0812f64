"""Durable FAISS collections: upsert, delete, metadata filters, snapshots, crash-safe writes;
the same collections on Milvus (index/milvus.py, opened through index/backend.py).

Owns vector storage and search: numpy in, numpy out. Must not import torch, the encoders, or
anything of HTTP.
"""

from index.catalog import Catalog
from index.checks import check_towers
from index.collection import Collection, Hit, Item
from index.errors import (
    CollectionError,
    CollectionExists,
    CollectionNotFound,
    DataDirBusy,
    IndexUnavailable,
    KeywordQueryError,
    SnapshotError,
    StorageFailed,
    StorageFull,
    TowersChanged,
    Unsupported,
)
from index.filters import compile_filter

__all__ = [
    "Catalog",
    "Collection",
    "CollectionError",
    "CollectionExists",
    "CollectionNotFound",
    "DataDirBusy",
    "Hit",
    "IndexUnavailable",
    "Item",
    "KeywordQueryError",
    "SnapshotError",
    "StorageFailed",
    "StorageFull",
    "TowersChanged",
    "Unsupported",
    "check_towers",
    "compile_filter",
]
