"""Any base's two towers as one trainable module, for fine-tuning them on the user's pairs.

`towers_of(encoder)` wraps the towers of an open_clip model, a transformers CLIP / SigLIP /
SigLIP 2 model or the house model (a copy, in float32: the encoder stays as it was) behind one
interface: the base's own preprocessing and tokenizer turn pictures and captions into inputs,
`forward(pixels, *text)` returns the normalised features the contrastive losses take, and `save`
writes the towers back in the base's own format (safetensors), loadable by the same backend.
`prepare(towers, mode)` says which weights train:

- lora: low-rank adapters (peft) on every attention and linear layer whose forward runs, and on
  the convolutions of a convolutional image tower, the base frozen; `merge` folds them into the
  weights before `save`, so the saved towers are plain towers of the base's architecture;
- full: every weight of both towers (the house's MiniLM trunk is frozen by design);
- lit: the text side only; the image tower locked (LiT), so stored image vectors keep their meaning;
- head: the projections only (SigLIP's pooling heads, the house's last layers).

A base or mode that cannot be fine-tuned raises CannotTune saying which and why. The temperature
(and bias) belong to the loss, not to the towers; `save` writes the trained ones into the model.
Imports encoders, peft and torch; nothing of the service, the index or jobs.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from encoders.base import IMAGE, TEXT, Encoder

MODES = ("lora", "full", "lit", "head")
#: the transformers families whose two towers fine-tune (text + image, CLIP-style heads)
HF_FAMILIES = ("clip", "siglip", "siglip2")


class CannotTune(ValueError):
    """A base or mode that cannot be fine-tuned; the message says which and why."""


class Towers(nn.Module):
    """Two towers over one model: `image_inputs`/`text_inputs` preprocess, `forward` embeds."""

    backend = ""
    #: parameters of the model that are the loss's, never trained as tower weights
    temperature = ("logit_scale", "logit_bias")

    def __init__(self, enc: Encoder, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.base_name = enc.name
        self.loss_kind = enc.loss  # softmax or sigmoid: how the base scores
        self.logit_scale, self.logit_bias = float(enc.logit_scale), float(enc.logit_bias)

    # -- what the subclasses say ---------------------------------------------------------------
    def image_inputs(self, images: list[Image.Image]) -> torch.Tensor:
        raise NotImplementedError

    def text_inputs(self, captions: list[str]) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode_text(self, *text: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def is_image(self, name: str) -> bool:
        """Whether the model's parameter (or module) `name` belongs to the image tower."""
        raise NotImplementedError

    def is_projection(self, name: str) -> bool:
        raise NotImplementedError

    def save(self, folder: Path, scale: float, bias: float | None) -> tuple[str, str]:
        """The towers (with the loss's temperature and bias) written into `folder`; returns
        (the spec naming them, relative to the folder's parent, as 'towers' stands for the
        folder; the weights file's name)."""
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------------
    def forward(self, pixels: torch.Tensor, *text: torch.Tensor):
        return (F.normalize(self.encode_image(pixels), dim=-1),
                F.normalize(self.encode_text(*text), dim=-1))  # fmt: skip

    def is_temperature(self, name: str) -> bool:
        return name in self.temperature

    def prefetch(self, captions: list[str]) -> None:
        """Prepare what the captions' inputs need once (the house: its frozen trunk's vectors)."""

    def sample(self) -> tuple:
        """A tiny batch of inputs (two pictures, two captions) for probing the towers."""
        pics = [Image.new("RGB", (32, 32), c) for c in ((200, 30, 30), (30, 30, 200))]
        return (self.image_inputs(pics), *self.text_inputs(["a red square", "a blue square"]))


