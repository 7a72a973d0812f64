"""The captioner: a joint-space vector becomes a sentence, ClipCap style. A small MLP (the mapper)
turns one unit vector into `prefix` embeddings of a frozen causal language model, which writes
the caption after them. Because the mapper reads joint-space vectors, one captioner serves every
tower bound to that space (images, sounds, video frames).

Owns the mapper, decoding (greedy or beam search, a token cap, a stop at the end of the first
sentence, a batch decoded together) and the captioner's files (mapper weights and a JSON config;
the language model itself comes from generation.lm). Must not import the index, the service or
training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from encoders.errors import JointspaceError
from encoders.registry import models_with

WEIGHTS, CONFIG = "mapper.safetensors", "captioner.json"


class CaptionerError(JointspaceError):
    """A captioner that cannot be loaded, or vectors it cannot caption."""


class NoCaptioner(JointspaceError):
    """The served model has no captioner."""


class Mapper(nn.Module):
    """One joint-space vector (n, dim) -> `prefix` language-model embeddings (n, prefix, lm_dim)."""

    def __init__(self, dim: int, lm_dim: int, prefix: int, hidden: int = 1024) -> None:
        super().__init__()
        self.prefix, self.lm_dim = prefix, lm_dim
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, prefix * lm_dim)
        )

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.net(v).view(len(v), self.prefix, self.lm_dim)


@dataclass
class Captioner:
    mapper: Mapper
    lm: nn.Module
    tok: object
    dim: int
    lm_name: str
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mapper.eval()
        period = self.tok.convert_tokens_to_ids(".")
        self.stop_ids = [
            i for i in (self.tok.eos_token_id, period) if isinstance(i, int) and i >= 0
        ]

    def prefix(self, vectors: np.ndarray | torch.Tensor) -> torch.Tensor:
        v = torch.as_tensor(np.asarray(vectors, np.float32))
        if v.ndim != 2 or v.shape[1] != self.dim:
            raise CaptionerError(
                f"the captioner reads {self.dim}-d vectors, got shape {tuple(v.shape)}"
            )
        return self.mapper(nn.functional.normalize(v, dim=1))

    def caption(self, vectors: np.ndarray, max_tokens: int = 30, beams: int = 1) -> list[str]:
        """One sentence per vector, decoded together (greedy when beams == 1)."""
        return [text for text, _ in self.caption_counted(vectors, max_tokens, beams)]

    @torch.no_grad()
    def caption_counted(
        self, vectors: np.ndarray, max_tokens: int = 30, beams: int = 1
    ) -> list[tuple[str, int]]:
        """(sentence, tokens generated) per vector."""
        if len(vectors) == 0:
            return []
        emb = self.prefix(vectors)
        out = self.lm.generate(
            inputs_embeds=emb, attention_mask=torch.ones(emb.shape[:2], dtype=torch.long),
            max_new_tokens=max_tokens, num_beams=beams, do_sample=False,
            eos_token_id=self.stop_ids, pad_token_id=self.tok.eos_token_id,
        )  # fmt: skip
        texts = self.tok.batch_decode(out, skip_special_tokens=True)
        counts = [_generated(row, self.tok.eos_token_id) for row in out.tolist()]
        return [(first_sentence(t), n) for t, n in zip(texts, counts, strict=True)]

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        # float16 on disk halves the file (5 MB for the house mapper); it loads back as float32
        weights = {k: t.half().contiguous() for k, t in self.mapper.state_dict().items()}
        save_file(weights, folder / WEIGHTS)
        cfg = {"dim": self.dim, "lm": self.lm_name, "lm_dim": self.mapper.lm_dim,
               "prefix": self.mapper.prefix, "hidden": self.mapper.net[0].out_features,
               "info": self.info}  # fmt: skip
        (folder / CONFIG).write_text(json.dumps(cfg, indent=2) + "\n")


def _generated(row: list[int], eos: int) -> int:
    """Tokens a decoded row holds before its end token (the end token and padding excluded)."""
    return row.index(eos) if eos in row else len(row)


def first_sentence(text: str) -> str:
    """The text up to and including its first full stop, whitespace collapsed."""
    text = " ".join(text.split())
    end = text.find(".")
    return text[: end + 1] if end >= 0 else text


def has_captioner(folder: Path) -> bool:
    return (folder / CONFIG).is_file() and (folder / WEIGHTS).is_file()


def captioner_dir(encoder) -> Path | None:
    """Where the encoder's captioner part lives (`Encoder.parts`), if it has one."""
    folder = getattr(encoder, "parts", {}).get("captioner")
    return Path(folder) if folder is not None and has_captioner(Path(folder)) else None


def require_captioner(encoder) -> Path:
    """The encoder's captioner folder, or NoCaptioner naming the models that have one."""
    folder = captioner_dir(encoder)
    if folder is None:
        raise NoCaptioner(
            f"model '{encoder.name}' has no captioner; models with one: {models_with('captioner')}"
        )
    return folder


def read_config(folder: Path) -> dict:
    try:
        return json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError) as e:
        raise CaptionerError(f"{folder}: not a captioner ({e})") from None


def load_captioner(folder: Path, lm=None, tok=None) -> Captioner:
    """The captioner saved in `folder`, with the language model its config names (or the given
    one, as tests pass their tiny models)."""
    from safetensors.torch import load_file

    from generation.lm import load_language_model

    cfg = read_config(folder)
    if lm is None:
        lm, tok = load_language_model(None if cfg["lm"] == "smollm2" else cfg["lm"])
    lm_dim = lm.get_input_embeddings().embedding_dim
    if lm_dim != cfg["lm_dim"]:
        raise CaptionerError(
            f"{folder}: the mapper writes {cfg['lm_dim']}-d prefixes, the language model reads "
            f"{lm_dim}-d"
        )
    mapper = Mapper(cfg["dim"], cfg["lm_dim"], cfg["prefix"], cfg["hidden"])
    try:
        mapper.load_state_dict({k: t.float() for k, t in load_file(folder / WEIGHTS).items()})
    except (OSError, RuntimeError) as e:
        raise CaptionerError(f"{folder}: the mapper's weights do not load ({e})") from None
    return Captioner(mapper, lm, tok, cfg["dim"], cfg["lm"], cfg.get("info", {}))
