"""`jointspace train`: train the house towers, the house audio tower, the image decoder (all
three resumable), the captioner's mapper, the temporal head or the decoder's prior; with --model,
fine-tune a model directory's towers (cli.tune) or train one of its parts (cli.parts)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from cli.common import err, fail, friendly, steps_with_progress


@friendly
def train(
    target: Annotated[
        str,
        typer.Option(
            help="house (text head and image tower), audio (the audio tower), captioner "
            "(the captioner's mapper, on the house model's vectors) or temporal (the video "
            "head over the house image tower's frame vectors), decoder (the image decoder, then "
            "the prior) or prior (the prior alone, beside an existing OUT/model decoder); with "
            "--model, towers fine-tunes the directory's own towers (--mode)."
        ),
    ] = "house",
    config: Annotated[
        Path | None, typer.Option(help="TOML or JSON file of training options.")
    ] = None,
    out: Annotated[str | None, typer.Option(help="Run directory (checkpoint, model).")] = None,
    loss: Annotated[str | None, typer.Option(help="siglip or clip.")] = None,
    steps: Annotated[int | None, typer.Option(help="At least 1.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="At least 2.")] = None,
    lr: Annotated[float | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    data: Annotated[
        str | None,
        typer.Option(help="Comma-separated: fashion-mnist, tuxpaint, emoji, folder:DIR, tar:GLOB."),
    ] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Chunked sigmoid loss block size.")] = None,
    eval_every: Annotated[int | None, typer.Option(min=1)] = None,
    matryoshka: Annotated[
        str | None,
        typer.Option(
            help="house: comma-separated prefix lengths (64,128,256) the loss is also "
            "summed over, so that vectors truncated to them keep working."
        ),
    ] = None,
    text_share: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="captioner: share conditioned on noisy text vectors."),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            help="A model directory: train --target's part against its frozen base on "
            "--data (a folder, .tar shards, a table, or a preset) and install it there."
        ),
    ] = None,
    path_column: Annotated[
        str, typer.Option(help="--model with a table: the media column.")
    ] = "path",
    text_column: Annotated[
        str, typer.Option(help="--model with a table: the caption column.")
    ] = "text",
    size: Annotated[
        int | None,
        typer.Option(
            min=8, max=128, help="--target decoder --model: picture side in pixels (default 32)."
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="--model: the first N inputs only.")
    ] = None,
    lm: Annotated[
        Path | None,
        typer.Option(
            help="--target captioner --model: the language model (default: the packaged SmolLM2)."
        ),
    ] = None,
    prior_steps: Annotated[
        int | None, typer.Option(min=1, help="--target decoder --model: the prior's steps (1500).")
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(
            help="--target towers: lora (default: adapters, merged at export), full, "
            "lit (the image tower locked) or head (the projections only)."
        ),
    ] = None,
    replay: Annotated[
        str | None,
        typer.Option(
            help="--target towers: pairs mixed into each batch against forgetting "
            "(a source or a preset, as --data)."
        ),
    ] = None,
    replay_share: Annotated[
        float | None,
        typer.Option(help="--target towers: the share of each batch from --replay (0.2)."),
    ] = None,
    eval_suite: Annotated[
        str | None,
        typer.Option(
            help="--target towers: a `jointspace eval` suite measured before and after "
            "beside the held-out pairs (e.g. fashion-zero-shot)."
        ),
    ] = None,
    eval_limit: Annotated[
        int | None, typer.Option(min=1, help="--target towers: --eval-suite's limit.")
    ] = None,
    lora_rank: Annotated[
        int | None, typer.Option(help="--target towers --mode lora: the adapters' rank (8).")
    ] = None,
) -> None:
    """Train the house towers, or with --model one part of a model directory; resumes from the
    run directory's checkpoint when there is one."""
    o = SimpleNamespace(**locals())
    if steps is not None and steps < 1:
        fail(ValueError(f"--steps must be at least 1, not {steps}"))
    if batch_size is not None and batch_size < 2:
        fail(ValueError(f"--batch-size must be at least 2 (a contrastive loss needs negatives), "
                        f"not {batch_size}"))  # fmt: skip
    if target == "towers":
        return _towers(o)
    _refuse_towers_only(o)
    if model is not None:
        return train_model_part(target, model, data, out, steps=steps, batch_size=batch_size,
                                lr=lr, seed=seed, text_share=text_share, size=size, lm=lm,
                                prior_steps=prior_steps,
                                limit=limit, path_column=path_column, text_column=text_column,
                                extra=bool(config or loss or chunk_size or eval_every))  # fmt: skip
    if size is not None or limit is not None or lm is not None or prior_steps is not None:
        fail(ValueError("--size, --limit, --lm and --prior-steps apply with --model only"))
    if text_share is not None and target != "captioner":
        fail(ValueError("--text-share applies to --target captioner only"))
    if matryoshka is not None and target != "house":
        fail(ValueError("--matryoshka applies to --target house only"))
    if target not in TARGETS:
        fail(ValueError("--target must be 'house', 'audio', 'captioner', 'temporal', 'decoder' "
                        f"or 'prior', not {target!r}"))  # fmt: skip
    TARGETS[target](o)


