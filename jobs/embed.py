"""Decoded items into output rows: one batch of one modality through its tower. Both runners call
this, so that they give the same vectors.

Owns grouping decoded items by modality, the forward passes, and isolating a bad item: when a
batch is refused (InputError), its items go one by one so only the bad one becomes an error.
Must not import the index or anything of HTTP.
"""

from __future__ import annotations

from encoders.base import Encoder
from encoders.errors import InputError
from jobs.decode import Decoded
from jobs.output import Row


def error_record(d: Decoded, reason: str) -> dict:
    return {"id": d.item.id, "source": d.item.source, "modality": d.modality, "error": reason}


def forward(enc: Encoder, modality: str, payloads: list, window: float | None):
    if modality == "text":
        return enc.embed_text(payloads)
    if modality == "image":
        return enc.embed_images(payloads)
    return enc.embed_audio(payloads, window)


def embed_group(enc: Encoder, batch: list[Decoded], window: float | None = None) -> list:
    """Per decoded item of one modality, in order: its vector, or the reason it was refused."""
    if not batch:
        return []
    try:
        return list(forward(enc, batch[0].modality, [d.payload for d in batch], window))
    except InputError as e:
        if len(batch) == 1:
            return [str(e)]
        return [embed_group(enc, [d], window)[0] for d in batch]


def embed_batch(
    enc: Encoder, batch: list[Decoded], window: float | None = None
) -> tuple[list[Row], list[dict]]:
    """Rows for the decoded items of one modality, and error records for those refused."""
    rows, errors = [], []
    for d, res in zip(batch, embed_group(enc, batch, window), strict=True):
        if isinstance(res, str):
            errors.append(error_record(d, res))
        else:
            it = d.item
            rows.append(Row(it.index, it.id, it.source, d.modality, res, it.metadata))
    return rows, errors


def embed_all(enc: Encoder, decoded: list[Decoded], window: float | None = None) -> list:
    """Per decoded item, in order: its vector, or why it has none (its decode error, or the
    tower's refusal); the items of each modality go through their tower together."""
    results: list = [d.error for d in decoded]
    groups: dict[str, list[int]] = {}
    for i, d in enumerate(decoded):
        if d.error is None:
            groups.setdefault(d.modality, []).append(i)
    for idx in groups.values():
        found = embed_group(enc, [decoded[i] for i in idx], window)
        for i, res in zip(idx, found, strict=True):
            results[i] = res
    return results
