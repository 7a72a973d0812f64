"""Model directories: a base towers spec plus the parts trained on its vectors.

`DIR/model.json` is `{"base": SPEC, "parts": {KIND: FOLDER}}` with folders relative to DIR. The
base is a towers spec (`house`, `house:DIR`, `open_clip:ARCH@TAG_OR_CHECKPOINT`, `hf:ID_OR_DIR`; a
relative checkpoint path is read relative to DIR). Towers fine-tuned on the user's pairs live in a
folder of DIR (`"towers": FOLDER`, its record in FOLDER/towers.json with the digest of its weights)
and become the base, the spec they were fine-tuned from kept as `"origin"`. A part is an audio
tower, a temporal head, a captioner, an image decoder or the decoder's prior (which lives in the
decoder's folder); each part's folder holds `part.json`, one record per part kept there: what it
is, the base it was trained against with that base's fingerprint (encoders.fingerprint), its
data, steps, time and held-out figures, and, once the towers were fine-tuned, the digest of the
towers it was trained against. Loading checks every stamped part against the base's fingerprint
and towers, and stops with one line naming every part that does not match, each with the command
that retrains it.

Owns reading and writing those files, loading a directory into an `Encoder` with its parts
attached (`Encoder.parts` is the one answer to "what does this model have"), and the implicit
directory of a house folder written before model.json existed, and installing fine-tuned towers
(the stamp `model_digest` that collections record comes from them). Knows nothing of FAISS, HTTP or
training; captioners and decoders are recorded here and loaded by generation/.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from encoders.base import AUDIO, IMAGE, TEXT, Encoder
from encoders.errors import ModelLoadError, ModelSpecError
from encoders.fingerprint import fingerprint, same_base
from encoders.spec import ModelSpec, parse_spec

MODEL_JSON, PART_JSON, TOWERS_JSON = "model.json", "part.json", "towers.json"
PART_KINDS = ("audio", "temporal", "captioner", "decoder", "prior")
WHAT = {
    "audio": "audio tower: sounds and speech into the base's space",
    "temporal": "temporal head: a video's frame vectors pooled in order",
    "captioner": "captioner: a vector to a sentence (prefix into a small language model)",
    "decoder": "image decoder: a vector to a picture (conditional diffusion)",
    "prior": "prior: a text vector to an image vector, for drawing from a prompt",
}
#: the folder each part gets in a new directory (the prior sits beside its decoder)
FOLDERS = {
    "audio": "audio",
    "temporal": "temporal",
    "captioner": "captioner",
    "decoder": "decoder",
    "prior": "decoder",
}
#: the files that show a part in a house folder written before model.json existed
LEGACY_FILES = {
    "audio": ("audio", "model.safetensors"),
    "temporal": ("temporal", "model.safetensors"),
    "captioner": ("captioner", "mapper.safetensors"),
    "decoder": ("decoder", "decoder.safetensors"),
    "prior": ("decoder", "prior.safetensors"),
}
#: which modalities of the base each part needs (any one of them)
NEEDS = {
    "audio": (TEXT, IMAGE),
    "temporal": (IMAGE,),
    "captioner": (TEXT, IMAGE, AUDIO),
    "decoder": (IMAGE,),
    "prior": (IMAGE,),
}


def retrain_command(kind: str, path: Path | str) -> str:
    return f"jointspace train --target {kind} --model {path} --data SRC"


def spec_digest(spec: str) -> str:
    """The towers stamp of a base never fine-tuned: 12 hex digits of its spec."""
    return hashlib.sha256(f"base:{spec.strip()}".encode()).hexdigest()[:12]


def file_digest(path: Path) -> str:
    """12 hex digits of the sha256 of a weights file (the stamp of fine-tuned towers)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


