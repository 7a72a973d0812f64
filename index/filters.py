"""Metadata filters: a small JSON language compiled to SQL over the items' JSON metadata.

    {"color": "blue"}                              equality (shorthand for {"$eq": ...})
    {"color": {"$ne": "blue"}}                     not equal (items without the key match)
    {"color": {"$in": ["blue", "red"]}}            membership ($nin: not in)
    {"price": {"$gte": 10, "$lt": 50}}             numeric ranges ($gt $gte $lt $lte)
    {"brand": {"$exists": true}}                   presence of a key
    {"$and": [...]}, {"$or": [...]}, {"$not": {...}}
    {"a.b": 1}                                     dotted keys reach into nested objects

Several keys in one object are ANDed. Comparisons are type-strict: 1 does not equal "1" or true.
A missing key never raises: it fails every test but $exists false, $ne and $nin. JSON paths are
written into the SQL as literals (quoted by json.dumps, then SQL-quoted) so that SQLite can use an
expression index on json_extract(meta, PATH) (see `field_index_sql`); values are always parameters.
Owns only the translation; knows nothing of FAISS or HTTP.
"""

from __future__ import annotations

import json
from typing import Any

from index.errors import CollectionError

RANGE_OPS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
MAX_DEPTH = 32


def key_parts(key: str) -> list[str]:
    """A filter key's dotted parts; CollectionError for a key no backend accepts."""
    if not isinstance(key, str) or not key or key.startswith("$"):
        raise CollectionError(f"bad filter key {key!r}")
    parts = key.split(".")
    if any(not p for p in parts):
        raise CollectionError(f"bad filter key {key!r}")
    return parts


def _path(key: str) -> str:
    """The key as an SQL string literal holding a JSON path, e.g. '$."dims"."w"'."""
    parts = key_parts(key)
    path = "$" + "".join("." + json.dumps(p) for p in parts)
    return "'" + path.replace("'", "''") + "'"


def field_index_sql(key: str, name: str) -> str:
    """CREATE INDEX for one metadata key, usable by the filters this module writes: the value and
    its JSON type, so both terms of a typed comparison are answered from the index."""
    p = _path(key)
    return (
        f"CREATE INDEX IF NOT EXISTS {name} ON items(json_extract(meta, {p}), json_type(meta, {p}))"
    )


def _typed_eq(path: str, value: Any) -> tuple[str, list]:
    """SQL true exactly when the JSON value at path equals `value`, type included."""
    if value is None:
        return f"json_type(meta, {path}) = 'null'", []
    if isinstance(value, bool):  # json_extract gives 1/0 for true/false: indexable
        return (
            f"(json_extract(meta, {path}) = ? AND json_type(meta, {path}) = ?)",
            [int(value), "true" if value else "false"],
        )
    if isinstance(value, (int, float)):
        return (
            f"(json_extract(meta, {path}) = ? AND json_type(meta, {path}) IN ('integer', 'real'))",
            [value],
        )
    if isinstance(value, str):
        return f"(json_extract(meta, {path}) = ? AND json_type(meta, {path}) = 'text')", [value]
    raise CollectionError(
        f"filter values must be strings, numbers, booleans or null, not {value!r}"
    )


def _field(key: str, cond: Any) -> tuple[str, list]:
    path = _path(key)
    if not isinstance(cond, dict):
        return _typed_eq(path, cond)
    if not cond:
        raise CollectionError(f"empty condition for {key!r}")
    parts, params = [], []
    for op, arg in cond.items():
        if op == "$eq":
            sql, p = _typed_eq(path, arg)
        elif op == "$ne":
            sql, p = _typed_eq(path, arg)
            sql = f"NOT COALESCE({sql}, 0)"
        elif op in ("$in", "$nin"):
            if not isinstance(arg, list) or not arg:
                raise CollectionError(f"{op} for {key!r} needs a non-empty list")
            subs = [_typed_eq(path, v) for v in arg]
            sql = "(" + " OR ".join(s for s, _ in subs) + ")"
            p = [x for _, ps in subs for x in ps]
            if op == "$nin":
                sql = f"NOT COALESCE({sql}, 0)"
        elif op in RANGE_OPS:
            if isinstance(arg, bool) or not isinstance(arg, (int, float)):
                raise CollectionError(f"{op} for {key!r} needs a number, not {arg!r}")
            sql = (
                f"(json_extract(meta, {path}) {RANGE_OPS[op]} ? "
                f"AND json_type(meta, {path}) IN ('integer', 'real'))"
            )
            p = [arg]
        elif op == "$exists":
            if not isinstance(arg, bool):
                raise CollectionError(f"$exists for {key!r} needs true or false")
            sql = f"json_type(meta, {path}) IS {'NOT ' if arg else ''}NULL"
            p = []
        else:
            raise CollectionError(f"unknown filter operator {op!r} for {key!r}")
        parts.append(sql)  # NULL (missing key) is false in WHERE; only NOT needs COALESCE
        params.extend(p)
    return "(" + " AND ".join(parts) + ")", params


def compile_filter(flt: dict, depth: int = 0) -> tuple[str, list]:
    """A SQL boolean expression over column `meta` and its parameters."""
    if depth > MAX_DEPTH:
        raise CollectionError(f"filter nested deeper than {MAX_DEPTH} levels")
    if not isinstance(flt, dict):
        raise CollectionError(f"a filter is a JSON object, not {type(flt).__name__}")
    if not flt:
        return "1", []
    parts, params = [], []
    for key, val in flt.items():
        if key in ("$and", "$or"):
            if not isinstance(val, list) or not val:
                raise CollectionError(f"{key} needs a non-empty list of filters")
            subs = [compile_filter(f, depth + 1) for f in val]
            joiner = " AND " if key == "$and" else " OR "
            sql = "(" + joiner.join(s for s, _ in subs) + ")"
            p = [x for _, ps in subs for x in ps]
        elif key == "$not":
            sub, p = compile_filter(val, depth + 1)
            sql = f"(NOT COALESCE({sub}, 0))"
        elif key.startswith("$"):
            raise CollectionError(f"unknown filter operator {key!r}")
        else:
            sql, p = _field(key, val)
        parts.append(sql)
        params.extend(p)
    return "(" + " AND ".join(parts) + ")", params
