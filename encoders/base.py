"""The one interface every encoder backend implements, and the helpers they share.

Owns: the `Encoder` contract (name, dim, modalities, embed_text, embed_images, embed_audio,
encode_video: a video's frames through the image tower, pooled per segment), input validation
common to all backends, batching, cutting long audio into windows and pooling them, device and
dtype choice, and L2 normalisation into float32 numpy. A backend only turns one batch of inputs
into raw feature tensors. Must not import FAISS, FastAPI or anything from index/, service/ or
jobs/.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from encoders.audio import Waveform, windows
from encoders.decode import to_rgb
from encoders.errors import InputError, ModelLoadError, UnsupportedModality
from encoders.video import POOLINGS, Video, VideoEmbedding, pool_videos, segments

TEXT = "text"
IMAGE = "image"
AUDIO = "audio"
VIDEO = "video"


@dataclass
class TextEmbeddings:
    """Vectors for a list of texts, with what the tokenizer did to each one."""

    vectors: np.ndarray
    n_tokens: list[int] = field(default_factory=list)
    truncated: list[bool] = field(default_factory=list)

    @property
    def any_truncated(self) -> bool:
        return any(self.truncated)


@dataclass
class AudioEmbeddings:
    """Per clip one pooled vector, and per clip its windows: (start s, end s) and a vector each."""

    vectors: np.ndarray
    segments: list[list[tuple[float, float]]]
    segment_vectors: list[np.ndarray]


def resolve_device(device: str | None = None) -> torch.device:
    """CUDA when present and not overridden, else CPU; a requested device must exist."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device '{device}' requested but no CUDA device is available")
    return dev


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPUs (tensor cores, no loss scaling needed), fp32 on CPU (bf16 is slow there)."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def l2_normalise(x: torch.Tensor) -> np.ndarray:
    """Rows scaled to unit length, as contiguous float32 numpy."""
    x = x.float()
    x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return np.ascontiguousarray(x.cpu().numpy(), dtype=np.float32)


def batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise InputError("texts must be a list of strings, not a single string")
    out = []
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InputError(f"text {i} is {type(t).__name__}, not a string")
        if not t.strip():
            raise InputError(f"text {i} is empty")
        out.append(t)
    return out


def check_images(images: Sequence[Image.Image]) -> list[Image.Image]:
    out = []
    for i, im in enumerate(images):
        if not isinstance(im, Image.Image):
            raise InputError(
                f"image {i} is {type(im).__name__}, not a decoded image (use encoders.decode_image)"
            )
        out.append(to_rgb(im))
    return out


def check_audio(clips: Sequence[Waveform], rate: int) -> list[Waveform]:
    out = []
    for i, w in enumerate(clips):
        if not isinstance(w, Waveform):
            raise InputError(
                f"audio {i} is {type(w).__name__}, not a decoded clip (use encoders.decode_audio)"
            )
        if w.rate != rate:
            raise InputError(f"audio {i} is at {w.rate} Hz; this model takes {rate} Hz")
        if len(w.samples) == 0:
            raise InputError(f"audio {i} holds no samples")
        out.append(w)
    return out