@dataclass
class ModelDir:
    path: Path
    base: str
    parts: dict[str, str] = field(default_factory=dict)
    #: False for a house folder without model.json (its parts found by their files)
    explicit: bool = True
    #: the spec the towers were first fine-tuned from (None: never fine-tuned)
    origin: str | None = None
    #: the folder of the fine-tuned towers the base names (None: never fine-tuned)
    towers: str | None = None

    def towers_record(self) -> dict | None:
        """The fine-tuned towers' record (towers.json in their folder), or None."""
        if self.towers is None:
            return None
        f = self.path / self.towers / TOWERS_JSON
        try:
            return json.loads(f.read_text())
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"{f}: not a towers record ({e})") from None

    @property
    def towers_id(self) -> str | None:
        """The digest of the fine-tuned towers' weights (None: never fine-tuned): what a part
        trained against them records, so that fine-tuning again makes it stale."""
        rec = self.towers_record()
        return None if rec is None else rec.get("digest")

    @property
    def model_digest(self) -> str:
        """What a collection embedded with this directory records of its towers: the fine-tuned
        towers' digest, or for a base never fine-tuned a digest of its spec."""
        return self.towers_id or spec_digest(self.base)

    def folder(self, kind: str) -> Path:
        return self.path / self.parts[kind]

    def record(self, kind: str) -> dict | None:
        """The part's record from its folder's part.json (None when the folder has none)."""
        f = self.folder(kind) / PART_JSON
        if not f.is_file():
            return None
        try:
            return json.loads(f.read_text()).get(kind)
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"{f}: not a part record ({e})") from None

    def base_spec(self) -> str:
        """The base spec with a relative checkpoint or folder read relative to the directory."""
        return resolve_base(self.base, self.path)

    def to_json(self) -> dict:
        tuned = {"origin": self.origin, "towers": self.towers} if self.towers else {}
        return {"base": self.base, **tuned, "parts": dict(sorted(self.parts.items()))}


def resolve_base(spec: str, root: Path) -> str:
    """`spec` with a relative local path in it made relative to `root`."""
    from encoders.openclip import is_path_like

    ms = parse_spec(spec)
    if ms.backend == "model":
        raise ModelSpecError(f"a model directory's base must be a towers spec, not '{spec}'")
    if ms.backend == "open_clip" and ms.source == "random-init":
        raise ModelSpecError(
            f"a model directory's base needs fixed weights, and '{spec}' draws new ones at every "
            f"load: save them once (torch.save(model.state_dict(), 'towers.pt')) and use "
            f"open_clip:{ms.name}@towers.pt"
        )
    if ms.backend == "open_clip" and is_path_like(ms.source) and not Path(ms.source).is_absolute():
        return f"open_clip:{ms.name}@{(root / ms.source).resolve()}"
    if ms.backend == "house" and ms.name and not Path(ms.name).is_absolute():
        return f"house:{(root / ms.name).resolve()}"
    if ms.backend == "hf" and not Path(ms.name).is_absolute() and (root / ms.name).is_dir():
        return f"hf:{(root / ms.name).resolve()}"
    return spec


def read_model_dir(path: Path | str) -> ModelDir:
    """The directory's model.json, checked: a towers base and parts of known kinds that exist."""
    path = Path(path).expanduser()
    f = path / MODEL_JSON
    if not f.is_file():
        raise ModelLoadError(
            f"no model directory at {path} (expected {MODEL_JSON}; create one "
            "with: jointspace model new DIR --base SPEC)"
        )
    try:
        raw = json.loads(f.read_text())
        base, parts = raw["base"], dict(raw.get("parts", {}))
        origin, towers = raw.get("origin"), raw.get("towers")
        if not isinstance(base, str) or not all(isinstance(v, str) for v in parts.values()):
            raise ValueError("'base' and each part must be strings")
        if not all(isinstance(v, str | None) for v in (origin, towers)):
            raise ValueError("'origin' and 'towers' must be strings")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ModelLoadError(f"{f}: not a model description ({e})") from None
    md = ModelDir(path, base, parts, origin=origin, towers=towers)
    resolve_base(base, path)  # a malformed base is refused here, with its spec message
    if towers is not None and not (path / towers / TOWERS_JSON).is_file():
        raise ModelLoadError(f"{f}: towers '{towers}' has no {TOWERS_JSON} in {path / towers}")
    for kind in parts:
        if kind not in PART_KINDS:
            raise ModelLoadError(f"{f}: unknown part '{kind}' (parts are {', '.join(PART_KINDS)})")
        if not md.folder(kind).is_dir():
            raise ModelLoadError(f"{f}: part '{kind}' names {md.folder(kind)}, which is missing")
    return md


def legacy_house_dir(path: Path) -> ModelDir:
    """A house folder without model.json: its towers are the base, its parts found by file."""
    parts = {
        k: folder for k, (folder, name) in LEGACY_FILES.items() if (path / folder / name).is_file()
    }
    return ModelDir(path, f"house:{path}", parts, explicit=False)


