"""`jointspace train --target PART --model DIR --data SRC`: one part of a model directory trained
against its frozen base and installed into it.

Reads `--data` as the batch jobs read their sources (a folder with same-stem `.txt` captions,
WebDataset tar shards, a table with --path-column/--text-column) or as a house preset by name,
decodes the pairs, hands them to training.targets, and installs the result; bad data is one line
and exit 2, with nothing installed."""

from __future__ import annotations

from pathlib import Path

from cli.common import err, fail
from training.parts import BadData, Pairs

IMAGE_PRESETS = {"fashion-mnist": "fashion", "tuxpaint": "tuxpaint", "emoji": "emoji"}
#: scikit-learn's handwritten digits (train split), captioned "handwritten digit seven" and so on
DIGITS_PRESET = "digits"
#: the house audio data (Tux Paint sounds and spoken descriptions, espeak-ng speech)
AUDIO_PRESET = "speech"
#: the house's rendered clips (a garment sliding, turning, changing colour)
CLIPS_PRESET = "clips"
PRESETS = (*IMAGE_PRESETS, DIGITS_PRESET, AUDIO_PRESET, CLIPS_PRESET)


def preset_pictures(names: list[str], limit: int | None) -> Pairs:
    from training.captioner.data import pictures

    n_fashion = min(limit or 6000, 6000)
    images, caps, srcs = pictures("train", n_fashion, 0, tuple(IMAGE_PRESETS[n] for n in names))
    images, caps, srcs = images[:limit], caps[:limit], srcs[:limit]
    key = f"preset:{','.join(names)}:{limit}"
    return Pairs(",".join(names), images=images, captions=list(caps), sources=srcs, key=key)


def preset_digits(limit: int | None) -> Pairs:
    import numpy as np
    from PIL import Image

    from housedata.sets import digit_caption, digits

    grey, labels = digits("train")
    grey, labels = grey[:limit], labels[:limit]
    rng = np.random.default_rng(0)
    return Pairs(
        DIGITS_PRESET,
        images=[Image.fromarray(g).convert("RGB") for g in grey],
        captions=[digit_caption(int(y), rng) for y in labels],
        sources=["digits"] * len(labels),
        key=f"preset:digits:{limit}",
    )


def source_pairs(
    data: str, modality: str, rate: int, limit: int | None, path_column: str, text_column: str
) -> Pairs:
    """Media of `modality` with their captions from a batch jobs' source, decoded."""
    from encoders import InputError, decode_audio, decode_image
    from jobs.decode import read_item
    from jobs.errors import JobError
    from jobs.sources import TableColumns, plan

    srcs = [Path(p) for p in data.split(",")]
    try:
        p = plan(
            srcs, {modality, "text"}, limit=None, columns=TableColumns(path_column, text_column)
        )
        items = [it for shard in p.shards() for it in shard.items]
    except JobError as e:
        raise BadData(str(e)) from None
    orphans = [it.id for it in items if it.modality == "text"]
    if orphans:
        raise BadData(
            f"{data}: caption {orphans[0]} has no {modality} beside it (a same-stem "
            f"file); {len(orphans)} caption(s) without their medium"
        )
    media = [it for it in items if it.modality == modality][:limit]
    if not media:
        raise BadData(
            f"{data}: no {modality}-caption pairs found (a folder of media with "
            "same-stem .txt captions, KEY.ext + KEY.txt in .tar shards, or a table "
            "with --path-column and --text-column)"
        )
    out = Pairs(data, key=f"{data}:{p.fingerprint}:{limit}")
    for it in media:
        try:
            raw = read_item(it, 512 << 20)
            if modality == "image":
                out.images.append(decode_image(raw, name=it.id))
            else:
                out.clips.append(decode_audio(raw, rate, name=it.id).samples)
        except InputError as e:
            raise BadData(f"{data}: {it.id} cannot be read as {modality}: {e}") from None
        out.captions.append(it.metadata.get("text"))
        out.sources.append("user")
    return out


