"""The temporal head: a small transformer over a video's frame vectors with positions (CLIP4Clip's
seqTransf), whose output stays in the image space: a segment's vector is the mean of its frame
vectors plus what the head adds, normalised. Its last layer starts at zero, so an untrained head
is mean pooling; training teaches it what order means ("from red to blue" vs "from blue to red").

Owns the module, its config, and its files (`config.json` + `model.safetensors` in a model's
`temporal/` folder). Imports torch and safetensors; nothing of the service, FAISS or training.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from encoders.errors import ModelLoadError

WEIGHTS = "model.safetensors"


@dataclass
class TemporalConfig:
    dim: int = 256
    layers: int = 2
    heads: int = 4
    ff: int = 512
    #: positions learned; a longer span is resampled to this many frames, evenly spaced
    max_frames: int = 32
    #: the sampling rate the head was trained at (a position is a frame at this rate)
    fps: float = 1.0


class TemporalHead(nn.Module):
    def __init__(self, cfg: TemporalConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.pos = nn.Parameter(torch.randn(cfg.max_frames, cfg.dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            cfg.dim, cfg.heads, cfg.ff, dropout=0.0, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.out = nn.Linear(cfg.dim, cfg.dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, frames: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        """(n, T, dim) frame vectors, `pad` (n, T) True where a sequence has ended -> (n, dim)
        unit vectors."""
        t = frames.shape[1]
        h = self.blocks(frames + self.pos[:t], src_key_padding_mask=pad)
        y = frames + self.out(h)
        keep = (~pad).float()[..., None] if pad is not None else torch.ones_like(y[..., :1])
        pooled = (y * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        return pooled / pooled.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    @torch.inference_mode()
    def pool(self, spans: list[np.ndarray]) -> np.ndarray:
        """One unit vector per span of frame vectors ((t_i, dim) each, any lengths), all spans in
        one padded batch; a span longer than `max_frames` is resampled evenly."""
        cap = self.cfg.max_frames
        spans = [s[np.linspace(0, len(s) - 1, cap).round().astype(int)] if len(s) > cap else s
                 for s in spans]  # fmt: skip
        t = max(len(s) for s in spans)
        x = torch.zeros(len(spans), t, self.cfg.dim)
        pad = torch.ones(len(spans), t, dtype=torch.bool)
        for i, s in enumerate(spans):
            x[i, : len(s)] = torch.from_numpy(np.asarray(s, np.float32))
            pad[i, : len(s)] = False
        dev = self.pos.device
        return self(x.to(dev), pad.to(dev)).float().cpu().numpy()


def has_temporal_head(path: Path) -> bool:
    return (path / WEIGHTS).is_file() and (path / "config.json").is_file()


def save_temporal_head(path: Path, head: TemporalHead) -> None:
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(asdict(head.cfg), indent=2) + "\n")
    save_file({k: v.detach().contiguous() for k, v in head.state_dict().items()}, path / WEIGHTS)


def load_temporal_head(path: Path, dim: int) -> TemporalHead:
    """The head in `path`, checked against the vector length `dim` of the model it serves."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        cfg = TemporalConfig(**json.loads((path / "config.json").read_text()))
        head = TemporalHead(cfg)
        head.load_state_dict(load_file(path / WEIGHTS))
    except (TypeError, ValueError, RuntimeError, OSError, SafetensorError) as e:
        raise ModelLoadError(f"cannot load the temporal head at {path}: "
                             f"{str(e).splitlines()[0]}") from e  # fmt: skip
    if cfg.dim != dim:
        raise ModelLoadError(f"{path}: the temporal head is {cfg.dim}-d, the model {dim}-d")
    return head.eval()