# -- open_clip ---------------------------------------------------------------------------------
class OpenClipTowers(Towers):
    backend = "open_clip"

    def __init__(self, enc: Encoder) -> None:
        super().__init__(enc, copy.deepcopy(enc.model).float())
        self.arch = enc.name.removeprefix("open_clip:").partition("@")[0]
        self.preprocess, self.tokenizer = enc.preprocess, enc.tokenizer
        self.preprocess_cfg = enc.preprocess_cfg()

    def image_inputs(self, images):
        return torch.stack([self.preprocess(im.convert("RGB")) for im in images])

    def text_inputs(self, captions):
        return (self.tokenizer(captions),)

    def encode_image(self, pixels):
        return self.model.encode_image(pixels)

    def encode_text(self, tokens):
        return self.model.encode_text(tokens)

    def is_image(self, name):
        return name == "visual" or name.startswith("visual.")

    def is_projection(self, name):
        return name in ("visual.proj", "text_projection") or name.startswith(
            ("visual.head.", "visual.attnpool.", "text.proj", "visual.proj.", "text_projection.")
        )

    def save(self, folder, scale, bias):
        import open_clip
        from safetensors.torch import save_file

        from encoders.openclip import CONFIG_FILE

        with torch.no_grad():
            self.model.logit_scale.fill_(math.log(scale))
            if bias is not None and getattr(self.model, "logit_bias", None) is not None:
                self.model.logit_bias.fill_(bias)
        folder.mkdir(parents=True, exist_ok=True)
        weights = "open_clip_model.safetensors"
        state = {k: v.detach().cpu().contiguous().clone()
                 for k, v in self.model.state_dict().items()}  # fmt: skip
        save_file(state, folder / weights)
        cfg = {"model_cfg": open_clip.get_model_config(self.arch),
               "preprocess_cfg": self.preprocess_cfg}  # fmt: skip
        (folder / CONFIG_FILE).write_text(json.dumps(cfg, indent=1, default=list) + "\n")
        return f"open_clip:{self.arch}@{{folder}}/{weights}", weights


# -- transformers --------------------------------------------------------------------------------
class HFTowers(Towers):
    backend = "hf"

    def __init__(self, enc: Encoder) -> None:
        super().__init__(enc, copy.deepcopy(enc.model).float())
        self.tokenizer, self.image_processor = enc.tokenizer, enc.image_processor
        self.padding, self.keys, self.context_length = (
            enc.padding, enc.text_inputs, enc.context_length,
        )  # fmt: skip

    def image_inputs(self, images):
        return self.image_processor(images=[im.convert("RGB") for im in images],
                                    return_tensors="pt")["pixel_values"]  # fmt: skip

    def text_inputs(self, captions):
        enc = self.tokenizer(captions, padding=self.padding, truncation=True,
                             max_length=self.context_length, return_tensors="pt")  # fmt: skip
        self.keys = tuple(k for k in self.keys if k in enc)
        return tuple(enc[k] for k in self.keys)

    def encode_image(self, pixels):
        from encoders.hf import _features

        return _features(self.model.get_image_features(pixel_values=pixels))

    def encode_text(self, *text):
        from encoders.hf import _features

        return _features(self.model.get_text_features(**dict(zip(self.keys, text, strict=True))))

    def is_image(self, name):
        return name.startswith(("vision_model", "visual_projection"))

    def is_projection(self, name):
        return name.startswith(("visual_projection", "text_projection", "vision_model.head",
                                "text_model.head"))  # fmt: skip

    def save(self, folder, scale, bias):
        with torch.no_grad():
            if isinstance(getattr(self.model, "logit_scale", None), torch.Tensor):
                self.model.logit_scale.fill_(math.log(scale))
            if bias is not None and isinstance(getattr(self.model, "logit_bias", None),
                                               torch.Tensor):  # fmt: skip
                self.model.logit_bias.fill_(bias)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        self.image_processor.save_pretrained(folder)
        return "hf:{folder}", "model.safetensors"


# -- the house towers ----------------------------------------------------------------------------
class HousePair(nn.Module):
    def __init__(self, image: nn.Module, text: nn.Module) -> None:
        super().__init__()
        self.image, self.text = image, text


