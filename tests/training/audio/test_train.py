"""The audio tower's trainer: a few steps on real offline data (Tux Paint sounds, espeak-ng
speech) export a tower that the house model loads from `audio/` and uses for `embed_audio`; a
run resumes at its step and refuses other settings; the frozen text targets never move."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from encoders import load_encoder
from encoders.audio import Waveform
from encoders.house import default_house_dir
from housedata.sets import TUXPAINT_DIR, MissingData
from training.audio.data import espeak_binary
from training.audio.train import AudioTrainConfig, AudioTrainer, augment


def _missing() -> str | None:
    try:
        espeak_binary()
    except MissingData as e:
        return str(e)
    return None if TUXPAINT_DIR.exists() else "needs tuxpaint-stamps-default"


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


def tiny(tmp_path, steps=3) -> AudioTrainConfig:
    return AudioTrainConfig(
        steps=steps, batch_size=8, widths=[4, 8, 8, 8, 8], limit=48, eval_every=3, save_every=3,
        warmup=1, out=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip


def test_a_short_run_exports_a_tower_the_house_model_loads(tmp_path):
    tr = AudioTrainer(tiny(tmp_path))
    assert len(tr.clips) == 48
    text_before = tr.model.text.clone()
    history = tr.run()
    assert [h["step"] for h in history] == [1, 2, 3]
    assert 0.0 <= history[-1]["spoken_top1"] <= 1.0
    assert (tr.model.text == text_before).all()  # the text side is frozen

    house = tmp_path / "house"
    house.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(default_house_dir() / f, house / f)
    shutil.copytree(tmp_path / "run" / "model" / "audio", house / "audio")
    enc = load_encoder(f"house:{house}", device="cpu")
    assert "audio" in enc.modalities and enc.audio_rate == 16_000
    clip = Waveform(tr.clips.clip(0), 16_000)
    v = enc.embed_audio([clip])
    assert v.shape == (1, 256) and abs(float(np.linalg.norm(v)) - 1) < 1e-5
    tr.tower.eval()
    import torch

    with torch.no_grad():
        want = torch.nn.functional.normalize(tr.tower(torch.from_numpy(clip.samples)[None]), dim=-1)
    np.testing.assert_allclose(v, want.numpy(), atol=1e-5)


def test_resume_refuses_other_settings_and_batches_are_fixed(tmp_path):
    AudioTrainer(tiny(tmp_path, steps=3)).run()
    other = AudioTrainer(tiny(tmp_path, steps=4))
    with pytest.raises(ValueError, match=r"written with other settings \(steps\)"):
        other.resume()
    tr = AudioTrainer(tiny(tmp_path, steps=3))
    assert tr.resume() and tr.step == 3
    a, b = tr.batch(5), tr.batch(5)
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    caps = a[1].numpy()
    assert len(set(caps.tolist())) == len(caps)


def test_augment_crops_and_keeps_range():
    rng = np.random.default_rng(0)
    wave = np.ones(16_000 * 5, np.float32) * 0.9
    out = augment(wave, rng, 16_000 * 3)
    assert len(out) == 16_000 * 3 and out.dtype == np.float32
    assert float(np.abs(out).max()) <= 1.0


def test_cli_trains_the_audio_target(tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    config = tmp_path / "audio.toml"
    config.write_text(
        "widths = [4, 8, 8, 8, 8]\nlimit = 48\nbatch_size = 8\nwarmup = 1\neval_every = 2\n"
        f'save_every = 2\ncache_dir = "{tmp_path / "cache"}"\n'
    )
    out = tmp_path / "run"
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--target", "audio", "--config", str(config),
                              "--out", str(out), "--steps", "2"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "audio tower written to" in " ".join(res.stderr.split())  # rich wraps long lines
    assert sorted(p.name for p in (out / "model" / "audio").iterdir()) == [
        "config.json", "model.safetensors", "training.json"]  # fmt: skip
    res = runner.invoke(app, ["train", "--target", "audio", "--data", "tuxpaint"])
    assert res.exit_code == 2
    assert res.stderr == "error: --data and --chunk-size apply to --target house only\n"
    res = runner.invoke(app, ["train", "--target", "video"])
    assert res.exit_code == 2
    assert (
        res.stderr
        == "error: --target must be 'house', 'audio', 'captioner', 'temporal', 'decoder' or "
        "'prior', not 'video'\n"
    )
    res = runner.invoke(app, ["train", "--target", "audio", "--text-share", "0.5"])
    assert res.exit_code == 2
    assert res.stderr == "error: --text-share applies to --target captioner only\n"
    res = runner.invoke(app, ["train", "--target", "captioner", "--loss", "clip"])
    assert res.exit_code == 2
    assert res.stderr == (
        "error: --target captioner takes --out, --steps, --batch-size, --lr, --seed, --text-share\n"
    )
