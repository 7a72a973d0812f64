"""transformers backend: CLIPModel, SiglipModel, Siglip2Model, AlignModel (text + image) and
ClapModel (text + audio).

Owns loading a dual-encoder from a hub id (downloaded in the user's environment) or a local
directory written by `save_pretrained`, with the tokenizer and the image processor or audio
feature extractor saved beside the weights, and each family's text-padding rule. Knows nothing of
FAISS or HTTP.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoImageProcessor,
    AutoModel,
    AutoTokenizer,
)
from transformers.utils import logging as hf_logging

from encoders.base import AUDIO, IMAGE, TEXT, Encoder, default_dtype, resolve_device
from encoders.errors import ModelLoadError, ModelSpecError

# model_type -> (padding, text inputs the model takes, loss). SigLIP pools the *last* token and was
# trained on text padded to a fixed 64 tokens without an attention mask: padding="longest" silently
# wrecks its zero-shot accuracy, so it is padded to max_length and fed input_ids only, as its
# processor does. SigLIP 2's processor pads the same way and does pass the mask.
FAMILIES = {
    "clip": ("longest", ("input_ids", "attention_mask"), "softmax"),
    "siglip": ("max_length", ("input_ids",), "sigmoid"),
    "siglip2": ("max_length", ("input_ids", "attention_mask"), "sigmoid"),
    "align": ("max_length", ("input_ids", "attention_mask", "token_type_ids"), "softmax"),
    "clap": ("longest", ("input_ids", "attention_mask"), "softmax"),
}
AUDIO_FAMILIES = {"clap"}
ALIGN_MAX_LENGTH = 64  # AlignProcessor's default text length


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _features(out) -> torch.Tensor:
    """transformers 5 returns a ModelOutput whose pooler_output holds the projected features."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class HFEncoder(Encoder):
    def __init__(self, source: str, device: str | None = None) -> None:
        local = Path(source).expanduser()
        if (source.startswith((".", "/", "~")) or local.exists()) and not local.is_dir():
            raise ModelLoadError(f"model directory not found: {source}")
        where = str(local) if local.is_dir() else source
        try:
            config = AutoConfig.from_pretrained(where)
        except Exception as e:
            raise ModelLoadError(f"could not load hf:{source}: {_first_line(e)}") from e
        family = config.model_type
        if family not in FAMILIES:
            raise ModelSpecError(
                f"hf:{source} is a '{family}' model; supported: {', '.join(sorted(FAMILIES))}"
            )
        self.device = resolve_device(device)
        self.dtype = default_dtype(self.device)
        hf_logging.disable_progress_bar()  # the CLI and service draw their own progress
        try:
            model = AutoModel.from_pretrained(where)
            self.tokenizer = AutoTokenizer.from_pretrained(where)
            if family in AUDIO_FAMILIES:
                self.feature_extractor = AutoFeatureExtractor.from_pretrained(where)
            else:
                self.image_processor = AutoImageProcessor.from_pretrained(where)
        except Exception as e:
            raise ModelLoadError(f"could not load hf:{source}: {_first_line(e)}") from e
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.family = family
        self.padding, self.text_inputs, self.loss = FAMILIES[family]
        self.name = f"hf:{source}"
        self.modalities = frozenset({TEXT, IMAGE})
        if family in AUDIO_FAMILIES:
            fe = self.feature_extractor
            self.modalities = frozenset({TEXT, AUDIO})
            self.audio_rate = int(fe.sampling_rate)
            # The extractor cuts anything longer than its window at random: windows never are.
            self.audio_window = self.max_audio_window = fe.nb_max_samples / fe.sampling_rate
            self.audio_batch_size = 8
            self.audio_any_length = True  # the extractor pads each clip alone, to its window
        self.context_length = self._context_length(config)
        # CLAP keeps the audio side's temperature (log) as logit_scale_a
        scale = getattr(self.model, "logit_scale", getattr(self.model, "logit_scale_a", None))
        if isinstance(scale, torch.Tensor):  # ALIGN keeps a plain temperature instead
            self.logit_scale = float(scale.detach().float().exp())
        elif hasattr(self.model, "temperature"):
            self.logit_scale = float(1 / self.model.temperature.detach().float())
        bias = getattr(self.model, "logit_bias", None)
        if isinstance(bias, torch.Tensor):
            self.logit_bias = float(bias.detach().float())
        with torch.inference_mode():
            self.dim = int(self._text_batch(["a"])[0].shape[-1])

    def _context_length(self, config) -> int:
        if self.family == "align":
            return ALIGN_MAX_LENGTH
        limit = int(config.text_config.max_position_embeddings)
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and 0 < tok_max < limit:
            limit = tok_max
        return limit

    def _text_batch(self, texts: list[str]) -> tuple[torch.Tensor, list[int]]:
        counts = [len(ids) for ids in self.tokenizer(texts, verbose=False)["input_ids"]]
        enc = self.tokenizer(
            texts,
            padding=self.padding,
            truncation=True,
            max_length=self.context_length,
            return_tensors="pt",
        )
        inputs = {k: enc[k].to(self.device) for k in self.text_inputs if k in enc}
        return _features(self.model.get_text_features(**inputs)), counts

    def _image_batch(self, images: list[Image.Image]) -> torch.Tensor:
        enc = self.image_processor(images=images, return_tensors="pt")
        inputs = {
            k: v.to(self.device, dtype=self.dtype if v.is_floating_point() else v.dtype)
            for k, v in enc.items()
        }
        return _features(self.model.get_image_features(**inputs))

    def _audio_batch(self, clips: list[np.ndarray]) -> torch.Tensor:
        enc = self.feature_extractor(clips, sampling_rate=self.audio_rate, return_tensors="pt")
        inputs = {
            k: v.to(self.device, dtype=self.dtype if v.is_floating_point() else v.dtype)
            for k, v in enc.items()
        }
        return _features(self.model.get_audio_features(**inputs))
