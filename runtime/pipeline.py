"""The one embedding pipeline: `Pipeline.embed(inputs)` turns typed inputs (runtime/inputs.py) into
vectors, whatever route they came by.

It expands fused inputs into their parts, groups every input and part by modality through one
table {modality: Route(decode, embed)}, decodes everything off the event loop (all at once, each
error naming its input; the first in input order is raised), submits each modality's batch once
(the frames of all videos go to the image batcher in one submission, the images in another) and
puts the results back in input order, with what the routes need beside the vector (tokens,
truncation, audio windows, video segments, the decoded picture or clip kept as media). A new
modality is one entry in `table` and its decoder. A clip read as words ("speech") is transcribed
by the speech batcher and embedded by the text tower; audio and video inputs with `speech` also
get their transcript's segments, each with its text vector.

Imports encoders, fusion and runtime; no web framework.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from encoders import InputError, VideoEmbedding
from encoders.speech import Spoken, Transcript
from encoders.video import pool_videos, segments, sound_windows
from fusion import fuse, fuse_sound
from fusion.head import FusionHead, HeadError
from runtime import inputs as I
from runtime.decoders import Clip, Decoders, VideoClip
from runtime.settings import Settings
from runtime.speech import Speech
from runtime.towers import Towers

F32_MAX = float(np.finfo(np.float32).max)


class ItemNotFound(LookupError):
    """An item reference names no item of the collection."""


@dataclass
class Embedded:
    """One input's result: its vector and what the routes need beside it."""

    vector: np.ndarray
    n_tokens: int = 0
    truncated: bool = False
    segments: list[tuple[float, float]] | None = None  # audio windows, video segments
    sound: list[tuple[float, float, np.ndarray]] | None = None  # "separate": sound segments
    segment_vectors: Sequence[np.ndarray] | None = None
    image: Image.Image | None = None  # the decoded picture (a fused input's picture part)
    clip: Clip | VideoClip | None = None  # the decoded sound or video
    video: VideoEmbedding | None = None
    parts: dict[str, np.ndarray] | None = None  # a fused input's part vectors
    ref: str | None = None  # an item reference's id
    transcript: Transcript | None = None  # what was said (a clip read as speech, or `speech`)
    spoken: list[tuple[Spoken, np.ndarray]] | None = None  # its segments, each with its vector


@dataclass(frozen=True)
class Context:
    cancel: asyncio.Event | None
    truncate: bool
    collection: Any


@dataclass(frozen=True)
class Route:
    """How one modality is embedded: each input decoded (off the event loop), then the decoded
    inputs of a request embedded as one batch."""

    decode: Callable[[Any, str], Awaitable[Any]]
    embed: Callable[[list[Any], Context], Awaitable[list[Embedded]]]


@dataclass(frozen=True)
class _Fused:
    x: I.Multi
    head: FusionHead | None
    at: dict[str, int]  # part -> its leaf


