"""The trainer: a killed run resumes at the same step with the same loss curve; the exported
model loads through the `house:DIR` spec and embeds exactly as the trained towers do."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from encoders import load_encoder
from training.towers.train import TrainConfig, Trainer

COLOURS = {
    "red": (220, 30, 30),
    "blue": (30, 40, 220),
    "green": (30, 180, 40),
    "yellow": (230, 220, 30),
}
SHAPES = ["square", "bar", "dot", "frame"]


def draw(colour, shape: str) -> Image.Image:
    img = Image.new("RGB", (24, 24), "white")
    box = {
        "square": (4, 4, 20, 20),
        "bar": (2, 9, 22, 15),
        "dot": (9, 9, 15, 15),
        "frame": (1, 1, 23, 23),
    }
    img.paste(colour, box[shape])
    return img


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("pairs")
    rows = ["image,caption"]
    for i, (cname, rgb) in enumerate(COLOURS.items()):
        for j, shape in enumerate(SHAPES):
            for k in range(3):
                name = f"{i}-{j}-{k}.png"
                draw(rgb, shape).rotate(90 * k).save(d / name)
                rows.append(f"{name},a {cname} {shape}")
    (d / "captions.csv").write_text("\n".join(rows) + "\n")
    return d


def config(folder, out, **kw) -> TrainConfig:
    base = dict(
        data=[f"folder:{folder}"], batch_size=16, steps=12, warmup=3, lr=3e-3, eval_every=10_000,
        save_every=10_000, out=str(out), embed_dim=16, widths=[8, 16, 16, 16],
        depths=[1, 1, 1, 1], repeat=2,
    )  # fmt: skip
    return TrainConfig.load(**(base | kw))


def test_resume_gives_the_same_loss_curve(folder, tmp_path):
    straight = Trainer(config(folder, tmp_path / "a")).run()
    first = Trainer(config(folder, tmp_path / "b"))
    first.run(stop_at=5)  # saves a checkpoint at step 5, as a killed run would have last done
    assert (tmp_path / "b" / "checkpoint.pt").is_file()
    again = Trainer(config(folder, tmp_path / "b"))
    assert again.resume() and again.step == 5
    resumed = again.run()
    assert [r["step"] for r in resumed] == list(range(1, 13))
    np.testing.assert_allclose(
        [r["loss"] for r in resumed], [r["loss"] for r in straight], rtol=0, atol=1e-6
    )
    assert straight[-1]["loss"] < straight[0]["loss"]


def test_resume_refuses_other_settings(folder, tmp_path):
    Trainer(config(folder, tmp_path)).run(stop_at=2)
    other = Trainer(config(folder, tmp_path, lr=1e-3))
    with pytest.raises(ValueError, match=r"written with other settings \(lr\)"):
        other.resume()


@pytest.mark.parametrize("loss", ["siglip", "clip"])
def test_exported_model_loads_and_matches_the_towers(folder, tmp_path, loss):
    tr = Trainer(config(folder, tmp_path, loss=loss, steps=6))
    tr.run()
    enc = load_encoder(f"house:{tmp_path / 'model'}", device="cpu")
    assert (enc.dim, enc.loss) == (16, "sigmoid" if loss == "siglip" else "softmax")
    assert enc.logit_scale == pytest.approx(float(tr.main_loss.scale().detach()), rel=1e-6)
    captions = tr.mixture.captions[:5]
    ids = torch.tensor([tr.mixture.caption_index[c] for c in captions])
    tr.towers.eval()
    with torch.no_grad():
        want = tr.towers.text_features(ids).numpy()
    np.testing.assert_allclose(enc.embed_text(captions), want, atol=1e-5)
    img = draw(COLOURS["red"], "dot")
    from encoders.house import preprocess

    with torch.no_grad():
        want = tr.towers.image_features(preprocess(img, tr.hcfg)[None]).numpy()
    np.testing.assert_allclose(enc.embed_images([img]), want, atol=1e-5)


def test_bad_options_are_one_line_errors():
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--loss", "triplet", "--out", "/nonexistent/x"])
    assert res.exit_code == 2
    assert res.stderr == "error: loss must be 'siglip' or 'clip', not 'triplet'\n"
    res = runner.invoke(app, ["train", "--data", "imagenet"])
    assert res.exit_code == 2
    assert res.stderr == (
        "error: unknown data source 'imagenet': use fashion-mnist, tuxpaint, emoji, folder:DIR or "
        "tar:GLOB\n"
    )


def test_matryoshka_option_trains_prefixes_and_the_model_says_so(folder, tmp_path):
    tr = Trainer(config(folder, tmp_path, steps=3, matryoshka=[4, 8]))
    assert tr.hcfg.matryoshka == [4, 8, 16]
    tr.run()
    enc = load_encoder(f"house:{tmp_path / 'model'}", device="cpu")
    assert enc.info()["trained_dimensions"] == [4, 8, 16]
    plain = Trainer(config(folder, tmp_path / "plain", steps=3))
    plain.run()
    plain_enc = load_encoder(f"house:{tmp_path / 'plain' / 'model'}", device="cpu")
    assert plain_enc.info()["trained_dimensions"] == [16]
    with pytest.raises(
        ValueError, match=r"^matryoshka dimensions must be from 1 to 16, not \[32\]$"
    ):
        Trainer(config(folder, tmp_path / "bad", matryoshka=[32]))
    res = CliRunner().invoke(app, ["train", "--target", "audio", "--matryoshka", "4"])
    assert res.exit_code == 2
    assert res.stderr == "error: --matryoshka applies to --target house only\n"
