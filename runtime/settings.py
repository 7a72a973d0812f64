"""Service settings: defaults, then JOINTSPACE_* environment variables, then command-line flags.

Validated once at start-up; a bad value or a bad combination stops the service with a message that
says what to change. No other module reads the environment. Imports pydantic and index only (no
web framework).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from index import CollectionError
from index.backend import parse_backend
from index.gpu import resolve_device
from index.space import parse_floor

ENV_PREFIX = "JOINTSPACE_"


class SettingsError(ValueError):
    """A setting or combination of settings the service cannot start with."""


class Settings(BaseModel, extra="forbid"):
    model: str = Field("house", description="Model spec served (see `jointspace models`).")
    models: list[str] = Field(
        default_factory=list,
        description="Several model specs served together (the first is the default); "
        "replaces `model` when given.",
    )
    lazy_models: bool = Field(
        False, description="Load each model on its first request instead of at start-up."
    )
    model_memory: str | None = Field(
        None, description="Cap on the memory the loaded models take together (bytes, 4GiB): "
        "over it, the least recently used model no request holds is unloaded.",
    )  # fmt: skip
    data_dir: Path = Field(Path("data"), description="Where collections and media live.")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    device: str | None = None
    index_device: Literal["auto", "cpu", "gpu"] = Field(
        "auto",
        description="Where unfiltered collection searches run (auto: a GPU if faiss-gpu sees one).",
    )
    index_backend: str = Field(
        "faiss", description="Where collections live: faiss (in the data directory), "
        "milvus:PATH.db (milvus-lite, embedded) or milvus:http://HOST:19530 (a Milvus server).",
    )  # fmt: skip
    milvus_token: str | None = Field(
        None, description="user:password or API key of a Milvus server with authentication."
    )
    max_batch: int = Field(64, ge=1, le=4096, description="Inputs per forward pass.")
    max_wait_ms: float = Field(
        0.0, ge=0, le=1000,
        description="How long a batch waits to fill. 0: a request runs at once when the model is "
        "idle, and what arrives while it is busy is batched.",
    )  # fmt: skip
    max_concurrent_requests: int = Field(
        128, ge=1, le=100_000,
        description="POST/PUT requests in progress at once; more wait for a turn (half the "
        "queue-wait budget), then get 429 before their body is parsed.",
    )  # fmt: skip
    queue_size: int = Field(1024, ge=1, description="Queued inputs per model and modality.")
    max_queue_wait_ms: float = Field(
        1000.0, gt=0, le=600_000,
        description="Queue-wait budget: a request that would wait longer gets 429.",
    )  # fmt: skip
    caption_batch: int = Field(16, ge=1, le=256, description="Captions decoded together.")
    caption_queue: int = Field(
        64, ge=1, description="Queued captions: more waiting than this get 429."
    )
    max_caption_tokens: int = Field(64, ge=1, le=256, description="Largest max_tokens accepted.")
    max_caption_beams: int = Field(4, ge=1, le=16, description="Largest beams accepted.")
    generate_queue: int = Field(
        8, ge=1, description="Queued /generate requests: more waiting than this get 429."
    )
    max_generate_wait_ms: float = Field(
        30_000.0, gt=0, le=600_000,
        description="Queue-wait budget of /generate: a request that would wait longer gets 429.",
    )  # fmt: skip
    max_generate_n: int = Field(8, ge=1, le=64, description="Largest n (pictures) accepted.")
    max_generate_steps: int = Field(100, ge=1, le=1000, description="Largest steps accepted.")
    min_free_bytes: str = Field(
        "256MiB", description="Free-space floor of the data directory (bytes, 256MiB, or 5%): "
        "below it writes are refused with 507, so there is always room to roll back and snapshot.",
    )  # fmt: skip
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    max_items: int = Field(256, ge=1, description="Inputs or items per request.")
    max_pixels: int = Field(40_000_000, ge=1)
    max_text_chars: int = Field(20_000, ge=1)
    max_audio_seconds: float = Field(600.0, gt=0, description="Longest decoded audio accepted.")
    max_audio_channels: int = Field(8, ge=1, le=64)
    min_audio_rate: int = Field(4_000, ge=1, description="Lowest sample rate accepted (Hz).")
    max_audio_rate: int = Field(192_000, ge=1, description="Highest sample rate accepted (Hz).")
    max_audio_bytes: int = Field(16 * 1024 * 1024, ge=1, description="Largest compressed clip.")
    audio_window_s: float | None = Field(
        None, gt=0, le=600,
        description="Long audio is embedded in windows of this many seconds (default: the "
        "model's, 10 s for the house model).",
    )  # fmt: skip
    max_video_seconds: float = Field(600.0, gt=0, description="Longest video accepted.")
    max_video_frames: int = Field(1200, ge=1, description="Most frames sampled from one video.")
    max_video_pixels: int = Field(3840 * 2160, ge=1, description="Largest frame (pixels).")
    max_video_bytes: int = Field(16 * 1024 * 1024, ge=1, description="Largest compressed video.")
    video_fps: float = Field(1.0, gt=0, le=30, description="Frames sampled per second of video.")
    video_interval_s: float = Field(
        4.0, gt=0, le=600, description="Default segment length of a video, seconds."
    )
    video_pooling: Literal["auto", "mean", "temporal"] = Field(
        "auto", description="How frames become a segment's vector: their mean, or the model's "
        "temporal head (auto: the head when the model has one).",
    )  # fmt: skip
    video_workers: int = Field(2, ge=1, le=64, description="Videos decoded at once.")
    asr: str = Field(
        "tiny.en", min_length=1,
        description="Speech recognition: a Whisper size (tiny.en is packaged; others must be in "
        "the local hub cache or downloadable), a CTranslate2 Whisper directory, or off.",
    )  # fmt: skip
    max_speech_wait_ms: float = Field(
        30_000.0, gt=0, le=600_000,
        description="Queue-wait budget of transcription: a request that would wait longer for "
        "the recogniser gets 429.",
    )  # fmt: skip
    request_timeout_s: float = Field(60.0, gt=0)
    api_keys: list[str] = Field(default_factory=list, description="Bearer tokens with full access.")
    read_only_keys: list[str] = Field(default_factory=list, description="Tokens that cannot write.")
    keys_file: Path | None = Field(None, description="JSON file of named, scoped keys (hashes).")
    media_secret: str | None = Field(
        None, min_length=16, description="Secret for signed media URLs (default: made at start-up)."
    )
    media_url_ttl: int = Field(3600, ge=1, description="Seconds a signed media URL stays valid.")
    cors_origins: list[str] = Field(default_factory=list)
    demo: bool = Field(True, description="Build the demo collection on first start.")

    @field_validator("min_free_bytes", mode="before")
    @classmethod
    def _floor(cls, v: object) -> str:
        parse_floor(v)  # raises with a message that says what a size looks like
        return str(v)

    @field_validator("model_memory", mode="before")
    @classmethod
    def _memory(cls, v: object) -> str | None:
        if v is None or v == "":
            return None
        size, fraction = parse_floor(v)
        if fraction or size <= 0:
            raise ValueError(f"{v!r} is not a memory size: give bytes (e.g. 4GiB)")
        return str(v)

    @field_validator("index_backend")
    @classmethod
    def _backend(cls, v: str) -> str:
        parse_backend(v)  # raises with the accepted forms
        return v.strip()

    @field_validator("index_device")
    @classmethod
    def _index_device_available(cls, v: str) -> str:
        try:
            resolve_device(v)
        except CollectionError as e:
            raise ValueError(str(e)) from None
        return v

    @model_validator(mode="after")
    def _served(self) -> Settings:
        """`models` given: its first is `model` (the default); both given must agree."""
        if not self.models:
            return self
        if "model" in self.model_fields_set and self.model != self.models[0]:
            raise ValueError(
                f"model '{self.model}' and models '{','.join(self.models)}' disagree: give the "
                "models in JOINTSPACE_MODELS only (the first is the default)"
            )
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"models: a spec is given twice in '{','.join(self.models)}'")
        self.model = self.models[0]
        return self

    @property
    def served(self) -> list[str]:
        """The model specs served, the default first."""
        return list(self.models) or [self.model]

    @property
    def memory_cap(self) -> int | None:
        """The models' memory cap in bytes, or None."""
        return parse_floor(self.model_memory)[0] if self.model_memory else None

    @model_validator(mode="after")
    def _combinations(self) -> Settings:
        if self.read_only_keys and not (self.api_keys or self.keys_file):
            raise ValueError(
                "read-only keys need at least one full-access key too: set JOINTSPACE_API_KEYS "
                "or JOINTSPACE_KEYS_FILE (or drop JOINTSPACE_READ_ONLY_KEYS)"
            )
        if self.min_audio_rate > self.max_audio_rate:
            raise ValueError(
                f"min_audio_rate ({self.min_audio_rate}) is over max_audio_rate "
                f"({self.max_audio_rate})"
            )
        if set(self.api_keys) & set(self.read_only_keys):
            raise ValueError("a key cannot be both full-access and read-only")
        if any(len(k) < 16 for k in self.api_keys + self.read_only_keys):
            raise ValueError("API keys must be at least 16 characters long")
        keyed = bool(self.api_keys or self.read_only_keys or self.keys_file)
        if "*" in self.cors_origins and keyed:
            raise ValueError(
                "CORS origin '*' with API keys would let any web page use a visitor's key: "
                "list the allowed origins in JOINTSPACE_CORS_ORIGINS"
            )
        if not keyed and not _is_loopback(self.host):
            raise ValueError(
                f"refusing to listen on {self.host} without API keys: set JOINTSPACE_API_KEYS or "
                "JOINTSPACE_KEYS_FILE, or bind to 127.0.0.1"
            )
        if self.index_device == "gpu" and self.index_backend != "faiss":
            raise ValueError(
                "index_device gpu applies to the faiss index_backend; Milvus runs searches on its "
                "own nodes (set JOINTSPACE_INDEX_DEVICE=auto)"
            )
        if self.max_items > self.queue_size:
            raise ValueError(
                f"max_items ({self.max_items}) is over queue_size ({self.queue_size}): a request "
                "of max_items inputs could never be queued; raise JOINTSPACE_QUEUE_SIZE"
            )
        return self

    @classmethod
    def load(cls, env: dict[str, str] | None = None, **flags) -> Settings:
        """Defaults < JOINTSPACE_* variables < flags (None flags are ignored)."""
        env = dict(os.environ if env is None else env)
        data: dict = {}
        for name, field in cls.model_fields.items():
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is None:
                continue
            ann = str(field.annotation)
            if "list" in ann:
                data[name] = [x.strip() for x in raw.split(",") if x.strip()]
            elif ann == "<class 'bool'>":
                data[name] = raw.strip().lower() in ("1", "true", "yes", "on")
            else:
                data[name] = raw
        data |= {k: v for k, v in flags.items() if v is not None}
        try:
            return cls(**data)
        except ValidationError as e:
            first = e.errors()[0]
            msg = first["msg"].removeprefix("Value error, ")
            where = ".".join(str(x) for x in first["loc"])
            if not where:
                raise SettingsError(msg) from None
            var = f" ({ENV_PREFIX}{where.upper()})" if where in cls.model_fields else ""
            raise SettingsError(f"{where}{var}: {msg}") from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
