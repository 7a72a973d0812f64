"""Sigmoid against softmax loss at several batch sizes, on the same data, seed and steps.

Trains one house model per (loss, batch size), evaluates each on the held-out suites, and prints
a markdown table. Reproduces the comparison in the model card:

    python -m training.towers.loss_table --steps 100 --out runs/loss-table
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from encoders import load_encoder
from training.evaluate import evaluate
from training.towers.train import TrainConfig, Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch-sizes", default="64,256,1024")
    ap.add_argument("--out", default="runs/loss-table")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rows = []
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        for loss in ("siglip", "clip"):
            out = Path(args.out) / f"{loss}-{batch}"
            cfg = TrainConfig.load(
                loss=loss, batch_size=batch, steps=args.steps, warmup=min(150, args.steps // 5),
                eval_every=args.steps, save_every=args.steps, out=str(out), seed=args.seed,
                instance_weight=0.0,  # the losses alone
            )  # fmt: skip
            tr = Trainer(cfg)
            tr.resume()
            tr.run()
            res_path = out / "eval.json"
            if res_path.is_file():
                res = json.loads(res_path.read_text())
            else:
                suites = ("fashion-zero-shot", "fashion-tinted", "tuxpaint", "emoji")
                enc = load_encoder(f"house:{out / 'model'}", device="cpu")
                res = evaluate(enc, suites, seed=args.seed)
                res_path.write_text(json.dumps(res, indent=2) + "\n")
            s = res["suites"]
            zs, tinted = s["fashion-zero-shot"]["top1"], s["fashion-tinted"]["recall@1"]
            rows.append(
                (loss, batch, zs, tinted, s["tuxpaint"]["t2i_recall@5"], s["emoji"]["t2i_recall@5"])
            )
            print(f"done: {loss} batch {batch}", flush=True)
    lines = [f"{args.steps} steps each, seed {args.seed}, the same data mixture and settings:", ""]
    head = "| loss | batch | Fashion zero-shot top-1 | tinted R@1 | Tux t2i R@5 | emoji t2i R@5 |"
    lines += [head, "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for loss, batch, zs, tinted, tux, emo in rows:
        name = "sigmoid" if loss == "siglip" else "softmax"
        lines.append(f"| {name} | {batch} | {zs:.3f} | {tinted:.3f} | {tux:.3f} | {emo:.3f} |")
    text = "\n".join(lines) + "\n"
    (Path(args.out) / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
