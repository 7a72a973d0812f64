"""What every collection backend checks before it writes or searches: ids, vectors, metadata, k
and the model stamp, with the same messages whichever engine holds the vectors; and the one check
of the towers stamp (`check_towers`) the layers above make before they search a collection with a
model's vectors or write its vectors into one.

A mixin: the class using it has `name`, `dim`, `metric`, `model` and a `_closed` flag. Also the
records both backends return (`Hit`, `Item`) and a new collection's checked configuration (with
its `text_fields` and `quantization`). Knows nothing of Milvus, torch or HTTP, and of FAISS only
its factory grammar (in `new_config`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from index.errors import CollectionError, TowersChanged

MAX_ID_CHARS = 512
MAX_META_BYTES = 64 * 1024
MAX_K = 10_000


class Checks:
    name: str
    dim: int
    metric: str
    model: str | None
    #: the towers stamp of the model that made the vectors (None: not recorded)
    model_digest: str | None = None
    _closed: bool = False

    def _check_open(self) -> None:
        if self._closed:
            raise CollectionError(f"collection '{self.name}' is closed")

    def _check_model(self, model: str | None) -> None:
        if model is not None and self.model is not None and model != self.model:
            raise CollectionError(
                f"vectors from model '{model}' cannot go into collection '{self.name}', "
                f"which holds vectors from '{self.model}'"
            )

    @staticmethod
    def _check_k(k: int) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise CollectionError(f"k must be an integer from 1 to {MAX_K}, not {k!r}")

    def _check_queries(self, queries: np.ndarray) -> np.ndarray:
        q = np.asarray(queries, dtype=np.float32)
        return self._check_vectors(q.reshape(1, -1) if q.ndim == 1 else q, None, "queries")

    @staticmethod
    def _check_ids(ids: Sequence[str], allow_duplicates: bool = False) -> list[str]:
        if isinstance(ids, str):
            raise CollectionError("ids must be a list of strings, not a single string")
        out = list(ids)
        for i in out:
            if not isinstance(i, str) or not i:
                raise CollectionError(f"ids must be non-empty strings, got {i!r}")
            if len(i) > MAX_ID_CHARS:
                raise CollectionError(f"id longer than {MAX_ID_CHARS} characters: {i[:40]!r}...")
        if not allow_duplicates and len(set(out)) != len(out):
            dup = next(i for i in out if out.count(i) > 1)
            raise CollectionError(f"id {dup!r} appears twice in one upsert")
        return out

    @classmethod
    def _check_removals(cls, ids: list[str], remove: Sequence[str]) -> list[str]:
        """The ids an upsert also deletes: none of them among the ids it writes."""
        out = cls._check_ids(remove, allow_duplicates=True)
        both = set(out) & set(ids)
        if both:
            first = sorted(both)[0]
            raise CollectionError(f"id {first!r} is both written and removed in one upsert")
        return list(dict.fromkeys(out))

    def _check_vectors(self, vectors: np.ndarray, n: int | None, what: str) -> np.ndarray:
        v = np.asarray(vectors, dtype=np.float32)
        if v.ndim != 2:
            raise CollectionError(
                f"{what} must be a 2-d array (n, {self.dim}), got shape {v.shape}"
            )
        if v.shape[1] != self.dim:
            raise CollectionError(
                f"{what} have dimension {v.shape[1]}, collection '{self.name}' holds "
                f"{self.dim}-dimensional vectors"
            )
        if n is not None and v.shape[0] != n:
            raise CollectionError(f"{n} ids but {v.shape[0]} vectors")
        if not np.isfinite(v).all():
            raise CollectionError(f"{what} contain NaN or infinity")
        if self.metric == "cosine":  # in float64: a float32 norm of large values overflows to inf
            v64 = np.asarray(v, dtype=np.float64)
            norms = np.linalg.norm(v64, axis=1, keepdims=True)
            if (norms == 0).any():
                raise CollectionError(f"{what} contain a zero vector, which has no direction")
            v = v64 / norms
        return np.ascontiguousarray(v, dtype=np.float32)

    @staticmethod
    def _check_metadata(metadata: Sequence[dict | None] | None, n: int) -> list[str | None]:
        """Each entry as compact JSON text (None stays None), at most MAX_META_BYTES."""
        if metadata is None:
            return [None] * n
        metadata = list(metadata)
        if len(metadata) != n:
            raise CollectionError(f"{n} ids but {len(metadata)} metadata entries")
        out = []
        for m in metadata:
            if m is None:
                out.append(None)
                continue
            if not isinstance(m, dict):
                raise CollectionError(f"metadata must be a JSON object, not {type(m).__name__}")
            try:
                raw = json.dumps(m, allow_nan=False, separators=(",", ":"))
            except (TypeError, ValueError) as e:
                raise CollectionError(f"metadata is not valid JSON: {e}") from None
            if len(raw) > MAX_META_BYTES:
                raise CollectionError(f"metadata over {MAX_META_BYTES} bytes")
            out.append(raw)
        return out


def check_towers(col: Checks, digest: str | None) -> None:
    """Refuse a model's vectors beside a collection's when its towers changed since the collection
    was made (the stamps differ): the two sets of vectors do not share a space, though the model's
    name is the same. A collection or a model without a stamp is not checked (collections made
    before stamps were recorded keep working)."""
    theirs = col.model_digest
    if digest is None or theirs is None or digest == theirs:
        return
    model = f"'{col.model}'" if col.model else "its model"
    raise TowersChanged(
        f"collection '{col.name}' holds vectors from the towers {model} had when it was made "
        f"(towers {theirs}); that model's towers are {digest} now (fine-tuned since), and the "
        f"two do not share a space: re-embed the collection with a batch job (jointspace job "
        f"embed SRC --model {col.model or 'MODEL'} --out OUT --ingest NAME, into a new "
        f"collection, or after dropping '{col.name}')"
    )


@dataclass
class Hit:
    id: str
    score: float
    metadata: dict | None


@dataclass
class Item:
    id: str
    vector: np.ndarray
    metadata: dict | None


def new_config(name: str, dim: int, metric: str, model: str | None, factory: str,
               text_fields: Sequence[str] = (), quantization: str = "none",
               model_digest: str | None = None) -> dict:  # fmt: skip
    """A new collection's configuration, checked (the same for every backend)."""
    from index.ann import METRICS, QUANTIZATIONS, quantized, validate_factory  # FAISS's grammar
    from index.keywords import check_text_fields

    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= 65_536:
        raise CollectionError(f"dim must be an integer from 1 to 65536, not {dim!r}")
    if metric not in METRICS:
        raise CollectionError(f"metric must be one of {', '.join(METRICS)}, not {metric!r}")
    if factory != "auto":
        validate_factory(factory, dim, metric)
    if quantization not in QUANTIZATIONS:
        raise CollectionError(
            f"quantization must be one of {', '.join(QUANTIZATIONS)}, not {quantization!r}"
        )
    if quantization != "none":
        if metric != "cosine":
            raise CollectionError(
                f"quantization {quantization} needs metric cosine (the codes are scaled for unit "
                f"vectors), not {metric!r}"
            )
        validate_factory(quantized("Flat" if factory == "auto" else factory, quantization),
                         dim, metric)  # fmt: skip
    if model_digest is not None and not isinstance(model_digest, str):
        raise CollectionError(f"model_digest must be a string, not {model_digest!r}")
    return {"name": name, "dim": dim, "metric": metric, "model": model, "factory": factory,
            "text_fields": check_text_fields(list(text_fields)),
            "quantization": quantization, "model_digest": model_digest}  # fmt: skip