class HouseTowers(Towers):
    """The house image tower and text head; the frozen MiniLM trunk's vector of each caption is
    computed once and kept (the trunk never trains)."""

    backend = "house"

    def __init__(self, enc: Encoder) -> None:
        pair = HousePair(copy.deepcopy(enc.image_tower), copy.deepcopy(enc.text_head)).float()
        super().__init__(enc, pair)
        self.cfg, self.minilm = copy.deepcopy(enc.cfg), enc.minilm
        self._vectors: dict[str, torch.Tensor] = {}

    def image_inputs(self, images):
        from encoders.house import preprocess

        return torch.stack([preprocess(im, self.cfg) for im in images])

    def prefetch(self, captions):
        """Every caption's trunk vector, in sorted chunks: the same vectors whatever order the
        batches later ask for them in (a resumed run's too)."""
        self.text_inputs(sorted(set(captions)))

    def text_inputs(self, captions):
        new = list(dict.fromkeys(c for c in captions if c not in self._vectors))
        for i in range(0, len(new), 256):
            for c, v in zip(new[i : i + 256], self.minilm.embed(new[i : i + 256]).cpu(),
                            strict=True):  # fmt: skip
                self._vectors[c] = v
        return (torch.stack([self._vectors[c] for c in captions]),)

    def encode_image(self, pixels):
        return self.model.image(pixels)

    def encode_text(self, vectors):
        return self.model.text(vectors)

    def is_image(self, name):
        return name == "image" or name.startswith("image.")

    def is_projection(self, name):
        last = f"text.net.{len(self.model.text.net) - 1}."
        return name.startswith(("image.proj.", last)) or name in ("image.proj", last[:-1])

    def save(self, folder, scale, bias):
        from encoders.house import save_house

        cfg = copy.deepcopy(self.cfg)
        cfg.logit_scale = float(scale)
        cfg.loss = "sigmoid" if bias is not None else "softmax"
        cfg.logit_bias = float(bias) if bias is not None else 0.0
        save_house(folder, cfg, self.model.image, self.model.text)
        return "house:{folder}", "model.safetensors"


def towers_of(enc: Encoder) -> Towers:
    """The encoder's towers as a trainable copy, or CannotTune saying why they cannot be."""
    missing = [m for m in (TEXT, IMAGE) if m not in enc.modalities]
    if missing:
        raise CannotTune(
            f"fine-tuning trains a text tower and an image tower together; '{enc.name}' has no "
            f"{' and no '.join(missing)} tower (it embeds {', '.join(sorted(enc.modalities))})"
        )
    from encoders.hf import HFEncoder
    from encoders.house import HouseEncoder
    from encoders.openclip import OpenClipEncoder

    if isinstance(enc, OpenClipEncoder):
        return OpenClipTowers(enc)
    if isinstance(enc, HFEncoder):
        if enc.family not in HF_FAMILIES:
            raise CannotTune(
                f"'{enc.name}' is a transformers '{enc.family}' model; the towers of "
                f"{', '.join(HF_FAMILIES)} models fine-tune (their text and image projections "
                "are what the modes name)"
            )
        return HFTowers(enc)
    if isinstance(enc, HouseEncoder):
        return HouseTowers(enc)
    raise CannotTune(f"'{enc.name}' is not an open_clip, transformers or house model")


# -- modes -------------------------------------------------------------------------------------
def called_modules(towers: Towers) -> list[str]:
    """The names of the model's modules whose forward runs when both towers embed a sample."""
    seen: list[str] = []
    hooks = [m.register_forward_hook(lambda *_, n=n: seen.append(n))
             for n, m in towers.model.named_modules() if n]  # fmt: skip
    try:
        with torch.no_grad():
            towers.eval()(*towers.sample())
    finally:
        for h in hooks:
            h.remove()
    return list(dict.fromkeys(seen))