class Encoder(ABC):
    """A set of towers that map inputs into one L2-normalised joint space.

    Subclasses set `name`, `dim`, `modalities`, `context_length`, `device`, `dtype` and implement
    `_text_batch` / `_image_batch`. Callers only see float32 numpy arrays of shape (n, dim).
    """

    name: str
    dim: int
    modalities: frozenset[str]
    context_length: int
    device: torch.device
    dtype: torch.dtype
    #: "softmax" (CLIP-style) or "sigmoid" (SigLIP-style): how similarities turn into scores
    loss: str = "softmax"
    #: the trained temperature (exponentiated) and bias that turn similarities into logits
    logit_scale: float = 100.0
    logit_bias: float = 0.0
    #: the trained temporal head (encoders.temporal) that pools a video's frames in order, or None
    temporal_head: Any = None
    #: the model directory the model was loaded from (encoders.modeldir); None for bare towers
    model_dir: Path | None = None
    #: the towers spec of a model directory's base (None: the model is its own towers)
    base: str | None = None
    #: a model directory's towers stamp (encoders.modeldir.ModelDir.model_digest), recorded by a
    #: collection made with it: changes when the towers are fine-tuned, though the name does not
    model_digest: str | None = None
    #: the model's parts by kind (audio, temporal, captioner, decoder, prior) and their folders:
    #: the one answer to "what does this model have" beside `modalities` (set by encoders.modeldir)
    parts: dict[str, Path] = {}  # noqa: RUF012 - replaced, never mutated
    #: an audio part (encoders.house_audio.AudioTower) that `_audio_batch` runs, or None
    audio_tower: Any = None
    text_batch_size: int = 64
    image_batch_size: int = 32
    audio_batch_size: int = 32
    #: a picklable function that shrinks a decoded image to what the image tower looks at, such
    #: that the vector stays exactly the same (None: no such shortcut); decode workers apply it
    #: so that small images, not large ones, cross to the process that holds the model
    image_prefit: Callable[[Image.Image], Image.Image] | None = None
    #: the rate `embed_audio` takes (decode with encoders.decode_audio(data, enc.audio_rate))
    audio_rate: int = 16_000
    #: default window length for long audio, seconds
    audio_window: float = 10.0
    #: the longest window the audio tower takes whole (None: any)
    max_audio_window: float | None = None
    #: whether `_audio_batch` takes windows of different lengths with each one's output what it
    #: would be alone; otherwise only windows of one length are batched together
    audio_any_length: bool = False

    # -- what a backend implements -------------------------------------------------------------
    @abstractmethod
    def _text_batch(self, texts: list[str]) -> tuple[torch.Tensor, list[int]]:
        """Raw text features (n, dim) and each text's token count before truncation."""

    @abstractmethod
    def _image_batch(self, images: list[Image.Image]) -> torch.Tensor:
        """Raw image features (n, dim) for RGB images."""

    def _audio_batch(self, clips: list[np.ndarray]) -> torch.Tensor:
        """Raw features (n, dim) for mono float32 windows at `audio_rate` (of equal length unless
        `audio_any_length`): the audio part's, unless the backend has a tower of its own."""
        if self.audio_tower is None:  # pragma: no cover - only called when AUDIO is in modalities
            raise NotImplementedError
        return self.audio_tower.embed_clips([torch.from_numpy(c).to(self.device) for c in clips])

    # -- the public contract -------------------------------------------------------------------
    def encode_text(self, texts: Sequence[str]) -> TextEmbeddings:
        """Vectors plus, per text, its token count and whether it was cut to the context."""
        self.require(TEXT)
        texts = check_texts(texts)
        if not texts:
            return TextEmbeddings(np.zeros((0, self.dim), np.float32))
        parts, counts = [], []
        with torch.inference_mode():
            for chunk in batches(texts, self.text_batch_size):
                feats, n = self._text_batch(list(chunk))
                parts.append(l2_normalise(feats))
                counts.extend(n)
        return TextEmbeddings(
            vectors=np.concatenate(parts),
            n_tokens=counts,
            truncated=[c > self.context_length for c in counts],
        )

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, L2-normalised. Use encode_text to learn which texts were truncated."""
        return self.encode_text(texts).vectors

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, dim) float32, L2-normalised, for decoded PIL images of any mode."""
        self.require(IMAGE)
        images = check_images(images)
        if not images:
            return np.zeros((0, self.dim), np.float32)
        with torch.inference_mode():
            parts = [
                l2_normalise(self._image_batch(list(chunk)))
                for chunk in batches(images, self.image_batch_size)
            ]
        return np.concatenate(parts)

    def encode_audio(
        self, clips: Sequence[Waveform], window: float | None = None
    ) -> AudioEmbeddings:
        """Each clip cut into windows of `window` seconds (default `audio_window`); a vector per
        window, and per clip their duration-weighted mean, renormalised."""
        self.require(AUDIO)
        clips = check_audio(clips, self.audio_rate)
        window = window or self.audio_window
        if self.max_audio_window is not None and window > self.max_audio_window + 1e-9:
            raise InputError(
                f"audio window of {window:g} s is longer than model '{self.name}' takes "
                f"({self.max_audio_window:g} s)"
            )
        cuts = [windows(w, window) for w in clips]
        flat = [c for cut in cuts for c in cut]
        vecs = np.zeros((len(flat), self.dim), np.float32)
        # A window's vector never depends on what it was batched with: a backend that cannot
        # promise that for mixed lengths gets windows of one length at a time.
        order = sorted(range(len(flat)), key=lambda i: len(flat[i].samples))
        groups: dict[int, list[int]] = {}
        for i in order:
            groups.setdefault(0 if self.audio_any_length else len(flat[i].samples), []).append(i)
        with torch.inference_mode():
            for idx in groups.values():
                for chunk in batches(idx, self.audio_batch_size):
                    feats = self._audio_batch([flat[i].samples for i in chunk])
                    vecs[list(chunk)] = l2_normalise(feats)
        pooled, spans, per_clip, at = [], [], [], 0
        for cut in cuts:
            v = vecs[at : at + len(cut)]
            at += len(cut)
            weights = np.array([c.end - c.start for c in cut], np.float32)[:, None]
            mean = (v * weights).sum(0)
            pooled.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
            spans.append([(c.start, c.end) for c in cut])
            per_clip.append(v)
        out = np.stack(pooled).astype(np.float32) if pooled else np.zeros((0, self.dim), np.float32)
        return AudioEmbeddings(out, spans, per_clip)

    def embed_audio(self, clips: Sequence[Waveform], window: float | None = None) -> np.ndarray:
        """(n, dim) float32, L2-normalised: one pooled vector per clip."""
        return self.encode_audio(clips, window).vectors

    def encode_video(
        self, videos: Sequence[Video], interval: float | None = 4.0, *, shots: bool = False,
        start: float = 0.0, end: float | None = None, pooling: str = "mean",
    ) -> list[VideoEmbedding]:  # fmt: skip
        """Each decoded video's sampled frames through the image tower (batched across videos),
        cut into segments (`encoders.video.segments`) and pooled, by their mean or by the
        temporal head (`pooling`): per video a whole vector and a vector per segment, all in the
        image space."""
        self.require(IMAGE)
        head = self.pooling_head(pooling)
        for i, v in enumerate(videos):
            if not isinstance(v, Video):
                raise InputError(
                    f"video {i} is {type(v).__name__}, not a decoded video (use "
                    "encoders.decode_video)"
                )
        spans = [segments(v, interval, shots=shots, start=start, end=end) for v in videos]
        frames = self.embed_images([f for v in videos for f in v.frames])
        return pool_videos(list(videos), frames, spans, head)

    def pooling_head(self, pooling: str) -> Any:
        """The temporal head for `pooling` "temporal", None for "mean"; refused when the model
        has no head or the name is unknown."""
        if pooling not in POOLINGS:
            raise InputError(f"pooling must be one of {', '.join(POOLINGS)}, not '{pooling}'")
        if pooling == "mean":
            return None
        if self.temporal_head is None:
            raise InputError(f"model '{self.name}' has no temporal head: use pooling 'mean' (the "
                             "house model ships one in models/house/temporal)")  # fmt: skip
        return self.temporal_head

    def info(self) -> dict:
        return {
            "name": self.name,
            "dim": self.dim,
            "modalities": sorted(self.modalities),
            "parts": sorted(self.parts),
            "context_length": self.context_length,
            "loss": self.loss,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "trained_dimensions": list(getattr(self, "trained_dims", ()) or (self.dim,)),
        }

    def require(self, modality: str) -> None:
        """Raise UnsupportedModality naming what the model embeds when it lacks `modality`."""
        if modality not in self.modalities:
            raise UnsupportedModality(
                f"model '{self.name}' has no {modality} tower (it embeds: "
                f"{', '.join(sorted(self.modalities))})"
            )