def float32_vector(values: Sequence[float], what: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if not np.isfinite(v).all() or (np.abs(v) > F32_MAX).any():
        raise InputError(f"{what} has values that are not finite float32 numbers")
    return v.astype(np.float32)


async def _first_error(aws: list[Awaitable[Any]]) -> list[Any]:
    """All of `aws` run together; the first failure in their order is raised."""
    out = await asyncio.gather(*aws, return_exceptions=True)
    for r in out:
        if isinstance(r, BaseException):
            raise r
    return out


class Pipeline:
    def __init__(self, towers: Towers, decoders: Decoders, settings: Settings,
                 heads: Callable[[str], FusionHead],
                 speech: Speech | None = None) -> None:  # fmt: skip
        self.towers, self.decoders, self.settings, self.heads = towers, decoders, settings, heads
        self.speech = speech
        self.encoder = towers.encoder
        self.table: dict[str, Route] = {
            "text": Route(self._decode_text, self._texts),
            "image": Route(lambda x, _: decoders.image(x), self._images),
            "audio": Route(lambda x, _: decoders.audio(x), self._audio),
            "speech": Route(self._decode_spoken, self._spoken),
            "video": Route(self._decode_video, self._videos),
            "vector": Route(self._decode_vector, self._as_given),
            "item": Route(self._decode_ref, self._items),
        }

    async def embed(self, inputs: Sequence[I.Input], *, truncate: bool = False,
                    cancel: asyncio.Event | None = None,
                    collection: Any = None) -> list[Embedded]:  # fmt: skip
        """One result per input, in order. `collection` resolves item references."""
        ctx = Context(cancel, truncate, collection)
        leaves, plan = await self._plan(inputs)
        decoded = await _first_error([self._route(x).decode(x, label) for x, label in leaves])
        groups: dict[str, list[int]] = {}
        for i, (x, _) in enumerate(leaves):
            groups.setdefault(x.modality, []).append(i)
        talk = [i for i, (x, _) in enumerate(leaves) if getattr(x, "speech", False)]
        batches = await _first_error(
            [self.table[m].embed([decoded[i] for i in idx], ctx) for m, idx in groups.items()]
            + [self._transcripts([leaves[i][0] for i in talk], ctx)]
        )
        done: list[Embedded] = [None] * len(leaves)  # type: ignore[list-item]
        for idx, results in zip(groups.values(), batches[:-1], strict=True):
            for i, r in zip(idx, results, strict=True):
                done[i] = r
        for i, (transcript, spoken) in zip(talk, batches[-1], strict=True):
            done[i].transcript, done[i].spoken = transcript, spoken
        return [done[p] if isinstance(p, int) else _fused(p, done) for p in plan]

    async def texts(self, texts: list[str], truncate: bool = False,
                    cancel: asyncio.Event | None = None) -> np.ndarray:  # fmt: skip
        """The vectors (n, dim) of plain texts."""
        out = await self.embed([I.Text(t) for t in texts], truncate=truncate, cancel=cancel)
        return np.stack([r.vector for r in out])

    def pooling(self, asked: str | None) -> str:
        """The pooling a request gets: what it asked for, else the setting, where "auto" is the
        temporal head when the model has one."""
        chosen = asked or self.settings.video_pooling
        if chosen == "auto":
            return "temporal" if self.encoder.temporal_head is not None else "mean"
        return chosen

    def _route(self, x: I.Input) -> Route:
        route = self.table.get(x.modality)
        if route is None:
            raise InputError(f"inputs of modality '{x.modality}' are not embedded here")
        return route

    async def _plan(self, inputs: Sequence[I.Input]) -> tuple[list, list[int | _Fused]]:
        """The leaves (inputs and fused inputs' parts, each with the label its text errors use)
        and per input its leaf or its fusion. A fused input's head is looked up and checked
        first: a refused head costs no decoding and no embedding."""
        leaves: list[tuple[I.Input, str]] = []
        plan: list[int | _Fused] = []
        texts = 0
        heads: dict[str, FusionHead] = {}  # each head named is looked up once per request
        for x in inputs:
            if getattr(x, "speech", False) or isinstance(x, I.Spoken):
                self.require_speech()  # before any decoding
            if isinstance(x, I.Multi):
                if x.head and x.head not in heads:
                    heads[x.head] = await asyncio.to_thread(self.heads, x.head)
                head = heads[x.head] if x.head else None
                if head is not None:
                    try:
                        head.check_parts(x.parts)
                    except HeadError as e:
                        raise InputError(f"{x.name}: {e}") from None
                at = {}
                for part, px in x.parts.items():
                    at[part] = len(leaves)
                    leaves.append((px, "text 0"))
                plan.append(_Fused(x, head, at))
                continue
            plan.append(len(leaves))
            leaves.append((x, f"text {texts}"))
            texts += isinstance(x, I.Text)
        return leaves, plan

    def require_speech(self) -> None:
        """Raises NoRecogniser where speech recognition is off."""
        if self.speech is None:
            raise InputError("speech recognition is not set up in this pipeline")
        self.speech.require()

    async def transcribe(self, x: I.Audio | I.Spoken | I.Video,
                         cancel: asyncio.Event | None = None) -> Transcript:  # fmt: skip
        """What is said in a clip or a video's sound track."""
        self.require_speech()
        wave = await self.decoders.speech(x)
        return (await self.speech.transcribe([wave], cancel))[0]

    # -- decoders -------------------------------------------------------------------------------
    async def _decode_text(self, x: I.Text, label: str) -> tuple[str, str]:
        return self.decoders.check_text(x.text, label), label

    async def _decode_video(self, x: I.Video, _: str) -> tuple[VideoClip, Any, list, I.Cut]:
        clip = await self.decoders.video(x)
        head = self.encoder.pooling_head(self.pooling(x.cut.pooling))
        interval = x.cut.interval or self.settings.video_interval_s
        spans = segments(clip.video, interval, shots=x.cut.shots, start=x.cut.start,
                         end=x.cut.end)  # fmt: skip
        return clip, head, spans, x.cut

    async def _decode_spoken(self, x: I.Spoken, _: str) -> tuple[np.ndarray, str]:
        return await self.decoders.speech(x), x.name

    async def _decode_vector(self, x: I.Vector, _: str) -> np.ndarray:
        return float32_vector(x.values, x.name)

    async def _decode_ref(self, x: I.ItemRef, _: str) -> str:
        return x.id

    # -- batches ----------------------------------------------------------------------------------
    async def _texts(self, batch: list[tuple[str, str]], ctx: Context) -> list[Embedded]:
        out = await self.towers.run("text", [t for t, _ in batch], ctx.cancel)
        if not ctx.truncate:
            for (_, label), r in zip(batch, out, strict=True):
                if r[2]:
                    raise InputError(
                        f"{label} is longer than the model's {self.encoder.context_length}-token "
                        "context: shorten it or pass truncate=true"
                    )
        return [Embedded(r[0], n_tokens=int(r[1]), truncated=bool(r[2])) for r in out]

    async def _images(self, images: list[Image.Image], ctx: Context) -> list[Embedded]:
        vecs = await self.towers.run("image", images, ctx.cancel)
        return [Embedded(v, image=im) for v, im in zip(vecs, images, strict=True)]

    async def _audio(self, clips: list[Clip], ctx: Context) -> list[Embedded]:
        out = await self.towers.run("audio", [c.wave for c in clips], ctx.cancel)
        return [Embedded(r[0], segments=r[1], segment_vectors=r[2], clip=c)
                for r, c in zip(out, clips, strict=True)]  # fmt: skip

    async def _videos(self, batch: list[tuple[VideoClip, Any, list, I.Cut]],
                      ctx: Context) -> list[Embedded]:  # fmt: skip
        """The sampled frames of every video in one image-tower submission, then pooling per
        video (by the mean, or by the temporal head: a forward pass, off the event loop), then
        the sound windows of the videos that ask for them in one audio-tower submission."""
        frames = [f for clip, _, _, _ in batch for f in clip.video.frames]
        vecs = np.stack(await self.towers.run("image", frames, ctx.cancel))
        out, at = [], 0
        for clip, head, spans, _ in batch:
            n = len(clip.video.frames)
            args = ([clip.video], vecs[at : at + n], [spans], head)
            emb = (await asyncio.to_thread(pool_videos, *args) if head is not None
                   else pool_videos(*args))[0]  # fmt: skip
            at += n
            spans = [(s.start, s.end) for s in emb.segments]
            out.append(Embedded(emb.vector, segments=spans, segment_vectors=emb.segment_vectors,
                                clip=clip, video=emb))  # fmt: skip
        await self._sound([(r, cut) for r, (*_, cut) in zip(out, batch, strict=True)
                           if cut.audio != "off"], ctx)  # fmt: skip
        return out

    async def _sound(self, todo: list[tuple[Embedded, I.Cut]], ctx: Context) -> None:
        """Each segment's sound window through the audio tower: fused into the segment's vector
        (and the whole video's with the mean of its windows') or kept as sound segments. A
        window under 0.1 s, or a video without a sound track, has no sound vector."""
        windows, owners = [], []
        for k, (r, _) in enumerate(todo):
            for j, w in sound_windows(r.clip.video.audio, r.segments):
                windows.append(w)
                owners.append((k, j))
        heard = await self.towers.run("audio", windows, ctx.cancel) if windows else []
        by_video: dict[int, dict[int, np.ndarray]] = {}
        for (k, j), res in zip(owners, heard, strict=True):
            by_video.setdefault(k, {})[j] = res[0]
        for k, (r, cut) in enumerate(todo):
            got = by_video.get(k, {})
            if cut.audio == "separate":
                r.sound = [(*r.segments[j], v) for j, v in sorted(got.items())]
                continue
            try:
                r.vector, segs = fuse_sound(r.vector, r.segment_vectors, got, cut.weights)
            except ValueError as e:
                raise InputError(f"a video's sound fusion: {e}") from None
            r.segment_vectors = r.video.segment_vectors = segs
            r.video.vector = r.vector

    async def _spoken(self, batch: list[tuple[np.ndarray, str]], ctx: Context) -> list[Embedded]:
        """Clips read as words: each transcript embedded as one text (truncated to the text
        tower's context); a clip in which nothing was said is refused."""
        said = await self.speech.transcribe([w for w, _ in batch], ctx.cancel)
        for (_, name), t in zip(batch, said, strict=True):
            if not t.segments:
                raise InputError(f"{name}: no speech was recognised in it")
        out = await self.towers.run("text", [t.text for t in said], ctx.cancel, fresh=True)
        return [Embedded(r[0], n_tokens=int(r[1]), truncated=bool(r[2]), transcript=t)
                for r, t in zip(out, said, strict=True)]  # fmt: skip

    async def _transcripts(self, todo: list[I.Audio | I.Video], ctx: Context) -> list[tuple]:
        """(transcript, [(segment, its text vector)]) of each audio or video input with `speech`
        (transcribed beside the other modalities' batches), all segments' texts embedded in one
        text-tower submission."""
        if not todo:
            return []
        waves = await _first_error([self.decoders.speech(x) for x in todo])
        said = await self.speech.transcribe(waves, ctx.cancel)
        texts = [s.text for t in said for s in t.segments]
        vecs = await self.towers.run("text", texts, ctx.cancel, fresh=True) if texts else []
        out, at = [], 0
        for t in said:
            n = len(t.segments)
            out.append((t, [(s, v[0]) for s, v in zip(t.segments, vecs[at : at + n],
                                                      strict=True)]))  # fmt: skip
            at += n
        return out

    async def _as_given(self, vectors: list[np.ndarray], _: Context) -> list[Embedded]:
        return [Embedded(v) for v in vectors]

    async def _items(self, ids: list[str], ctx: Context) -> list[Embedded]:
        col = ctx.collection
        if col is None:
            raise InputError("an item reference needs a collection")
        items = await asyncio.to_thread(col.get, ids)
        for i, item in zip(ids, items, strict=True):
            if item is None:
                raise ItemNotFound(f"no item '{i}' in collection '{col.name}'")
        return [Embedded(item.vector, ref=i) for i, item in zip(ids, items, strict=True)]


def _fused(p: _Fused, done: list[Embedded]) -> Embedded:
    """A fused input's result from its parts': fusion.fuse with the weights, or its head."""
    got = {part: done[i] for part, i in p.at.items()}
    vecs = {part: r.vector for part, r in got.items()}
    try:
        vector = p.head.fuse(vecs) if p.head is not None else fuse(vecs, p.x.weights)
    except (ValueError, HeadError) as e:
        raise InputError(f"{p.x.name}: {e}") from None
    image = got["image"].image if "image" in got else None
    clip = got["audio"].clip if "audio" in got else None
    return Embedded(vector, n_tokens=sum(r.n_tokens for r in got.values()), image=image,
                    clip=clip, parts=vecs)  # fmt: skip