def write_model_json(md: ModelDir) -> None:
    """model.json written whole or not at all (a temporary file renamed over it)."""
    md.path.mkdir(parents=True, exist_ok=True)
    tmp = md.path / (MODEL_JSON + ".tmp")
    tmp.write_text(json.dumps(md.to_json(), indent=2) + "\n")
    os.replace(tmp, md.path / MODEL_JSON)


def install_towers(md: ModelDir, files: Path, spec_of: Callable[[str], str], record: dict) -> str:
    """Fine-tuned towers (the files in `files`) into the directory as towers-DIGEST/ with their
    record (towers.json, which holds `digest`), made its base by model.json (`spec_of(folder)`
    names them; the spec they came from is kept as `origin`); the folder of towers they replace
    is removed. Copied under a temporary name first: a failure leaves the directory as it was."""
    name = f"towers-{record['digest'][:8]}"
    dest, tmp = md.path / name, md.path / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(files, tmp)
    (tmp / TOWERS_JSON).write_text(json.dumps(record, indent=1) + "\n")
    old = md.towers
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    md.origin, md.base, md.towers = md.origin or md.base, spec_of(name), name
    write_model_json(md)
    if old and old != name:
        shutil.rmtree(md.path / old, ignore_errors=True)
    return name


def new_model_dir(path: Path | str, base: str) -> ModelDir:
    """A model directory with no parts; refused where one exists already."""
    path = Path(path).expanduser()
    if (path / MODEL_JSON).exists():
        raise ModelSpecError(f"{path} is a model directory already ({MODEL_JSON} exists)")
    resolve_base(base, path)
    md = ModelDir(path, base.strip())
    write_model_json(md)
    return md


def install_part(md: ModelDir, kind: str, record: dict) -> None:
    """Record `kind` in its folder's part.json and in model.json (the folder holds its files)."""
    if kind not in PART_KINDS:
        raise ModelSpecError(f"unknown part '{kind}' (parts are {', '.join(PART_KINDS)})")
    rel = md.parts.get(kind, FOLDERS[kind])
    folder = md.path / rel
    f = folder / PART_JSON
    records = json.loads(f.read_text()) if f.is_file() else {}
    towers = {"towers": md.towers_id} if md.towers_id else {}
    records[kind] = {"kind": kind, "what": WHAT[kind], **record, **towers}
    f.write_text(json.dumps(records, indent=1) + "\n")
    md.parts[kind] = rel
    write_model_json(md)


def load_base(spec: str, device: str | None = None) -> Encoder:
    """The towers a (resolved) base spec names, without any parts of their own."""
    ms = parse_spec(spec)
    if ms.backend == "model":
        raise ModelSpecError(f"a model directory's base must be a towers spec, not '{spec}'")
    return load_towers(ms, device)


def load_towers(ms: ModelSpec, device: str | None = None) -> Encoder:
    """The towers of a house, open_clip or hf spec, with no parts."""
    if ms.backend == "house":
        from encoders.house import HouseEncoder, default_house_dir

        return HouseEncoder(ms.name or default_house_dir(), device=device)
    if ms.backend == "open_clip":
        from encoders.openclip import OpenClipEncoder

        return OpenClipEncoder(ms.name, ms.source or "", device=device)
    from encoders.hf import HFEncoder

    return HFEncoder(ms.name, device=device)


def stale_reason(md: ModelDir, kind: str, base_fp: dict | None) -> str | None:
    """Why the part's stamp does not match the directory's base (None: it matches, or cannot be
    checked): another base's fingerprint, or towers fine-tuned since it was trained. Raises for
    an explicit directory's part with no stamp."""
    rec = md.record(kind)
    if rec is None:
        if md.explicit:
            raise ModelLoadError(
                f"part '{kind}' of model {md.path} has no {PART_JSON} stamp of "
                f"the base it was trained against; retrain it: "
                f"{retrain_command(kind, md.path)}"
            )
        return None
    theirs = rec.get("fingerprint") or {}
    if base_fp is not None and not same_base(theirs, base_fp):
        return (
            f"part '{kind}' of model {md.path} was trained against base '{rec.get('base')}' "
            f"(fingerprint {theirs.get('digest', 'none')}), not this directory's base "
            f"'{md.base}' (fingerprint {base_fp['digest']})"
        )
    if rec.get("towers") != md.towers_id:
        then = f"towers {rec['towers']}" if rec.get("towers") else f"the base '{rec.get('base')}'"
        return (
            f"part '{kind}' of model {md.path} was trained against {then}, before the towers "
            f"were fine-tuned (now towers {md.towers_id or spec_digest(md.base)})"
        )
    return None


