"""The `jointspace` entry point: the typer app and its commands."""

from __future__ import annotations

import typer

from cli import (
    caption,
    classifier,
    embed,
    evaluate,
    generate,
    job,
    keys,
    model,
    models,
    serve,
    train,
)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="jointspace: embed text and images into one vector space, search and serve them.",
)
app.command()(models.models)
app.command()(embed.embed)
app.command()(train.train)
app.command("eval")(evaluate.eval_cmd)
app.command()(serve.serve)
app.command("fit-classifier")(classifier.fit_classifier)
app.command("fit-fusion-head")(classifier.fit_fusion_head)
app.command()(caption.caption)
app.command()(generate.generate)
app.add_typer(keys.app, name="keys")
app.add_typer(job.app, name="job")
app.add_typer(model.app, name="model")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