def _towers(o: SimpleNamespace) -> None:
    """--target towers --model DIR: fine-tune DIR's own towers (cli.tune)."""
    from cli.tune import train_towers

    if o.model is None:
        fail(ValueError("--target towers fine-tunes a model directory's towers: give "
                        "--model DIR (--target house trains the house towers from "
                        "scratch)"))  # fmt: skip
    if o.config or o.chunk_size or o.eval_every or o.matryoshka or o.text_share is not None:
        fail(ValueError("--target towers takes --data, --mode, --loss, --steps, --batch-size, "
                        "--lr, --seed, --out, --limit, --replay, --replay-share, "
                        "--eval-suite, --eval-limit, --lora-rank"))  # fmt: skip
    if o.size is not None or o.lm is not None or o.prior_steps is not None:
        fail(ValueError("--size, --lm and --prior-steps are for the decoder and captioner"))
    train_towers(o.model, o.data, o.out, mode=o.mode, loss=o.loss, steps=o.steps,
                 batch_size=o.batch_size, lr=o.lr, seed=o.seed, replay=o.replay,
                 replay_share=o.replay_share, eval_suite=o.eval_suite,
                 eval_limit=o.eval_limit, rank=o.lora_rank, limit=o.limit,
                 path_column=o.path_column, text_column=o.text_column)  # fmt: skip


def _refuse_towers_only(o: SimpleNamespace) -> None:
    """The options of --target towers, refused for every other target."""
    towers_only = {"--mode": o.mode, "--replay": o.replay, "--replay-share": o.replay_share,
                   "--eval-suite": o.eval_suite, "--eval-limit": o.eval_limit,
                   "--lora-rank": o.lora_rank}  # fmt: skip
    given = [k for k, v in towers_only.items() if v is not None]
    if given:
        verb = "applies" if len(given) == 1 else "apply"
        fail(ValueError(f"{', '.join(given)} {verb} to --target towers --model DIR only"))


def _house(o: SimpleNamespace) -> None:
    """--target house: the house text head and image tower, from scratch or resumed."""
    from housedata.sets import MissingData
    from training.towers.train import TrainConfig, Trainer

    try:
        cfg = TrainConfig.load(
            str(o.config) if o.config else None, out=o.out, loss=o.loss, steps=o.steps,
            batch_size=o.batch_size, lr=o.lr, seed=o.seed, chunk_size=o.chunk_size,
            eval_every=o.eval_every, data=o.data.split(",") if o.data else None,
            matryoshka=_dims(o.matryoshka),
        )  # fmt: skip
        trainer = Trainer(cfg, log=err.print)
    except (ValueError, MissingData, FileNotFoundError) as e:
        fail(e)
    resumed = trainer.resume()
    if trainer.rank == 0:
        what = f"resumed at step {trainer.step}" if resumed else "new run"
        err.print(
            f"{cfg.out}: {what}; {len(trainer.mixture):,} samples, loss={cfg.loss}", markup=False
        )

    run_with_progress(trainer, cfg.steps, "zero_shot_top1", "zero-shot", trainer.rank != 0)
    if trainer.rank == 0:
        err.print(f"model written to {Path(cfg.out) / 'model'} (load it as house:{cfg.out}/model)")