def check_parts(md: ModelDir, base: Encoder) -> None:
    """Refuse the directory when any part's stamp does not match its base: one line naming every
    stale part, each with the command that retrains it."""
    base_fp = None
    stale = []
    for kind in sorted(md.parts, key=PART_KINDS.index):
        if md.record(kind) is not None and base_fp is None:
            base_fp = fingerprint(base)  # computed once, on the first stamped part
        why = stale_reason(md, kind, base_fp)
        if why:
            stale.append((kind, why))
    if len(stale) == 1:
        kind, why = stale[0]
        raise ModelLoadError(f"{why}; retrain it: {retrain_command(kind, md.path)}")
    if stale:
        kinds = ", ".join(k for k, _ in stale)
        raise ModelLoadError(
            f"model {md.path} has {len(stale)} stale parts ({kinds}): "
            + "; ".join(f"{why}; retrain it: {retrain_command(k, md.path)}" for k, why in stale)
        )


def attach(enc: Encoder, kind: str, folder: Path) -> None:
    """Give the encoder the part in `folder`: an audio tower or temporal head is loaded into it;
    a captioner, decoder or prior is recorded for generation/ to load."""
    if not any(m in enc.modalities for m in NEEDS[kind]):
        raise ModelLoadError(
            f"part '{kind}' needs a base with {' or '.join(NEEDS[kind])} vectors; "
            f"'{enc.name}' embeds {', '.join(sorted(enc.modalities))}"
        )
    if kind == "audio":
        from encoders.house_audio import load_audio_tower

        if AUDIO in enc.modalities:
            raise ModelLoadError(
                f"base '{enc.name}' has an audio tower of its own; "
                f"remove the audio part at {folder}"
            )
        cfg, tower = load_audio_tower(folder)
        if cfg.embed_dim != enc.dim:
            raise ModelLoadError(
                f"{folder}: the audio tower is {cfg.embed_dim}-d, the base {enc.dim}-d"
            )
        enc.audio_tower = tower.to(enc.device).eval()
        enc.audio_rate, enc.audio_any_length = cfg.sample_rate, True
        enc.modalities = enc.modalities | {AUDIO}
    elif kind == "temporal":
        from encoders.temporal import load_temporal_head

        enc.temporal_head = load_temporal_head(folder, enc.dim).to(enc.device)
    enc.parts = {**enc.parts, kind: folder}


def load_model_dir(md: ModelDir, name: str, device: str | None = None) -> Encoder:
    """The base towers with every part of the directory attached, each checked against the base
    first; the encoder is named `name` and knows its base spec and directory."""
    enc = load_base(md.base_spec(), device=device)
    check_parts(md, enc)
    for kind in sorted(md.parts, key=PART_KINDS.index):
        attach(enc, kind, md.folder(kind))
    enc.base, enc.name, enc.model_dir = md.base, name, md.path
    enc.model_digest = md.model_digest
    return enc


def part_record(base: str, fp: dict, **facts) -> dict:
    """A part's record: the base spec and fingerprint it was trained against, then `facts` (data,
    steps, seconds, figures, device, trained or installed: whatever the caller knows)."""
    return {"base": base, "fingerprint": fp, **facts}


def part_status(md: ModelDir, base_fp: dict | None) -> dict[str, dict]:
    """Per part: its folder, its record without the probe vectors, and whether its stamp matches
    `base_fp` (None when the base could not be fingerprinted or the part has no stamp)."""
    out = {}
    for kind in sorted(md.parts, key=PART_KINDS.index):
        rec = dict(md.record(kind) or {})
        fp = rec.pop("fingerprint", None)
        rec.pop("kind", None)
        matches = same_base(fp, base_fp) if fp is not None and base_fp is not None else None
        stale = "base" if matches is False else None
        if fp is not None and rec.get("towers") != md.towers_id:
            matches, stale = False, stale or "towers"  # trained before the towers were fine-tuned
        out[kind] = {
            "folder": md.parts[kind],
            "what": rec.pop("what", WHAT[kind]),
            "base_fingerprint": (fp or {}).get("digest"),
            "matches": matches,
            "stale": stale,
            **rec,
        }
    return out
