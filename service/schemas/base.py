"""The pieces every request and response shape is made of: the strict request base (no unknown
fields, no nulls, no type coercion), optional and limited fields (the `x-limit` marks that
service/contract.py fills in from the settings), texts, vectors, names, the error body, and the
helpers that make a union `oneOf` with a readable refusal.

Imports pydantic and index.catalog only.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from index.catalog import NAME_RE

NAME_PATTERN = NAME_RE.pattern
NONBLANK = r"\S"  # at least one character that is not white space
TEMPLATE = r"^[^{}]*\{\}[^{}]*$"  # one {} where the label goes (checked in the route)


def _no_default(schema: dict) -> None:
    schema.pop("default", None)


#: pydantic leaves a bound on an optional number as its own keyword (`gt`), which JSON Schema does
#: not know: the standard keyword says the same beside it
BOUNDS = {"gt": "exclusiveMinimum", "ge": "minimum", "lt": "exclusiveMaximum", "le": "maximum"}


def _standard_bounds(schema: dict) -> None:
    for raw, standard in BOUNDS.items():
        if raw in schema:
            schema.setdefault(standard, schema[raw])


def opt(*, limit: str | None = None, **kw: Any) -> Any:
    """An optional request field: absent means unset; the schema shows no null and no default."""
    extra = {"x-limit": limit} if limit else None

    def edit(schema: dict) -> None:
        _no_default(schema)
        _standard_bounds(schema)
        if extra:
            schema.update(extra)

    return Field(None, json_schema_extra=edit, **kw)


def limited(limit: str, **kw: Any) -> Any:
    return Field(json_schema_extra={"x-limit": limit}, **kw)


Vector = list[float]
# Texts are checked by the runtime (empty, too long) with messages that name the input; the schema
# states the same rules.
Text = Annotated[str, Field(json_schema_extra={"pattern": NONBLANK, "x-limit": "text"})]


class Strict(BaseModel):
    """A request body: unknown fields, explicit nulls and values of another JSON type (0 for
    false, "5" for 5) are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for k, v in data.items():
                if v is None:
                    raise ValueError(f"{k} must not be null (leave it out instead)")
        return data


class ErrorBody(BaseModel):
    type: str
    message: str
    code: int


class ErrorResponse(BaseModel):
    error: ErrorBody


def one_of(schema: dict) -> None:
    """A union of object shapes is `oneOf` (pydantic writes `anyOf`): exactly one must match."""
    if "anyOf" in schema:
        schema["oneOf"] = schema.pop("anyOf")


FUSABLE = ("text", "image", "audio")


def exactly_one(data: Any, kinds: tuple[str, ...], what: str) -> None:
    """A readable refusal before the union is tried (its own errors name every member). Several
    of text, image and audio (and nothing else) make a fused input."""
    if not isinstance(data, dict):
        return
    given = [k for k in kinds if data.get(k) is not None]
    if len(given) == 1 or (len(given) > 1 and set(given) <= set(FUSABLE)):
        return
    raise ValueError(
        f"{what} needs exactly one of {', '.join(kinds[:-1])} or {kinds[-1]}, or several of "
        "text, image and audio to fuse"
    )