def lora_targets(towers: Towers) -> list[str]:
    """Every attention (nn.MultiheadAttention with one embedding size: peft adapts its in- and
    out-projections together) and linear layer whose forward runs, the projections left out;
    and, in a convolutional image tower (more than one convolution runs), its ungrouped
    convolutions."""
    modules = dict(towers.model.named_modules())
    called = called_modules(towers)
    convs = [n for n in called if isinstance(modules[n], nn.Conv2d) and towers.is_image(n)]
    conv_tower = len(convs) > 1
    out = []
    for n in called:
        m = modules[n]
        if towers.is_projection(n + ".weight") or towers.is_projection(n):
            continue
        if isinstance(m, nn.MultiheadAttention):
            if getattr(m, "_qkv_same_embed_dim", False) and isinstance(m.out_proj, nn.Linear):
                out.append(n)
        elif isinstance(m, nn.Linear) or (
            conv_tower and isinstance(m, nn.Conv2d) and m.groups == 1 and n in convs
        ):
            out.append(n)
    return out


class Adapted:
    """What `prepare` made: the towers with the mode's weights trainable, and the peft model
    holding their adapters in lora mode (kept off the module tree: its parameters are the
    towers' own)."""

    def __init__(self, towers: Towers, mode: str, lora=None, targets=()) -> None:
        self.towers, self.mode, self.lora, self.targets = towers, mode, lora, list(targets)

    def trainable(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.towers.model.named_parameters() if p.requires_grad}

    def train_mode(self) -> None:
        """Training mode for what trains: a module none of whose weights train (the locked image
        tower, a frozen batch norm) stays in eval mode, so its running statistics do not move."""
        self.towers.train()
        for name, m in self.towers.model.named_modules():
            locked = self.mode == "lit" and name and self.towers.is_image(name)
            frozen_norm = isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(
                p.requires_grad for p in m.parameters(recurse=False)
            )
            if locked or frozen_norm:
                m.eval()

    def merge(self) -> None:
        """Fold the adapters into the weights (lora); the towers become plain towers again."""
        if self.lora is not None:
            self.towers.model = self.lora.merge_and_unload()
            self.lora = None


def prepare(towers: Towers, mode: str, rank: int = 8, alpha: float | None = None,
            seed: int = 0) -> Adapted:  # fmt: skip
    """Freeze what the mode does not train; in lora mode, add the adapters (their random half
    drawn from `seed`, so that two runs with the same seed start the same)."""
    if mode not in MODES:
        raise CannotTune(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
    named = list(towers.model.named_parameters())
    for _, p in named:
        p.requires_grad_(False)
    if mode == "lora":
        from peft import LoraConfig
        from peft.tuners.lora import LoraModel

        targets = lora_targets(towers)
        if not targets:
            raise CannotTune(
                f"--mode lora: '{towers.base_name}' has no attention, linear or convolutional "
                "layer that peft can adapt"
            )
        cfg = LoraConfig(r=rank, lora_alpha=alpha if alpha is not None else 2 * rank,
                         target_modules=targets, lora_dropout=0.0)  # fmt: skip
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            lm = LoraModel(towers.model, cfg, "default")
        for n, p in towers.model.named_parameters():
            p.requires_grad_("lora_" in n)
        return Adapted(towers, mode, lm, targets)
    if mode == "full":
        pick: Callable[[str], bool] = lambda n: not towers.is_temperature(n)  # noqa: E731
    elif mode == "lit":
        pick = lambda n: not towers.is_image(n) and not towers.is_temperature(n)  # noqa: E731
    else:
        pick = towers.is_projection
        for side, is_side in (("image", towers.is_image),
                              ("text", lambda n: not towers.is_image(n))):  # fmt: skip
            if not any(towers.is_projection(n) and is_side(n) for n, _ in named):
                raise CannotTune(
                    f"--mode head trains the projections, and the {side} tower of "
                    f"'{towers.base_name}' has none (its last layer is its embedding): use "
                    "--mode lora or lit"
                )
    for n, p in named:
        p.requires_grad_(bool(pick(n)))
    if not any(p.requires_grad for _, p in named):
        raise CannotTune(f"--mode {mode}: '{towers.base_name}' has no weights that mode trains")
    return Adapted(towers, mode)
