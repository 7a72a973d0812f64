"""Model directories on bases other than the house model: a random-init open_clip checkpoint the
test writes (torch.save of a state dict) and a tiny transformers CLIP (save_pretrained). Every part
is trained a few steps through `jointspace train --model`, installed, and served; a part moved
beside another base is refused at load; every bad-data refusal is one line and exit 2 with
nothing installed; `jointspace model show` prints the stamps."""

from __future__ import annotations

import base64
import io
import json
import shutil

import numpy as np
import open_clip
import pytest
import soundfile as sf
import torch
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from encoders import ModelLoadError, load_encoder
from encoders.fingerprint import fingerprint
from encoders.modeldir import load_base
from housedata.writer import write_video

runner = CliRunner()
ARCH = "jointspace-test-tiny-vit"
COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30),
           "white": (240, 240, 240)}  # fmt: skip
SHAPES = ("square", "bar")


def cli(*args) -> tuple[int, str, str]:
    r = runner.invoke(app, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


def picture(colour: str, shape: str) -> Image.Image:
    a = np.full((32, 32, 3), 250, np.uint8)
    if shape == "square":
        a[8:24, 8:24] = COLOURS[colour]
    else:
        a[13:19, 2:30] = COLOURS[colour]
    return Image.fromarray(a)


def tone(freq: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * 16_000)) / 16_000
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A folder of captioned pictures and one of captioned tones."""
    root = tmp_path_factory.mktemp("data")
    (root / "pictures").mkdir()
    (root / "sounds").mkdir()
    for colour in COLOURS:
        for shape in SHAPES:
            picture(colour, shape).save(root / "pictures" / f"{colour}-{shape}.png")
            (root / "pictures" / f"{colour}-{shape}.txt").write_text(f"a {colour} {shape}.")
    for i, freq in enumerate((220, 330, 440, 550, 660, 880)):
        sf.write(root / "sounds" / f"tone{i}.wav", tone(freq), 16_000)
        (root / "sounds" / f"tone{i}.txt").write_text(f"a tone of {freq} hertz")
    return root


@pytest.fixture(scope="module")
def oc_dir(tmp_path_factory):
    """A model directory on a tiny random-init open_clip architecture, its checkpoint beside
    model.json and named relative to it."""
    cfg = tmp_path_factory.mktemp("oc-config")
    (cfg / f"{ARCH}.json").write_text(json.dumps({
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8,
                       "head_width": 32},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
                     "layers": 2},
    }))  # fmt: skip
    open_clip.add_model_config(cfg)
    torch.manual_seed(3)
    model, _, _ = open_clip.create_model_and_transforms(ARCH, pretrained=None)
    d = tmp_path_factory.mktemp("oc-model") / "shop"
    d.mkdir()
    torch.save(model.state_dict(), d / "towers.pt")
    code, out, _ = cli("model", "new", d, "--base", f"open_clip:{ARCH}@towers.pt")
    assert code == 0, out
    return d


def parts_of(d) -> dict:
    return json.loads((d / "model.json").read_text())["parts"]


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def png_url(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return data_url(buf.getvalue(), "image/png")


def wav_url(wave: np.ndarray) -> str:
    buf = io.BytesIO()
    sf.write(buf, wave, 16_000, format="WAV")
    return data_url(buf.getvalue(), "audio/wav")


def test_a_new_directory_shows_its_base_and_no_parts(oc_dir):
    fp = fingerprint(load_base(f"open_clip:{ARCH}@{oc_dir / 'towers.pt'}", "cpu"))
    code, out, _ = cli("model", "show", oc_dir)
    assert code == 0
    assert out.splitlines() == [
        f"model {oc_dir}",
        f"base: open_clip:{ARCH}@towers.pt (fingerprint {fp['digest']})",
        "parts: none (train one: jointspace train --target KIND --model DIR --data SRC)",
    ]
    code, _, err = cli(
        "model", "new", oc_dir.parent / "r", "--base", f"open_clip:{ARCH}@random-init"
    )
    assert (code, err.strip()) == (
        2,
        "error: a model directory's base needs fixed weights, and "
        f"'open_clip:{ARCH}@random-init' draws new ones at every "
        "load: save them once (torch.save(model.state_dict(), "
        f"'towers.pt')) and use open_clip:{ARCH}@towers.pt",
    )
    assert not (oc_dir.parent / "r").exists()
    code, _, err = cli("model", "new", oc_dir, "--base", "house")
    assert (code, err.strip()) == (2, f"error: {oc_dir} is a model directory already (model.json "
                                      "exists)")  # fmt: skip


def test_every_part_trains_installs_and_serves_on_open_clip(oc_dir, data, tiny_lm_dir,
                                                            make_client, tmp_path):  # fmt: skip
    runs = tmp_path / "runs"
    for target, extra in [
        ("audio", ["--data", data / "sounds", "--batch-size", 4]),
        ("captioner", ["--data", data / "pictures", "--batch-size", 4, "--lm", tiny_lm_dir]),
        (
            "decoder",
            ["--data", data / "pictures", "--batch-size", 4, "--size", 16, "--prior-steps", 20],
        ),
        ("prior", ["--data", data / "pictures", "--batch-size", 4]),
        ("temporal", ["--data", "clips", "--limit", 16, "--batch-size", 8]),
    ]:
        code, _, err = cli("train", "--target", target, "--model", oc_dir, "--steps", 2,
                           "--out", runs / target, *extra)  # fmt: skip
        assert code == 0, err
        assert err.strip().endswith(f"{target} installed in {oc_dir / ('decoder' if target == 'prior' else target)}; serve it as model:{oc_dir}")  # fmt: skip
    assert parts_of(oc_dir) == {"audio": "audio", "captioner": "captioner", "decoder": "decoder",
                                "prior": "decoder", "temporal": "temporal"}  # fmt: skip
    stamp = json.loads((oc_dir / "audio" / "part.json").read_text())["audio"]
    assert stamp["base"] == f"open_clip:{ARCH}@towers.pt" and stamp["steps"] == 2
    assert stamp["clips"] == 5 and stamp["held_out"] == 1 and stamp["data"] == str(data / "sounds")
    assert set(stamp["figures"]) == {"held_out_audio_to_caption_recall@1", "chance@1"}

    with make_client(f"model:{oc_dir}", max_queue_wait_ms=60_000) as c:
        models = c.get("/v1/models").json()["data"][0]
        assert models["modalities"] == ["audio", "image", "text"]
        assert models["parts"] == ["audio", "captioner", "decoder", "prior", "temporal"]
        assert models["base"] == f"open_clip:{ARCH}@towers.pt" and models["dim"] == 32
        r = c.post(
            "/v1/embeddings", json={"input": [{"type": "audio", "audio": wav_url(tone(440))}]}
        )
        assert r.status_code == 200, r.text
        v = np.array(r.json()["data"][0]["embedding"])
        assert v.shape == (32,) and abs(np.linalg.norm(v) - 1) < 1e-5
        r = c.post("/caption", json={"max_tokens": 4, "input": [
            {"type": "image", "image": png_url(picture("red", "square"))},
            {"type": "audio", "audio": wav_url(tone(330))}]})  # fmt: skip
        assert r.status_code == 200, r.text
        assert [bool(d["caption"]) for d in r.json()["data"]] == [True, True]
        r = c.post("/generate", json={"prompt": "a red square", "steps": 3})
        assert r.status_code == 200, r.text
        first = r.json()["data"][0]
        pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(first["b64_json"]))))
        assert pixels.shape == (16, 16, 3)
        frames = [np.full((32, 32, 3), COLOURS[c], np.uint8) for c in ("red", "blue")
                  for _ in range(8)]  # fmt: skip
        mp4 = data_url(write_video(frames, 8, "MP4"), "video/mp4")
        got = {p: c.post("/embed", json={"videos": [mp4], "segments": {"pooling": p}})
               for p in ("mean", "temporal")}  # fmt: skip
        assert [g.status_code for g in got.values()] == [200, 200]
        vecs = {p: np.array(g.json()["embeddings"][0]["vector"]) for p, g in got.items()}
        enc = c.app.state.runtime.encoder
        from encoders.video import decode_video

        want = enc.encode_video([decode_video(base64.b64decode(mp4.split(",")[1]))], 4.0,
                                pooling="temporal")[0].vector  # fmt: skip
        np.testing.assert_allclose(vecs["temporal"], want, atol=1e-5)


def test_eval_runs_the_suites_the_parts_allow(oc_dir, tiny_clip_dir):
    from training.evaluate import default_suites, known_suites

    every = set(default_suites(load_encoder(f"model:{oc_dir}", device="cpu")))
    assert every == set(known_suites())  # the audio, captioning and generation suites included
    bare = set(default_suites(load_encoder(f"hf:{tiny_clip_dir}", device="cpu")))
    assert every - bare == {"audio-speech", "audio-sounds", "video-sound-moments", "fusion-head",
                            "captioning", "generation"}  # fmt: skip


def test_model_show_prints_each_part_and_its_stamp(oc_dir):
    code, out, _ = cli("model", "show", oc_dir, "--json")
    assert code == 0
    shown = json.loads(out)
    assert list(shown["parts"]) == ["audio", "temporal", "captioner", "decoder", "prior"]
    assert {k: p["matches"] for k, p in shown["parts"].items()} == dict.fromkeys(
        shown["parts"], True
    )
    assert {p["base_fingerprint"] for p in shown["parts"].values()} == {shown["base_fingerprint"]}
    code, text, _ = cli("model", "show", oc_dir)
    lines = text.splitlines()
    assert lines[2] == "audio: audio tower: sounds and speech into the base's space [audio/]"
    assert lines[3] == (f"  trained against open_clip:{ARCH}@towers.pt (fingerprint "
                        f"{shown['base_fingerprint']}): matches the base")  # fmt: skip


def test_a_tiny_transformers_clip_gets_a_captioner_and_an_audio_tower(tmp_path, tiny_clip_dir,
                                                                      data, tiny_lm_dir,
                                                                      make_client):  # fmt: skip
    d = tmp_path / "hf-model"
    assert cli("model", "new", d, "--base", f"hf:{tiny_clip_dir}")[0] == 0
    for target, extra in [("captioner", ["--data", data / "pictures", "--lm", tiny_lm_dir]),
                          ("audio", ["--data", data / "sounds"])]:  # fmt: skip
        code, _, err = cli("train", "--target", target, "--model", d, "--steps", 2,
                           "--batch-size", 4, "--out", tmp_path / target, *extra)  # fmt: skip
        assert code == 0, err
    with make_client(f"model:{d}") as c:
        assert c.get("/v1/models").json()["data"][0]["parts"] == ["audio", "captioner"]
        r = c.post("/caption", json={"max_tokens": 4, "input": [
            {"type": "image", "image": png_url(picture("blue", "bar"))}]})  # fmt: skip
        assert r.status_code == 200 and r.json()["data"][0]["caption"]
        r = c.post("/generate", json={"prompt": "a blue bar"})
        assert r.status_code == 422 and r.json()["error"]["type"] == "no_decoder"


def test_a_part_moved_beside_another_base_is_refused(oc_dir, tmp_path, tiny_clip_dir):
    d = tmp_path / "moved"
    assert cli("model", "new", d, "--base", f"hf:{tiny_clip_dir}")[0] == 0
    shutil.copytree(oc_dir / "temporal", d / "temporal")
    (d / "model.json").write_text(json.dumps({"base": f"hf:{tiny_clip_dir}",
                                              "parts": {"temporal": "temporal"}}))  # fmt: skip
    theirs = fingerprint(load_base(f"open_clip:{ARCH}@{oc_dir / 'towers.pt'}", "cpu"))["digest"]
    ours = fingerprint(load_base(f"hf:{tiny_clip_dir}", "cpu"))["digest"]
    message = (f"part 'temporal' of model {d} was trained against base 'open_clip:{ARCH}@"
               f"towers.pt' (fingerprint {theirs}), not this directory's base 'hf:{tiny_clip_dir}'"
               f" (fingerprint {ours}); retrain it: jointspace train --target temporal --model "
               f"{d} --data SRC")  # fmt: skip
    with pytest.raises(ModelLoadError) as e:
        load_encoder(f"model:{d}", device="cpu")
    assert str(e.value) == message
    code, _, err = cli("embed", "--model", f"model:{d}", "--text", "a cat")
    assert (code, err.strip()) == (2, f"error: {message}")
    code, out, _ = cli("model", "show", d)
    assert out.splitlines()[3].endswith(f"STALE: trained against another base; retrain: jointspace "
                                        f"train --target temporal --model {d} --data SRC")  # fmt: skip


def refused(d, *args) -> str:
    before = (d / "model.json").read_text()
    code, _, err = cli("train", "--model", d, "--steps", 1, *args)
    assert code == 2 and (d / "model.json").read_text() == before  # nothing installed
    assert len(err.strip().splitlines()) == 1
    return err.strip().removeprefix("error: ")


def test_bad_data_is_one_line_and_nothing_is_installed(tmp_path, tiny_clip_dir, tiny_clap_dir):
    from encoders import InputError, decode_image

    d, clap = tmp_path / "m", tmp_path / "clap"
    assert cli("model", "new", d, "--base", f"hf:{tiny_clip_dir}")[0] == 0
    assert cli("model", "new", clap, "--base", f"hf:{tiny_clap_dir}")[0] == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    assert refused(d, "--target", "captioner", "--data", empty) == (
        f"{empty}: no image-caption pairs found (a folder of media with same-stem .txt captions, "
        "KEY.ext + KEY.txt in .tar shards, or a table with --path-column and --text-column)"
    )
    orphan = tmp_path / "orphan"
    orphan.mkdir()
    picture("red", "bar").save(orphan / "a.png")
    (orphan / "a.txt").write_text("a red bar.")
    (orphan / "b.txt").write_text("a blue bar.")
    assert refused(d, "--target", "captioner", "--data", orphan) == (
        f"{orphan}: caption b.txt has no image beside it (a same-stem file); 1 caption(s) "
        "without their medium"
    )
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (broken / "a.txt").write_text("a red bar.")
    with pytest.raises(InputError) as why:
        decode_image(b"\x89PNG\r\n\x1a\n not really", name="a.png")
    assert refused(d, "--target", "decoder", "--data", broken) == (
        f"{broken}: a.png cannot be read as image: {why.value}"
    )
    bare = tmp_path / "bare"
    bare.mkdir()
    picture("red", "bar").save(bare / "a.png")
    picture("blue", "bar").save(bare / "b.png")
    assert refused(d, "--target", "captioner", "--data", bare) == (
        f"{bare}: 2 of 2 inputs have no caption; the captioner part trains on captioned pairs "
        "(a same-stem .txt, or --text-column)"
    )
    assert refused(clap, "--target", "decoder", "--data", bare) == (
        f"the decoder part needs a base with an image tower; 'hf:{tiny_clap_dir}' embeds audio, "
        "text"
    )
    assert refused(clap, "--target", "temporal") == (
        f"the temporal part needs a base with an image tower; 'hf:{tiny_clap_dir}' embeds audio, "
        "text"
    )
    assert refused(d, "--target", "prior", "--data", bare) == (
        f"{d} has no decoder: train --target decoder first (it trains the prior too)"
    )
    assert refused(d, "--target", "temporal", "--data", bare) == (
        "the temporal head trains on the 'clips' preset (rendered clips with captions of their "
        "order); videos from a source are not read yet"
    )
    assert refused(d, "--target", "audio", "--data", "tuxpaint") == (
        "tuxpaint are pictures; the audio tower trains on sounds with captions (a source, or the "
        "'speech' preset)"
    )
    assert refused(d, "--target", "heads", "--data", bare) == (
        "--target with --model must be one of towers, audio, temporal, captioner, decoder, prior, "
        "not 'heads'"
    )
