"""What a collection's keyword index holds and how a keyword query reads.

An item's indexed text is its text input (when it was made from one) followed by the values of the
metadata fields named at creation (`text_fields`; dotted names reach into nested objects; strings,
numbers and lists of them). A keyword query is either plain words or FTS5 query syntax:

- plain words (no `"`, `(`, `)`, `*`, `^`, `:`, `+`, and none of the words AND, OR, NOT, NEAR):
  each white-space separated word is matched as a phrase of its tokens ("SKU-4411" is the token
  `sku` followed by `4411`), any word may match, and BM25 ranks items matching more and rarer
  words higher;
- anything else is handed to FTS5 as written (phrases, AND/OR/NOT, prefix*, NEAR), and a syntax
  error is the caller's to fix.

Tokens are lower-cased, stripped of diacritics and Porter-stemmed (FTS5 `porter unicode61`).
Owns only these rules; knows nothing of SQLite connections, FAISS or HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from index.errors import CollectionError
from index.filters import key_parts

SYNTAX = re.compile(r'["()*^:+]|\b(AND|OR|NOT|NEAR)\b')
MAX_TEXT_FIELDS = 16


def check_text_fields(fields: Any) -> list[str]:
    """The `text_fields` setting, checked: a list of distinct metadata keys."""
    if not isinstance(fields, list) or any(not isinstance(f, str) for f in fields):
        raise CollectionError("text_fields must be a list of metadata keys")
    if len(fields) > MAX_TEXT_FIELDS:
        raise CollectionError(f"text_fields names at most {MAX_TEXT_FIELDS} keys")
    for f in fields:
        key_parts(f)
    if len(set(fields)) != len(fields):
        raise CollectionError("text_fields names a key twice")
    return list(fields)


def _values(value: Any) -> list[str]:
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (str, int, float)):
        return [str(value)]
    if isinstance(value, list):
        return [s for v in value if not isinstance(v, (list, dict)) for s in _values(v)]
    return []


def indexed_text(text: str | None, meta: dict | None, fields: Sequence[str]) -> str | None:
    """The text the keyword index holds for one item (None: nothing to index)."""
    parts = [text] if text else []
    for f in fields:
        value: Any = meta
        for p in key_parts(f):
            value = value.get(p) if isinstance(value, dict) else None
        parts += _values(value)
    return "\n".join(parts) if parts else None


def fts_query(query: str) -> str:
    """The FTS5 MATCH expression for a keyword query (see the module docstring)."""
    if not query.strip():
        raise CollectionError("a keyword query needs at least one word")
    if SYNTAX.search(query):
        return query
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in query.split())
