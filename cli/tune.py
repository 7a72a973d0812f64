"""`jointspace train --target towers --model DIR --data SRC --mode lora|full|lit|head`: the towers
of a model directory fine-tuned on pairs of picture and caption, written into DIR as its new base.

Reads `--data` (and `--replay`) as the parts do (cli.parts: a batch jobs' source or a house
preset), holds a tenth of the pairs out, measures them (and `--eval-suite`) on the base, trains
with training.towers.finetune (resumable from `--out`), writes the towers into RUN/model, loads
them back, measures again, and only then installs them into DIR (encoders.modeldir.install_towers)
with their record and model card. Every refusal is one line and exit 2 before DIR is touched.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from cli.common import err, fail, out, steps_with_progress


def train_towers(model: Path, data: str | None, run_dir: str | None, *, mode: str | None,
                 loss: str | None, steps: int | None, batch_size: int | None, lr: float | None,
                 seed: int | None, replay: str | None, replay_share: float | None,
                 eval_suite: str | None, eval_limit: int | None, rank: int | None,
                 limit: int | None, path_column: str, text_column: str) -> None:  # fmt: skip
    from cli.parts import read_pairs
    from encoders.modeldir import (
        file_digest,
        install_towers,
        load_base,
        part_status,
        read_model_dir,
        retrain_command,
    )
    from housedata.sets import MissingData
    from training.parts import BadData, Pairs, captioned
    from training.targets import held_out
    from training.towers import finetune as ft
    from training.towers.adapt import CannotTune, prepare, towers_of

    md = read_model_dir(model)
    base = load_base(md.base_spec())  # a base that cannot load: one line, exit 2 (friendly)
    run = Path(run_dir or f"runs/towers-{md.path.name}")
    try:
        if replay_share is not None and replay is None:
            raise ft.BadTuning("--replay-share needs --replay SRC (the pairs to mix in)")
        cfg = ft.TuneConfig(
            mode=mode or "lora",
            loss=loss or ("siglip" if base.loss == "sigmoid" else "clip"),
            steps=steps if steps is not None else 300,
            batch_size=batch_size if batch_size is not None else 32,
            lr=lr,
            seed=seed or 0,
            rank=rank if rank is not None else 8,
            alpha=2.0 * (rank if rank is not None else 8),
            replay_share=(replay_share if replay_share is not None else 0.2) if replay else 0.0,
            out=str(run),
        )
        replace(cfg).checked()  # the settings first: cheaper than copying the towers
        towers = towers_of(base)
        cfg.checked(towers.backend)
        ft.check_loss(towers, cfg.loss)
        if eval_suite is not None:
            check_suite(eval_suite, base)
        adapted = prepare(towers, cfg.mode, cfg.rank, cfg.alpha, cfg.seed)
        pairs = read_pairs("towers", data, limit, path_column, text_column)
        caps = captioned(pairs, "towers")
        again = read_pairs("towers", replay, None, path_column, text_column) if replay else None
        if again is not None:
            again.captions = captioned(again, "towers")
        tr, ho = held_out(len(caps), cfg.seed)
        if len(tr) < 2:
            raise BadData(f"{pairs.source}: {len(caps)} pair(s); fine-tuning needs at least 3 "
                          "(two to train on, one held out)")  # fmt: skip
        train = Pairs(pairs.source, images=[pairs.images[i] for i in tr],
                      captions=[caps[i] for i in tr], key=pairs.key)  # fmt: skip
        held_images, held_caps = [pairs.images[i] for i in ho], [caps[i] for i in ho]
        key = {"base": md.base, "data": pairs.key, "replay": again.key if again else None,
               "eval_suite": eval_suite}  # fmt: skip
        tuner = ft.Tuner(cfg, adapted, train, again, key)
        resumed = tuner.resume()
    except (BadData, ft.BadTuning, CannotTune, MissingData, ValueError) as e:
        fail(e)
    say = lambda s: err.print(s, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    mixed = f", {tuner.n_replay} of each {cfg.batch_size} from {again.source}" if again else ""
    say(f"{run}: {'resumed at step ' + str(tuner.step) if resumed else 'new run'}; fine-tuning "
        f"the towers of {md.path} ({md.base}) in mode {cfg.mode} with the {cfg.loss} loss on "
        f"{len(train.captions):,} pairs{mixed}, {len(ho)} held out")  # fmt: skip

    def figures(enc) -> dict:
        sets = {"held-out": ft.held_out_figures(enc, held_images, held_caps)}
        if eval_suite:
            sets[eval_suite] = ft.suite_figures(enc, eval_suite, eval_limit)
        return sets

    if "before" not in tuner.extra:
        say("measuring the base on the held-out pairs" + (f" and {eval_suite}" if eval_suite
                                                         else ""))  # fmt: skip
        tuner.extra["before"] = figures(base)
    steps_with_progress(lambda t, report: t.run(report), tuner, cfg.steps, "{:.4f}")
    if tuner.rank:
        return
    folder = run / "model"
    shutil.rmtree(folder, ignore_errors=True)
    template, weights = tuner.export(folder)
    digest = file_digest(folder / weights)
    tuned = load_base(template.format(folder=folder.resolve()))
    say("measuring the fine-tuned towers")
    after = figures(tuned)
    command = " ".join(shlex.quote(a) for a in ["jointspace", *sys.argv[1:]])
    from encoders.fingerprint import fingerprint

    rec = ft.record(tuner, origin=md.origin or md.base, base=md.base,
                    base_digest=fingerprint(base)["digest"], digest=digest,
                    data=pairs.source, replay=again.source if again else None,
                    eval_suite=eval_suite, figures={"before": tuner.extra["before"],
                                                    "after": after},
                    command=command, held=len(ho))  # fmt: skip
    ft.write_card(folder, rec)
    name = install_towers(md, folder, lambda f: template.format(folder=f), rec)
    rows = ft.figure_rows(rec["figures"]["before"], rec["figures"]["after"])
    out.print(ft.table(rows), markup=False, highlight=False, soft_wrap=True)
    say(f"towers installed in {md.path / name} (digest {digest}); serve them as model:{md.path}")
    stale = [k for k, p in part_status(md, None).items() if p.get("towers") != md.towers_id]
    if stale:
        say(f"now stale (trained against the towers before): {', '.join(stale)}; model:{md.path} "
            "will not load until each is retrained: "
            + "; ".join(retrain_command(k, md.path) for k in stale))  # fmt: skip
    say("collections embedded with the towers before are refused with model:"
        f"{md.path} until re-embedded (jointspace job embed SRC --model model:{md.path} "
        "--out OUT --ingest NAME)")  # fmt: skip


def check_suite(name: str, base) -> None:
    from cli import search_suite  # noqa: F401 - registers the hybrid-search suite
    from training.evaluate import known_suites
    from training.suites import REGISTRY
    from training.towers.finetune import BadTuning

    if name not in known_suites():
        raise BadTuning(f"--eval-suite {name}: unknown; known: {', '.join(known_suites())}")
    if not REGISTRY[name].can_run(base):
        raise BadTuning(f"--eval-suite {name}: '{base.name}' cannot run it")
