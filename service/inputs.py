"""Request inputs to the runtime's typed inputs: the one place that decides an input's modality.

Every route's inputs (the /v1/embeddings items, /embed's lists and uploads, collection items,
search and classify queries, /caption's items, /generate's image) go through `to_input`, then
`Pipeline.embed`. Base64 is undone here (an HTTP matter); decoding the media is the pipeline's.
Imports the schemas and runtime.inputs; no router.
"""

from __future__ import annotations

from typing import Any

from encoders import InputError
from encoders.audio import ALLOWED as ALLOWED_AUDIO
from encoders.audio import sniff_audio
from encoders.decode import ALLOWED_FORMATS, sniff_format
from encoders.video import ALLOWED as ALLOWED_VIDEO
from encoders.video import has_video_stream, sniff_video
from runtime import inputs as I
from service import schemas as S
from service.http_util import decode_b64

#: the kinds of a single-modality input, by the field that carries it
KINDS = ("text", "image", "audio", "video", "vector")


def cut_of(segs: S.VideoSegments | None) -> I.Cut:
    """A request's video segment options as the runtime takes them (None: the defaults)."""
    if segs is None:
        return I.Cut()
    return I.Cut(interval=segs.interval, shots=segs.shots, start=segs.start, end=segs.end,
                 pooling=segs.pooling, audio=segs.audio, weights=segs.weights)  # fmt: skip


def to_input(x: Any, what: str, cut: I.Cut | None = None, by_kind: bool = False) -> I.Input:
    """The typed input of `x`: a text (a plain string), a schema object of any route (its one
    given field names its modality; several of text, image and audio make a fused input; an id
    query names an item), or a (kind, base64 or bytes) pair of /embed's lists, or ("file", bytes)
    of an upload (its kind told by its bytes).
    `what` names the input in errors (with its kind after it with `by_kind`, as queries and
    fused inputs' parts are named: "query image"). An audio query with "as": "speech" is read as
    words; an audio or video item with `speech` keeps its transcript too."""
    if isinstance(x, str):
        return I.Text(x)
    if isinstance(x, tuple):
        kind, value = x
        if kind == "file":
            kind = media_kind(what, value)
        return _single(kind, value, what, cut or I.Cut(), by_kind)
    if isinstance(x, S._Parts):
        parts = {p: _single(p, v, what, I.Cut(), True) for p, v in x.parts().items()}
        return I.Multi(parts, what, weights=x.weights, head=x.head)
    if isinstance(x, S.IdQuery):
        return I.ItemRef(x.id)
    kind = next(k for k in KINDS if getattr(x, k, None) is not None)
    if cut is None:
        cut = cut_of(getattr(x, "segments", None))
    if getattr(x, "read_as", "sound") == "speech":
        kind = "speech"  # a clip read as words
    value = getattr(x, "audio" if kind == "speech" else kind)
    return _single(kind, value, what, cut, by_kind, getattr(x, "speech", False))


def media_kind(name: str, data: bytes) -> str:
    """An uploaded file is an image, an audio clip or a video by its bytes (never by its name or
    content type: a GIF is an image, an MP4 with a video stream a video, one without it audio);
    anything else is refused naming the three allow-lists."""
    if sniff_format(data[:16]):
        return "image"
    if sniff_video(data[:16]) and (sniff_audio(data[:16]) is None or has_video_stream(data)):
        return "video"
    if sniff_audio(data[:16]):
        return "audio"
    raise InputError(
        f"{name}: not a supported image ({', '.join(ALLOWED_FORMATS)}), audio ({ALLOWED_AUDIO}) "
        f"or video format ({ALLOWED_VIDEO})"
    )


def _single(kind: str, value: Any, what: str, cut: I.Cut, by_kind: bool,
            speech: bool = False) -> I.Input:  # fmt: skip
    if kind == "text":
        return I.Text(value)
    if kind == "vector":
        return I.Vector(value, f"{what} vector")
    name = f"{what} {'audio' if kind == 'speech' else kind}" if by_kind else what
    data = value if isinstance(value, bytes) else decode_b64(value, name)
    if kind == "image":
        return I.Image(data, name)
    if kind == "audio":
        return I.Audio(data, name, speech)
    if kind == "speech":
        return I.Spoken(data, name)
    return I.Video(data, name, cut, speech)