def _audio(o: SimpleNamespace) -> None:
    if o.data or o.chunk_size:
        fail(ValueError("--data and --chunk-size apply to --target house only"))
    train_audio(o.config, out=o.out, loss=o.loss, steps=o.steps, batch_size=o.batch_size,
                lr=o.lr, seed=o.seed, eval_every=o.eval_every)  # fmt: skip


def _captioner(o: SimpleNamespace) -> None:
    if o.data or o.chunk_size or o.loss or o.eval_every or o.config:
        fail(ValueError("--target captioner takes --out, --steps, --batch-size, --lr, --seed, "
                        "--text-share"))  # fmt: skip
    train_captioner(out=o.out, steps=o.steps, batch_size=o.batch_size, lr=o.lr, seed=o.seed,
                    text_share=o.text_share)  # fmt: skip


def _temporal(o: SimpleNamespace) -> None:
    if o.data or o.chunk_size or o.loss or o.eval_every or o.config:
        fail(ValueError("--target temporal takes --out, --steps, --batch-size, --lr, --seed"))
    train_temporal_head(out=o.out, steps=o.steps, batch_size=o.batch_size, lr=o.lr, seed=o.seed)


def _decoder(o: SimpleNamespace) -> None:
    """--target decoder (the decoder, then the prior) or --target prior (the prior alone)."""
    if o.data or o.chunk_size or o.loss or o.eval_every or o.config:
        fail(ValueError(f"--target {o.target} takes --out, --steps, --batch-size, --lr, --seed"))
    train_decoder(o.target, out=o.out, steps=o.steps, batch_size=o.batch_size, lr=o.lr,
                  seed=o.seed)  # fmt: skip


# --target -> what trains it without --model (--target towers needs --model; see train)
TARGETS: dict[str, Callable[[SimpleNamespace], None]] = {
    "house": _house,
    "audio": _audio,
    "captioner": _captioner,
    "temporal": _temporal,
    "decoder": _decoder,
    "prior": _decoder,
}


def train_model_part(
    target: str, model: Path, data: str | None, out: str | None, *, extra: bool,
    limit: int | None, path_column: str, text_column: str, **options,
) -> None:  # fmt: skip
    """`--model DIR`: the part `target` trained against DIR's base and installed into DIR."""
    from cli.parts import train_part

    if extra:
        fail(ValueError("--model takes --data, --steps, --batch-size, --lr, --seed, --out, "
                        "--limit (and --size for the decoder, --lm and --text-share for the "
                        "captioner), not --config, --loss, --chunk-size or "
                        "--eval-every"))  # fmt: skip
    if (options["size"] is not None or options["prior_steps"] is not None) and target != "decoder":
        fail(ValueError("--size and --prior-steps apply to --target decoder only"))
    if (options["lm"] is not None or options["text_share"] is not None) and target != "captioner":
        fail(ValueError("--lm and --text-share apply to --target captioner only"))
    opts = {k: v for k, v in options.items() if v is not None}
    if "lm" in opts:
        opts["lm"] = str(opts["lm"])
    train_part(target, model, data, out, opts, limit, path_column, text_column)


def _dims(given: str | None) -> list[int] | None:
    if given is None:
        return None
    try:
        return [int(x) for x in given.split(",")]
    except ValueError:
        fail(ValueError(f"--matryoshka takes comma-separated integers, not {given!r}"))


def train_audio(config: Path | None, **overrides) -> None:
    """The audio tower against the frozen house towers; the model lands in OUT/model/audio."""
    from housedata.sets import MissingData
    from training.audio.train import AudioTrainConfig, AudioTrainer

    try:
        cfg = AudioTrainConfig.load(str(config) if config else None, **overrides)
        trainer = AudioTrainer(cfg, log=err.print)
    except (ValueError, MissingData, FileNotFoundError) as e:
        fail(e)
    resumed = trainer.resume()
    what = f"resumed at step {trainer.step}" if resumed else "new run"
    err.print(f"{cfg.out}: {what}; {len(trainer.clips):,} clips, loss={cfg.loss}", markup=False)
    run_with_progress(trainer, cfg.steps, "spoken_top1", "spoken top-1")
    err.print(f"audio tower written to {Path(cfg.out) / 'model' / 'audio'}", markup=False)


