"""The prior: text vectors to image vectors, so that a prompt can be drawn without a paired picture.

unCLIP's prior is a diffusion model over image embeddings; this one is a small residual MLP
trained on (caption vector, picture vector) pairs with a cosine loss: it predicts the mean picture
vector of a caption, across the modality gap between the house model's two towers. The decoder's
sampling noise supplies the variety. Saved beside the decoder as prior.safetensors (+ its shape in
the decoder's config.json under "prior").

Imports torch; nothing of the service, the index, fusion or training.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from generation.decoder import CONFIG, DecoderError

WEIGHTS = "prior.safetensors"


class Prior(nn.Module):
    def __init__(self, dim: int = 256, hidden: int = 1024) -> None:
        super().__init__()
        self.dim, self.hidden = dim, hidden
        self.linear = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
            nn.Linear(hidden, dim),
        )  # fmt: skip

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.linear(text) + self.mlp(text), dim=-1)

    @torch.inference_mode()
    def image_vectors(self, text_vectors: np.ndarray) -> np.ndarray:
        """(n, d) unit text vectors -> (n, d) unit image vectors, float32."""
        self.eval()
        t = torch.from_numpy(np.asarray(text_vectors, dtype=np.float32))
        if t.ndim != 2 or t.shape[1] != self.dim:
            raise DecoderError(f"the prior takes {self.dim}-d vectors, got shape {tuple(t.shape)}")
        return self(F.normalize(t, dim=-1)).numpy()


def image_side(prior: Prior | None, text_vectors: np.ndarray) -> np.ndarray:
    """Text vectors moved into the image space by the prior; as they are without one."""
    if prior is None:
        return np.asarray(text_vectors, dtype=np.float32)
    return prior.image_vectors(text_vectors)


def save_prior(folder: Path, prior: Prior) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in prior.state_dict().items()}, folder / WEIGHTS)
    cfg_path = folder / CONFIG
    cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    cfg.setdefault("extra", {})["prior"] = {"dim": prior.dim, "hidden": prior.hidden}
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")


def has_prior(folder: Path) -> bool:
    return (folder / WEIGHTS).is_file()


def load_prior(folder: Path) -> Prior:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        shape = json.loads((folder / CONFIG).read_text())["extra"]["prior"]
        prior = Prior(int(shape["dim"]), int(shape["hidden"]))
        prior.load_state_dict(load_file(folder / WEIGHTS))
    except (KeyError, TypeError, ValueError, RuntimeError, OSError, SafetensorError) as e:
        raise DecoderError(f"cannot load the prior at {folder}: {str(e).splitlines()[0]}") from e
    return prior.eval()
