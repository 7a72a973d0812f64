"""The image decoder: a small conditional diffusion model that draws a picture from a joint-space
image vector, as unCLIP's decoder does from CLIP image embeddings.

The network is diffusers' `UNet2DModel`; the vector is projected by a small MLP and added to the
UNet's time embedding (`class_embed_type="identity"`), which scales and shifts every block's
features (FiLM): much cheaper on a CPU than cross-attention. Classifier-free guidance: in
training the vector is replaced at random by a learned null vector; sampling mixes the two
predictions, `e_null + g * (e_vec - e_null)`. Sampling is diffusers' DDIM scheduler (eta 0, so a
seed fixes the picture) stepped over the UNet.

A decoder folder (`models/house/decoder/`) holds config.json, decoder.safetensors and, when one is
trained, the prior (generation.prior). Imports torch and diffusers; nothing of the service, the
index, fusion or training.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from encoders.errors import JointspaceError
from encoders.registry import models_with

WEIGHTS = "decoder.safetensors"
CONFIG = "config.json"
# Defaults of /generate, `jointspace generate` and the eval, chosen by the generation suite's
# sweeps (guidance scale; weight of a modification's terms against the image vector's 1.0).
DEFAULT_GUIDANCE = 1.0
MODIFICATION_WEIGHT = 0.5


class NoDecoder(JointspaceError):
    """The model has no image decoder; the message names the models that have one."""


class DecoderError(JointspaceError):
    """A decoder folder that cannot be loaded, or a request the decoder cannot serve."""


@dataclass
class DecoderConfig:
    embed_dim: int = 256
    image_size: int = 32
    channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    norm_groups: int = 8
    # "scale_shift": the time + vector embedding scales and shifts each block's features (FiLM),
    # which is how a tint reaches every channel; "default" only adds a bias
    time_scale_shift: str = "scale_shift"
    train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    extra: dict = field(default_factory=dict)  # what the trainer records (model name, ...)

    @classmethod
    def from_dict(cls, d: dict) -> DecoderConfig:
        d = dict(d)
        d["channels"] = tuple(d.get("channels", cls.channels))
        return cls(**d)

    def schedule(self) -> dict:
        """The noise schedule, shared by training (DDPM) and sampling (DDIM)."""
        return {"num_train_timesteps": self.train_timesteps, "beta_schedule": self.beta_schedule}


class ImageDecoder(nn.Module):
    """UNet over (3, S, S) pixels in [-1, 1], predicting the noise, conditioned on a vector."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        from diffusers import UNet2DModel

        self.cfg = cfg
        n = len(cfg.channels)
        self.unet = UNet2DModel(
            sample_size=cfg.image_size, in_channels=3, out_channels=3,
            block_out_channels=cfg.channels, layers_per_block=cfg.layers_per_block,
            down_block_types=("DownBlock2D",) * n, up_block_types=("UpBlock2D",) * n,
            class_embed_type="identity", norm_num_groups=cfg.norm_groups,
            resnet_time_scale_shift=cfg.time_scale_shift,
        )  # fmt: skip
        width = self.unet.time_embedding.linear_2.out_features
        self.cond = nn.Sequential(
            nn.Linear(cfg.embed_dim, width), nn.SiLU(), nn.Linear(width, width)
        )
        self.null = nn.Parameter(torch.zeros(cfg.embed_dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, v: torch.Tensor,
                keep: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """Predicted noise; rows where `keep` is False see the null vector instead of theirs."""
        if keep is not None:
            v = torch.where(keep[:, None], v, self.null.expand_as(v))
        return self.unet(x, t, class_labels=self.cond(v)).sample


def _check_vectors(vectors: np.ndarray, dim: int) -> torch.Tensor:
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim != 2 or v.shape[1] != dim:
        raise DecoderError(f"the decoder takes {dim}-d vectors, got shape {tuple(v.shape)}")
    if not np.isfinite(v).all():
        raise DecoderError("vectors must be finite numbers")
    return F.normalize(torch.from_numpy(v), dim=-1)


@torch.inference_mode()
def sample(decoder: ImageDecoder, vectors: np.ndarray, steps: int = 25,
           guidance: float = DEFAULT_GUIDANCE, seed: int = 0) -> np.ndarray:  # fmt: skip
    """(n, S, S, 3) uint8 pictures of n vectors; the same arguments give the same pixels."""
    from diffusers import DDIMScheduler

    decoder.eval()
    v = _check_vectors(vectors, decoder.cfg.embed_dim)
    sched = DDIMScheduler(**decoder.cfg.schedule(), clip_sample=True)
    sched.set_timesteps(steps)
    s = decoder.cfg.image_size
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((len(v), 3, s, s), generator=gen)
    keep = torch.cat([torch.ones(len(v), dtype=torch.bool), torch.zeros(len(v), dtype=torch.bool)])
    for t in sched.timesteps:
        if guidance == 1.0:
            eps = decoder(x, t, v)
        else:
            cond, null = decoder(torch.cat([x, x]), t, torch.cat([v, v]), keep).chunk(2)
            eps = null + guidance * (cond - null)
        x = sched.step(eps, t, x).prev_sample
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def save_decoder(folder: Path, decoder: ImageDecoder) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in decoder.state_dict().items()}
    save_file(state, folder / WEIGHTS)
    cfg = asdict(decoder.cfg)
    if (folder / CONFIG).is_file():  # keep what a prior saved beside it first
        cfg["extra"] = json.loads((folder / CONFIG).read_text()).get("extra", {}) | cfg["extra"]
    (folder / CONFIG).write_text(json.dumps(cfg, indent=2) + "\n")


def has_decoder(folder: Path) -> bool:
    return (folder / CONFIG).is_file() and (folder / WEIGHTS).is_file()


def load_decoder(folder: Path) -> ImageDecoder:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not has_decoder(folder):
        raise DecoderError(f"no image decoder at {folder} (expected {CONFIG} and {WEIGHTS})")
    try:
        cfg = DecoderConfig.from_dict(json.loads((folder / CONFIG).read_text()))
        dec = ImageDecoder(cfg)
        dec.load_state_dict(load_file(folder / WEIGHTS))
    except (TypeError, ValueError, RuntimeError, OSError, SafetensorError) as e:
        raise DecoderError(
            f"cannot load the image decoder at {folder}: {str(e).splitlines()[0]}"
        ) from e
    return dec.eval()


def decoder_dir(encoder) -> Path | None:
    """The encoder's decoder part's folder (`Encoder.parts`), or None when it has none."""
    folder = getattr(encoder, "parts", {}).get("decoder")
    return Path(folder) if folder is not None and has_decoder(Path(folder)) else None


def require_decoder(encoder) -> Path:
    folder = decoder_dir(encoder)
    if folder is None:
        raise NoDecoder(
            f"model '{encoder.name}' has no image decoder; "
            f"models with one: {models_with('decoder')}"
        )
    return folder