def train_captioner(**options) -> None:
    """The captioner's mapper against the frozen language model; lands in OUT/model."""
    from encoders import load_encoder
    from generation.lm import load_language_model
    from housedata.sets import MissingData
    from training.captioner.data import build
    from training.captioner.train import CaptionConfig, CaptionTrainer, run

    cfg = CaptionConfig(**{k: v for k, v in options.items() if v is not None})
    try:
        data = build(load_encoder("house"), "train", seed=cfg.seed)
        lm, tok = load_language_model()
    except (MissingData, OSError) as e:
        fail(e)
    trainer = CaptionTrainer(cfg, data, lm, tok, "smollm2", log=err.print)
    what = f"resumed at step {trainer.step}" if trainer.resume() else "new run"
    err.print(f"{cfg.out}: {what}; {len(data.captions):,} captions, noise std "
              f"{trainer.noise:.3f}", markup=False)  # fmt: skip
    folder = steps_with_progress(run, trainer, cfg.steps, "{:.3f}")
    err.print(f"captioner written to {folder}", markup=False)


def train_temporal_head(**options) -> None:
    """The temporal head over the house image tower's frame vectors; lands in OUT/model."""
    from encoders import load_encoder
    from housedata.sets import MissingData
    from training.temporal.train import TemporalTrainConfig, save_run, train_temporal

    cfg = TemporalTrainConfig(**{k: v for k, v in options.items() if v is not None})
    enc = load_encoder("house")
    err.print(f"{cfg.out}: rendering and embedding {cfg.clips:,} clips", markup=False)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"), console=err,
    ) as bar:  # fmt: skip
        task = bar.add_task("training", total=cfg.steps, status="")
        try:
            head, log = train_temporal(enc, cfg, lambda step, loss: bar.update(
                task, completed=step + 1, status=f"loss {loss:.3f}"))  # fmt: skip
        except MissingData as e:
            fail(e)
    folder = Path(cfg.out) / "model"
    save_run(head, log, folder)
    err.print(f"temporal head written to {folder}", markup=False)


def train_decoder(target: str, **options) -> None:
    """The image decoder and then the prior (or the prior alone) on the house model's vectors;
    both land in OUT/model."""
    from encoders import load_encoder
    from housedata.sets import MissingData
    from training.decoder.data import build
    from training.decoder.train import DecoderTrainConfig, DecoderTrainer, prior_only, run

    opts = {k: v for k, v in options.items() if v is not None}
    if target == "prior":  # --steps, --lr, --batch-size mean the prior's
        opts = {("prior_" + k if k in ("steps", "lr") else "prior_batch" if k == "batch_size"
                 else k): v for k, v in opts.items()}  # fmt: skip
    cfg = DecoderTrainConfig(**opts)
    err.print(f"{cfg.out}: embedding the pictures and their captions", markup=False)
    try:
        data = build(load_encoder("house"), "train", seed=cfg.seed)
    except MissingData as e:
        fail(e)
    if target == "prior":
        try:
            folder = prior_only(data, cfg)
        except ValueError as e:
            fail(e)
        err.print(f"prior written to {folder}", markup=False)
        return
    trainer = DecoderTrainer(cfg, data, "house")
    what = f"resumed at step {trainer.step}" if trainer.resume() else "new run"
    err.print(f"{cfg.out}: {what}; {len(data.captions):,} pictures", markup=False)
    folder = steps_with_progress(run, trainer, cfg.steps, "{:.4f}")
    err.print(f"decoder and prior written to {folder}", markup=False)


def run_with_progress(trainer, steps: int, key: str, label: str, hidden: bool = False) -> None:
    """Run a trainer under a progress bar; each evaluation's `key` is printed as `label`."""
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"), console=err, disable=hidden,
    ) as bar:  # fmt: skip
        task = bar.add_task("training", total=steps, completed=trainer.step, status="")

        def show(rec: dict) -> None:
            status = f"loss {rec['loss']:.3f}"
            if key in rec:
                status += f" {label} {rec[key]:.3f}"
                err.print(f"step {rec['step']}: {status}", markup=False)
            bar.update(task, completed=rec["step"], status=status)

        trainer.run(progress=show)
