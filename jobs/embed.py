"""Decoded items into output rows: one batch of one modality through its tower. Both runners call
this, so that they give the same vectors.

Owns the forward passes of a batch (videos: jobs/video.py), and isolating a bad item: when a
batch is refused (InputError), its items go one by one so only the bad one becomes an error.
Must not import the index or anything of HTTP.
"""

from __future__ import annotations

from encoders.base import Encoder
from encoders.errors import InputError
from encoders.speech import Recogniser
from jobs.decode import Decoded
from jobs.output import Row
from jobs.speech import with_speech
from jobs.video import VideoOptions, embed_videos


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
    enc: Encoder,
    batch: list[Decoded],
    window: float | None = None,
    video: VideoOptions | None = None,
    batch_size: int = 64,
    speech: Recogniser | None = None,
) -> tuple[list[Row], list[dict]]:
    """Rows for the decoded items of one modality, and error records for those refused (a
    video gives several rows: jobs/video.py; with `speech`, an input's transcript adds rows of
    its own: jobs/speech.py)."""
    rows, errors = [], []
    if batch and batch[0].modality == "video":
        found = embed_videos(enc, [d.item for d in batch], [d.payload for d in batch],
                             video or VideoOptions(), window, batch_size)  # fmt: skip
    else:
        found = embed_group(enc, batch, window)
    for d, res in zip(batch, found, strict=True):
        if isinstance(res, str):
            errors.append(error_record(d, res))
            continue
        it = d.item
        mine = res if isinstance(res, list) else [Row(it.index, it.id, it.source, d.modality,
                                                      res, it.metadata)]  # fmt: skip
        if speech is not None and d.speech is not None:
            mine = with_speech(enc, speech, it.metadata, mine, d.speech, batch_size)
        rows += mine
    return rows, errors
