"""Collections on Milvus: the catalog (create, open, list, drop) for a Milvus server or cluster
(`http://HOST:19530`) or milvus-lite, its embedded build (a `PATH.db` directory).

The only module that imports pymilvus (an optional dependency: `pip install jointspace[milvus]`).
A jointspace collection `name` is the Milvus collection `js_<name>` (characters Milvus does not
allow in names written as `_xx` hex), so jointspace's collections sit beside others in a shared
database and are the only ones it lists. Knows nothing of torch, the encoders or HTTP.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from index.catalog import NAME_RE, Catalog
from index.checks import MAX_ID_CHARS, new_config
from index.errors import (
    CollectionError,
    CollectionExists,
    CollectionNotFound,
    DataDirBusy,
    IndexUnavailable,
    Unsupported,
)
from index.milvus_collection import METRIC, MilvusCollection, engine_call, milvus_index
from index.space import SpaceGuard

PREFIX = "js_"
CONFIG_KEY = "jointspace.config"
ID_BYTES = 4 * MAX_ID_CHARS  # Milvus counts bytes; an id is up to 512 characters of UTF-8
INSTALL = "pip install 'jointspace[milvus]'"


def engine_name(name: str) -> str:
    """`name` as a Milvus collection name (letters, digits and '_' only)."""
    return PREFIX + "".join(c if c.isascii() and c.isalnum() else f"_{ord(c):02x}" for c in name)


def user_name(engine: str) -> str | None:
    """The jointspace name of a Milvus collection, or None for a collection not ours."""
    if not engine.startswith(PREFIX):
        return None
    name = re.sub(r"_([0-9a-f]{2})", lambda m: chr(int(m[1], 16)), engine[len(PREFIX) :])
    return name if NAME_RE.match(name) and engine_name(name) == engine else None


def describe(uri: str) -> str:
    """The backend for messages and /health: milvus-lite:PATH or milvus:URL (no password)."""
    if not uri.startswith(("http://", "https://")):
        return f"milvus-lite:{uri}"
    parts = urlsplit(uri)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return "milvus:" + urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class MilvusCatalog:
    """The collections of one Milvus database. `uri`: `PATH.db` (milvus-lite) or a server URL."""

    def __init__(self, uri: str, space: SpaceGuard, token: str = "", timeout: float = 10.0) -> None:
        self.uri, self.space, self.where = uri, space, describe(uri)
        self.backend = self.where
        self.lite = not uri.startswith(("http://", "https://"))
        self._lock = threading.Lock()
        self._open: dict[str, MilvusCollection] = {}
        self.client = connect(uri, token, timeout)

    _check_name = staticmethod(Catalog._check_name)  # the same names and message as FAISS

    @engine_call
    def names(self) -> list[str]:
        return sorted(n for n in map(user_name, self.client.list_collections()) if n)

    @engine_call
    def create(
        self,
        name: str,
        dim: int,
        metric: str = "cosine",
        model: str | None = None,
        index: str = "auto",
        exist_ok: bool = False,
        text_fields: Sequence[str] = (),
        quantization: str = "none",
        model_digest: str | None = None,
    ) -> MilvusCollection:
        """A new collection; with exist_ok, the existing one if its settings match. Keyword
        indexes (`text_fields`) and quantized indexes are FAISS-backend features."""
        self._check_name(name)
        config = new_config(name, dim, metric, model, "auto", text_fields, quantization,
                            model_digest)  # fmt: skip
        config |= {"factory": index}
        for setting, given in (("text_fields", list(text_fields)), ("quantization", quantization)):
            if given not in ([], "none"):
                raise Unsupported(f"{setting} needs the FAISS backend (index_backend=faiss)")
        index_type, build, _ = milvus_index(index)
        with self._lock:
            if self.client.has_collection(engine_name(name)):
                col = self._get_locked(name)
                same = (col.dim, col.metric, col.model, col.factory) == (dim, metric, model, index)
                if exist_ok and same:
                    return col
                raise CollectionExists(f"collection '{name}' already exists")
            if self.lite:
                self.space.check(f"creating collection '{name}'")
            self.client.create_collection(
                engine_name(name), schema=self._schema(dim),
                index_params=self._index(index_type, build, metric),
                properties={CONFIG_KEY: json.dumps(config)},
                consistency_level="Strong",  # a search sees every write that has returned
            )  # fmt: skip
            return self._get_locked(name)

    def _schema(self, dim: int) -> Any:
        from pymilvus import DataType

        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=ID_BYTES)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("meta", DataType.JSON, nullable=True)
        return schema

    def _index(self, index_type: str, build: dict, metric: str) -> Any:
        params = self.client.prepare_index_params()
        # build parameters as one JSON "params" entry: the form both Milvus and milvus-lite read
        # (pymilvus would send them as separate keys, which milvus-lite ignores)
        params.add_index(
            "vector", index_type=index_type, metric_type=METRIC[metric], params={"params": build}
        )
        return params

    @engine_call
    def get(self, name: str) -> MilvusCollection:
        self._check_name(name)
        with self._lock:
            return self._get_locked(name)

    def _get_locked(self, name: str) -> MilvusCollection:
        col = self._open.get(name)
        if col is not None and self.client.has_collection(col.engine_name):
            return col
        self._open.pop(name, None)  # dropped by another service sharing this Milvus
        engine = engine_name(name)
        if not self.client.has_collection(engine):
            raise CollectionNotFound(f"no collection named '{name}'")
        props = self.client.describe_collection(engine).get("properties", {})
        if CONFIG_KEY not in props:
            raise CollectionError(f"Milvus collection '{engine}' was not made by jointspace")
        self.client.load_collection(engine)
        space = self.space if self.lite else None
        config = json.loads(props[CONFIG_KEY])
        col = MilvusCollection(self.client, engine, config, self.where, space)
        self._open[name] = col
        return col

    @engine_call
    def drop(self, name: str) -> None:
        self._check_name(name)
        with self._lock:
            if not self.client.has_collection(engine_name(name)):
                raise CollectionNotFound(f"no collection named '{name}'")
            col = self._open.pop(name, None)
            if col is not None:
                col.close()
            self.client.drop_collection(engine_name(name))

    def failures(self) -> dict[str, str]:
        """Nothing turns read-only here: Milvus handles its own storage faults."""
        return {}

    def close(self) -> None:
        with self._lock:
            for col in self._open.values():
                col.close()
            self._open.clear()
            self.client.close()


def connect(uri: str, token: str, timeout: float) -> Any:
    """A connected MilvusClient, or an error that says what to do."""
    try:
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException
    except ImportError:
        raise IndexUnavailable(f"the Milvus backend needs pymilvus: {INSTALL}") from None
    lite = not uri.startswith(("http://", "https://"))
    if lite:
        _check_lite(Path(uri))
    quiet = logging.getLogger("milvus_lite")  # a failed start is reported below, in one line
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        client = MilvusClient(uri=uri, token=token, timeout=timeout)
        client.list_collections()
    except MilvusException as e:
        if lite and _held_elsewhere(Path(uri)):
            raise DataDirBusy(
                f"{uri} is in use by another process: one process at a time opens a milvus-lite "
                "database; stop it, send the items through its API, or use a Milvus server"
            ) from None
        hint = ("is it running? (docker compose --profile milvus up -d starts one)"
                if not lite else "is the path writable?")  # fmt: skip
        raise IndexUnavailable(
            f"cannot reach Milvus at {describe(uri).split(':', 1)[1]}: {e.message}; {hint}"
        ) from None
    finally:
        quiet.setLevel(level)
    return client


def _held_elsewhere(path: Path) -> bool:
    """Whether another process holds milvus-lite's lock on the database (an flock on its LOCK
    file). Asked only after an open failed: had this process held it, the open would have
    reused its own server."""
    try:
        fd = os.open(path / "LOCK", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _check_lite(path: Path) -> None:
    try:
        import milvus_lite  # noqa: F401
    except ImportError:
        raise IndexUnavailable(f"a milvus:PATH.db backend needs milvus-lite: {INSTALL}") from None
    if path.suffix != ".db":
        raise IndexUnavailable(f"a milvus-lite database is a path ending in .db, not {path}")
    if not path.parent.is_dir():
        raise IndexUnavailable(
            f"cannot create milvus-lite database {path}: no directory {path.parent}"
        )