def read_pairs(
    target: str, data: str | None, limit: int | None, path_column: str, text_column: str
) -> Pairs | None:
    """The pairs a target trains on (None: the target's own house preset)."""
    default = {"audio": AUDIO_PRESET, "temporal": CLIPS_PRESET}.get(target)
    if data is None and default is None:
        raise BadData(
            f"--target {target} --model needs --data: a folder, .tar shards, a table, "
            f"or a preset ({', '.join(IMAGE_PRESETS)})"
        )
    names = (data or default).split(",")
    if target == "temporal":
        if names != [CLIPS_PRESET]:
            raise BadData(
                "the temporal head trains on the 'clips' preset (rendered clips with "
                "captions of their order); videos from a source are not read yet"
            )
        return None
    if target == "audio" and names == [AUDIO_PRESET]:
        return None
    if names == [DIGITS_PRESET] and target != "audio":
        return preset_digits(limit)
    if all(n in IMAGE_PRESETS for n in names):
        if target == "audio":
            raise BadData(
                f"{data} are pictures; the audio tower trains on sounds with captions "
                f"(a source, or the '{AUDIO_PRESET}' preset)"
            )
        return preset_pictures(names, limit)
    if any(n in PRESETS for n in names):
        raise BadData(
            f"--data {data}: presets for --target {target} are "
            f"{', '.join(IMAGE_PRESETS) if target != 'audio' else AUDIO_PRESET}"
        )
    modality = "audio" if target == "audio" else "image"
    return source_pairs(data, modality, 16_000, limit, path_column, text_column)


def train_part(
    target: str,
    model: Path,
    data: str | None,
    out: str | None,
    opts: dict,
    limit: int | None,
    path_column: str,
    text_column: str,
) -> None:
    """Train `target` for the model directory `model` and install it."""
    from encoders.fingerprint import fingerprint
    from encoders.modeldir import load_base, read_model_dir
    from training import targets as T
    from training.parts import captioned, check_target, install

    md = read_model_dir(model)
    base = load_base(md.base_spec())
    try:
        check_target(target, base)
        if target == "prior" and "decoder" not in md.parts:
            raise BadData(
                f"{md.path} has no decoder: train --target decoder first (it trains the prior too)"
            )
        pairs = read_pairs(target, data, limit, path_column, text_column)
        if pairs is not None and target in ("audio", "captioner", "prior"):
            captioned(pairs, target)
    except BadData as e:
        fail(e)
    fp = fingerprint(base)
    run = Path(out or f"runs/{target}-{md.path.name}")
    err.print(
        f"{run}: training the {target} part of {md.path} against {md.base}"
        f"{f' on {len(pairs.captions):,} inputs' if pairs else ''}",
        markup=False,
        soft_wrap=True,
    )
    try:
        folder, facts = train(T, target, base, fp, pairs, run, opts, limit, md)
    except BadData as e:
        fail(e)
    facts["data"] = pairs.source if pairs else (data or "house preset")
    facts["device"] = str(base.device)
    prior = facts.pop("prior", None)
    dest = install(md, target, folder, fp, facts)
    if prior is not None:
        install(md, "prior", folder, fp, {**prior, "data": facts["data"]})
    err.print(
        f"{target} installed in {dest}; serve it as model:{md.path}", markup=False, soft_wrap=True
    )


def train(T, target: str, base, fp: dict, pairs, run: Path, opts: dict, limit, md):
    """The target's trainer, with the options it takes."""
    if target == "captioner":
        return T.train_captioner(base, fp, pairs, run, opts)
    if target == "decoder":
        return T.train_decoder(base, fp, pairs, run, opts)
    if target == "prior":
        prior = {
            ("prior_" + k if k in ("steps", "lr") else "prior_batch" if k == "batch_size" else k): v
            for k, v in opts.items()
        }
        return T.train_prior_alone(base, fp, pairs, run, prior, md.folder("decoder"))
    if target == "temporal":
        return T.train_temporal(base, {**opts, **({"clips": limit} if limit else {})}, run)
    return T.train_audio(base, fp, pairs, run, {**opts, **({"limit": limit} if limit else {})})
