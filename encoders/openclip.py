"""open_clip backend: any architecture in `open_clip.list_models()`.

Owns loading an open_clip model from a pretrained tag (downloaded in the user's environment), a
local checkpoint file, or random initialisation (`@random-init`, for smoke tests and benchmarks),
with the preprocessing and tokenizer open_clip pairs with those weights. A checkpoint with an
`open_clip_config.json` beside it (open_clip's own local-folder file, written for fine-tuned towers)
keeps the preprocessing recorded there: the mean, std and resizing of the tag it came from. Knows
nothing of FAISS or HTTP.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import open_clip
import torch
from PIL import Image

from encoders.base import IMAGE, TEXT, Encoder, default_dtype, resolve_device
from encoders.errors import ModelLoadError, ModelSpecError

RANDOM_INIT = "random-init"
#: open_clip's file of a model's configuration and preprocessing, beside its weights
CONFIG_FILE = "open_clip_config.json"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


def is_path_like(source: str) -> bool:
    return "/" in source or source.startswith(".") or source.endswith(CHECKPOINT_SUFFIXES)


def recorded_preprocessing(checkpoint: str | None) -> dict:
    """create_model_and_transforms' image options from the open_clip_config.json beside a
    checkpoint file (none when there is none)."""
    if checkpoint is None or not (Path(checkpoint).parent / CONFIG_FILE).is_file():
        return {}
    import json

    try:
        cfg = json.loads((Path(checkpoint).parent / CONFIG_FILE).read_text())["preprocess_cfg"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelLoadError(f"{Path(checkpoint).parent / CONFIG_FILE}: unreadable ({e})") from None
    names = {"mean": "image_mean", "std": "image_std", "interpolation": "image_interpolation",
             "resize_mode": "image_resize_mode"}  # fmt: skip
    return {names[k]: tuple(v) if isinstance(v, list) else v for k, v in cfg.items() if k in names}


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """open_clip logs load failures on the root logger; we report them once, in our error."""
    previous = logging.root.manager.disable
    logging.disable(logging.ERROR)
    try:
        yield
    finally:
        logging.disable(previous)


class OpenClipEncoder(Encoder):
    def __init__(self, arch: str, source: str, device: str | None = None) -> None:
        if arch not in open_clip.list_models():
            raise ModelSpecError(
                f"unknown open_clip architecture '{arch}' (run `jointspace models` for the list)"
            )
        pretrained = self._pretrained_arg(arch, source)
        self.device = resolve_device(device)
        self.dtype = default_dtype(self.device)
        try:
            with _quiet_root_logger():
                model, _, preprocess = open_clip.create_model_and_transforms(
                    arch, pretrained=pretrained, **recorded_preprocessing(pretrained)
                )
                tokenizer = open_clip.get_tokenizer(arch)
        except Exception as e:  # hub, file-format and state-dict errors all surface here
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelLoadError(f"could not load open_clip:{arch}@{source}: {first}") from e
        if pretrained is None:
            print(
                f"warning: open_clip:{arch}@{RANDOM_INIT} has random weights; "
                "its vectors carry no meaning",
                file=sys.stderr,
            )
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.name = f"open_clip:{arch}@{source}"
        self.dim = int(open_clip.get_model_config(arch)["embed_dim"])
        self.modalities = frozenset({TEXT, IMAGE})
        self.context_length = int(tokenizer.context_length or self.model.context_length)
        bias = getattr(self.model, "logit_bias", None)
        self.loss = "sigmoid" if bias is not None else "softmax"
        self.logit_scale = float(self.model.logit_scale.detach().float().exp())
        self.logit_bias = float(bias.detach().float()) if bias is not None else 0.0
        self._count = self._token_counter(tokenizer)

    def preprocess_cfg(self) -> dict:
        """The preprocessing these weights are served with (what a fine-tune records)."""
        return dict(getattr(self.model.visual, "preprocess_cfg", {}))

    @staticmethod
    def _pretrained_arg(arch: str, source: str) -> str | None:
        if source == RANDOM_INIT:
            return None
        if is_path_like(source):
            path = Path(source).expanduser()
            if not path.is_file():
                raise ModelLoadError(f"checkpoint file not found: {source}")
            return str(path)
        tags = open_clip.list_pretrained_tags_by_model(arch)
        if source not in tags:
            known = ", ".join(tags) if tags else "none"
            raise ModelSpecError(
                f"'{source}' is neither a checkpoint file nor a pretrained tag of {arch} "
                f"(tags: {known})"
            )
        return source

    @staticmethod
    def _token_counter(tokenizer):
        """Token count of one text including start/end tokens, before any truncation."""
        if hasattr(tokenizer, "sot_token_id") and hasattr(tokenizer, "encode"):
            return lambda texts: [len(tokenizer.encode(t)) + 2 for t in texts]
        hf = getattr(tokenizer, "tokenizer", None)
        if hf is not None:
            return lambda texts: [len(ids) for ids in hf(texts, verbose=False)["input_ids"]]
        raise ModelLoadError(f"cannot count tokens with tokenizer {type(tokenizer).__name__}")

    def _text_batch(self, texts: list[str]) -> tuple[torch.Tensor, list[int]]:
        tokens = self.tokenizer(texts).to(self.device)
        return self.model.encode_text(tokens), self._count(texts)

    def _image_batch(self, images: list[Image.Image]) -> torch.Tensor:
        pixels = torch.stack([self.preprocess(im) for im in images])
        pixels = pixels.to(device=self.device, dtype=self.dtype, non_blocking=True)
        return self.model.encode_image(pixels)
