"""The project's metadata filter language (index/filters.py) as Milvus boolean expressions, and the
encoding of metadata that keeps those expressions type-strict.

Milvus compares JSON booleans as the numbers 0 and 1 (`meta["x"] == 1` matches `true`) and cannot
tell a key holding null from a missing key (`exists` is false for both). So booleans and nulls are
stored as the strings "$true", "$false" and "$null", and strings that start with "$" gain one more
"$"; `decode` undoes this on the way out. With that, every leaf test is exact and two-valued
(`exists P and P <op> v`), `not` means what it means in SQL here, and the results are those of the
FAISS backend. Ids are addressed with `id in [...]` expressions written here too (pymilvus writes
them unescaped). A filter or id Milvus cannot parse (a string with control characters other than
newline, carriage return and tab) is refused with a clear error. Knows nothing of pymilvus or HTTP.
"""

from __future__ import annotations

import json
import math
from typing import Any

from index.errors import CollectionError
from index.filters import MAX_DEPTH, RANGE_OPS, key_parts

FIELD = "meta"
_CONSTANTS = {True: "$true", False: "$false"}
_DECODE = {"$true": True, "$false": False, "$null": None}
_SAFE_ESCAPES = ("\\n", "\\r", "\\t", '\\"', "\\\\")


def encode(value: Any) -> Any:
    """Metadata as stored in Milvus (see the module docstring)."""
    if value is None:
        return "$null"
    if isinstance(value, bool):
        return _CONSTANTS[value]
    if isinstance(value, str):
        return "$" + value if value.startswith("$") else value
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [encode(v) for v in value]
    return value


def decode(value: Any) -> Any:
    """Stored metadata back as the user gave it."""
    if isinstance(value, str):
        if value in _DECODE:
            return _DECODE[value]
        return value[1:] if value.startswith("$$") else value
    if isinstance(value, dict):
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def string_literal(text: str, what: str = "filter on") -> str:
    """A Milvus string literal; CollectionError for text Milvus's parser cannot take."""
    lit = json.dumps(text, ensure_ascii=False)
    rest = lit
    for esc in _SAFE_ESCAPES:
        rest = rest.replace(esc, "")
    if "\\" in rest:
        raise CollectionError(
            f"the Milvus backend cannot {what} {text!r}: control characters other than "
            "newline, carriage return and tab cannot be written in its filter expressions"
        )
    return lit


def _path(key: str) -> str:
    return FIELD + "".join(f"[{string_literal(p)}]" for p in key_parts(key))


def _literal(value: Any) -> str:
    if value is None or isinstance(value, (bool, str)):
        return string_literal(encode(value))
    if isinstance(value, (int, float)):
        return _number(value)
    raise CollectionError(
        f"filter values must be strings, numbers, booleans or null, not {value!r}"
    )


def _number(x: int | float) -> str:
    if isinstance(x, float) and not math.isfinite(x):
        raise CollectionError(f"filter numbers must be finite, not {x!r}")
    return repr(x)


def _eq(path: str, value: Any) -> str:
    return f"(exists {path} and {path} == {_literal(value)})"


def _field(key: str, cond: Any) -> str:
    path = _path(key)
    if not isinstance(cond, dict):
        return _eq(path, cond)
    if not cond:
        raise CollectionError(f"empty condition for {key!r}")
    parts = []
    for op, arg in cond.items():
        if op == "$eq":
            parts.append(_eq(path, arg))
        elif op == "$ne":
            parts.append(f"(not {_eq(path, arg)})")
        elif op in ("$in", "$nin"):
            if not isinstance(arg, list) or not arg:
                raise CollectionError(f"{op} for {key!r} needs a non-empty list")
            any_of = "(" + " or ".join(_eq(path, v) for v in arg) + ")"
            parts.append(any_of if op == "$in" else f"(not {any_of})")
        elif op in RANGE_OPS:
            if isinstance(arg, bool) or not isinstance(arg, (int, float)):
                raise CollectionError(f"{op} for {key!r} needs a number, not {arg!r}")
            parts.append(f"(exists {path} and {path} {RANGE_OPS[op]} {_number(arg)})")
        elif op == "$exists":
            if not isinstance(arg, bool):
                raise CollectionError(f"$exists for {key!r} needs true or false")
            parts.append(f"({'' if arg else 'not '}exists {path})")
        else:
            raise CollectionError(f"unknown filter operator {op!r} for {key!r}")
    return "(" + " and ".join(parts) + ")"


def ids_expr(ids: list[str]) -> str:
    """The expression selecting items by id."""
    return "id in [" + ", ".join(string_literal(i, "address the id") for i in ids) + "]"


def to_expr(flt: dict, depth: int = 0) -> str:
    """A Milvus filter expression over the JSON field `meta` ("" for an empty filter)."""
    if depth > MAX_DEPTH:
        raise CollectionError(f"filter nested deeper than {MAX_DEPTH} levels")
    if not isinstance(flt, dict):
        raise CollectionError(f"a filter is a JSON object, not {type(flt).__name__}")
    parts = []
    for key, val in flt.items():
        if key in ("$and", "$or"):
            if not isinstance(val, list) or not val:
                raise CollectionError(f"{key} needs a non-empty list of filters")
            subs = [to_expr(f, depth + 1) or "true" for f in val]
            parts.append("(" + (" and " if key == "$and" else " or ").join(subs) + ")")
        elif key == "$not":
            parts.append(f"(not {to_expr(val, depth + 1) or 'true'})")
        elif key.startswith("$"):
            raise CollectionError(f"unknown filter operator {key!r}")
        else:
            parts.append(_field(key, val))
    return " and ".join(parts)
