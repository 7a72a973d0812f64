"""The house audio tower: a small ConvNet over log-mel features that lands in the house joint space.

Trained against the house model's frozen text (and image) towers, ImageBind-style, so adding it
changes no existing tower or collection. A house model directory may hold it in `audio/`
(`config.json` + `model.safetensors`). The log-mel front end (torchaudio) is part of the module, so
preprocessing travels with the weights. Knows nothing of FAISS or HTTP.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from encoders.errors import ModelLoadError

WEIGHTS = "model.safetensors"


@dataclass
class AudioConfig:
    embed_dim: int = 256
    sample_rate: int = 16_000
    n_mels: int = 64
    n_fft: int = 400  # 25 ms
    hop: int = 160  # 10 ms
    widths: list[int] = field(default_factory=lambda: [16, 32, 64, 128, 256])
    depths: list[int] = field(default_factory=lambda: [1, 1, 1, 2, 2])  # convs per stage
    # log-mel standardisation, measured on the training data
    mel_mean: float = -6.0
    mel_std: float = 4.0


def _block(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.GELU()]


class AudioTower(nn.Module):
    """Waveform (n, samples) -> log-mel (n, 1, mels, frames) -> conv stages -> (n, embed_dim).

    The stem (a strided 3x3 convolution and a 2x2 max-pool) quarters both axes, so the costly
    layers run at 40 ms frames; each later stage is `depth` 3x3 convolutions and, but for the
    last, a 2x2 max-pool. The frequency axis is averaged away, the time axis is mean- and
    max-pooled (mean hears a whole phrase, max catches a short event), and a linear layer projects
    into the joint space.
    """

    def __init__(self, cfg: AudioConfig) -> None:
        super().__init__()
        import torchaudio

        self.cfg = cfg
        self.mel = torchaudio.transforms.MelSpectrogram(
            cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop, n_mels=cfg.n_mels
        )
        layers = [*_block(1, cfg.widths[0], stride=2), nn.MaxPool2d(2, ceil_mode=True)]
        c_in = cfg.widths[0]
        for i, (c, depth) in enumerate(zip(cfg.widths[1:], cfg.depths[1:], strict=True)):
            for d in range(depth):
                layers += _block(c_in if d == 0 else c, c)
            if i < len(cfg.widths) - 2:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            c_in = c
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(2 * cfg.widths[-1], cfg.embed_dim)

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        with torch.autocast(wave.device.type, enabled=False):
            m = torch.log(self.mel(wave.float()) + 1e-6)
        return ((m - self.cfg.mel_mean) / self.cfg.mel_std).unsqueeze(1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        h = self.features(self.log_mel(wave)).mean(dim=2)  # (n, C, frames)
        return self.proj(torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=-1))

    def embed_clips(self, waves: list[torch.Tensor]) -> torch.Tensor:
        """Clips of any lengths in one pass, each giving exactly what it gives alone.

        Each clip's log-mel is computed on its own (the STFT reflects at a clip's edges) and
        zero-padded to the longest; after every block the padded frames are zeroed again (what a
        convolution's own zero padding shows a clip alone), max-pools see them as -inf, and the
        final pooling covers each clip's own frames only.
        """
        if len({len(w) for w in waves}) == 1:  # nothing to pad: the plain pass is the same
            return self(torch.stack(waves))
        mels = [self.log_mel(w[None])[0] for w in waves]  # (1, mels, frames) each
        frames = torch.tensor([m.shape[-1] for m in mels], device=mels[0].device)
        x = torch.zeros(len(mels), 1, mels[0].shape[1], int(frames.max()), device=frames.device)
        for i, m in enumerate(mels):
            x[i, :, :, : m.shape[-1]] = m
        t = frames
        for layer in self.features:
            if isinstance(layer, nn.MaxPool2d):
                x = x.masked_fill(~_valid(t, x), float("-inf"))
                x, t = layer(x), (t + 1) // 2
                x = x.masked_fill(~_valid(t, x), 0.0)
                continue
            x = layer(x)
            if isinstance(layer, nn.Conv2d) and layer.stride[-1] > 1:
                t = (t + layer.stride[-1] - 1) // layer.stride[-1]
            if isinstance(layer, nn.GELU):
                x = x * _valid(t, x)
        h = x.mean(dim=2)  # (n, C, frames)
        keep = _valid(t, x)[:, :, 0, :]  # (n, 1, frames)
        mean = (h * keep).sum(-1) / t[:, None]
        peak = h.masked_fill(~keep, float("-inf")).amax(dim=-1)
        return self.proj(torch.cat([mean, peak], dim=-1))


def _valid(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(n, 1, 1, frames) booleans: which time steps of `x` lie within each clip's length `t`."""
    steps = torch.arange(x.shape[-1], device=x.device)
    return (steps[None, :] < t[:, None])[:, None, None, :]


def _weights_only(tower: AudioTower) -> dict[str, torch.Tensor]:
    """The trained state without the front end's fixed buffers (rebuilt from the config)."""
    return {k: v for k, v in tower.state_dict().items() if not k.startswith("mel.")}


def save_audio_tower(path: Path, cfg: AudioConfig, tower: AudioTower) -> None:
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in _weights_only(tower).items()}
    save_file(state, path / WEIGHTS)
    (path / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")


def has_audio_tower(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / WEIGHTS).is_file()


def load_audio_tower(path: Path) -> tuple[AudioConfig, AudioTower]:
    from safetensors.torch import load_file

    if not has_audio_tower(path):
        raise ModelLoadError(f"no audio tower at {path} (expected config.json and {WEIGHTS})")
    try:
        cfg = AudioConfig(**json.loads((path / "config.json").read_text()))
        tower = AudioTower(cfg)
        missing, unexpected = tower.load_state_dict(load_file(path / WEIGHTS), strict=False)
        if unexpected or any(not k.startswith("mel.") for k in missing):
            raise ValueError(f"weights do not match the config (missing {missing[:3]})")
    except (TypeError, ValueError, RuntimeError, OSError) as e:
        raise ModelLoadError(
            f"cannot load the audio tower at {path}: {str(e).splitlines()[0]}"
        ) from e
    return cfg, tower
