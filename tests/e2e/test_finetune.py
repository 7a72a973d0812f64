"""Fine-tuning a model directory's towers through `jointspace train --target towers`: a random-init
open_clip checkpoint and a tiny transformers CLIP, each fine-tuned a few steps on a folder of
captioned pictures and served through `model:DIR`; parts trained against the towers before are
reported stale (by `model show`, and at load, with the command that retrains each); collections
embedded with the towers before are refused with 409 and the message to re-embed them, while
collections made before stamps existed keep working; every bad input is one line, exit 2, and
nothing written into DIR."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from encoders import ModelLoadError, load_encoder
from encoders.fingerprint import fingerprint
from encoders.modeldir import file_digest, install_part, load_base, part_record, read_model_dir

runner = CliRunner()
COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30),
           "white": (240, 240, 240)}  # fmt: skip
BOXES = {"square": (8, 8, 24, 24), "bar": (2, 13, 30, 19), "dot": (13, 13, 19, 19)}


def cli(*args) -> tuple[int, str, str]:
    r = runner.invoke(app, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


def draw(colour: str, shape: str) -> Image.Image:
    img = Image.new("RGB", (32, 32), (250, 250, 250))
    img.paste(COLOURS[colour], BOXES[shape])
    return img


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """A catalog folder: 12 pictures, each beside its same-stem caption."""
    d = tmp_path_factory.mktemp("shapes")
    for c in COLOURS:
        for s in BOXES:
            draw(c, s).save(d / f"{c}-{s}.png")
            (d / f"{c}-{s}.txt").write_text(f"a {c} {s}")
    return d


def model_dir(tmp_path, base: str, files: dict | None = None):
    d = tmp_path / "shop"
    d.mkdir()
    for name, src in (files or {}).items():
        shutil.copy(src, d / name)
    code, _, err = cli("model", "new", d, "--base", base)
    assert code == 0, err
    return d


def tune(d, shapes, tmp_path, *extra) -> str:
    code, out, err = cli("train", "--target", "towers", "--model", d, "--data", shapes,
                         "--steps", 3, "--batch-size", 4, "--out", tmp_path / "run", *extra)  # fmt: skip
    assert code == 0, err
    return out + err


def vector(client, text: str) -> np.ndarray:
    r = client.post("/v1/embeddings", json={"input": [text]})
    assert r.status_code == 200, r.text
    return np.array(r.json()["data"][0]["embedding"])


def test_an_open_clip_checkpoints_towers_fine_tune_and_serve_as_the_model(
    tiny_open_clip, shapes, tmp_path, make_client
):
    arch, ckpt = tiny_open_clip["vit"]
    d = model_dir(tmp_path, f"open_clip:{arch}@towers.pt", {"towers.pt": ckpt})
    before = load_encoder(f"model:{d}", device="cpu").embed_text(["a red square"])[0]
    said = tune(d, shapes, tmp_path)
    md = json.loads((d / "model.json").read_text())
    folder = md["towers"]
    assert folder.startswith("towers-") and md["origin"] == f"open_clip:{arch}@towers.pt"
    assert md["base"] == f"open_clip:{arch}@{folder}/open_clip_model.safetensors"
    rec = json.loads((d / folder / "towers.json").read_text())
    assert rec["digest"] == file_digest(d / folder / "open_clip_model.safetensors")
    assert folder == f"towers-{rec['digest'][:8]}"
    assert (rec["training"]["mode"], rec["training"]["steps"], rec["training"]["pairs"]) == (
        "lora",
        3,
        11,
    )
    assert rec["training"]["held_out"] == 1 and rec["training"]["adapted"] > 0
    assert set(rec["figures"]) == {"before", "after"} and "held-out" in rec["figures"]["after"]
    assert (d / folder / "MODEL_CARD.md").read_text().startswith("# Fine-tuned towers")
    assert "| held-out | t2i_recall@1 |" in said
    assert f"towers installed in {d / folder}" in said
    tuned = load_base(f"open_clip:{arch}@{d / folder / 'open_clip_model.safetensors'}", "cpu")
    with make_client(f"model:{d}") as c:
        info = c.get("/v1/models").json()["data"][0]
        assert info["base"] == md["base"]
        got = vector(c, "a red square")
    np.testing.assert_allclose(got, tuned.embed_text(["a red square"])[0], atol=1e-5)
    assert np.abs(got - before).max() > 1e-4  # the fine-tuned towers, not the old ones
    _code, out, _ = cli("model", "show", d)
    assert out.splitlines()[2].startswith(f"towers: fine-tuned from open_clip:{arch}@towers.pt "
                                          f"(origin open_clip:{arch}@towers.pt) in mode lora")  # fmt: skip


def test_a_tiny_transformers_clip_fine_tunes_in_each_mode_and_serves(
    tiny_clip_dir, shapes, tmp_path, make_client
):
    d = model_dir(tmp_path, f"hf:{tiny_clip_dir}")
    for i, mode in enumerate(("full", "lit", "head", "lora")):
        code, _, err = cli("train", "--target", "towers", "--model", d, "--data", shapes,
                           "--mode", mode, "--steps", 2, "--batch-size", 4,
                           "--out", tmp_path / f"run-{i}")  # fmt: skip
        assert code == 0, err
    md = read_model_dir(d)
    assert md.base == f"hf:{md.towers}" and md.origin == f"hf:{tiny_clip_dir}"
    assert [p.name for p in d.iterdir() if p.name.startswith("towers-")] == [md.towers]
    assert md.towers_record()["from"].startswith("hf:towers-")  # the fourth started from the third
    with make_client(f"model:{d}") as c:
        r = c.post("/v1/embeddings", json={"input": [{"type": "image", "image": png(draw(
            "red", "bar"))}]})  # fmt: skip
        assert r.status_code == 200, r.text
        got = vector(c, "a blue dot")
    want = load_base(f"hf:{d / md.towers}", "cpu").embed_text(["a blue dot"])[0]
    np.testing.assert_allclose(got, want, atol=1e-5)


def png(img: Image.Image) -> str:
    import base64
    import io

    buf = io.BytesIO()
    img.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_parts_trained_against_the_towers_before_are_stale_until_retrained(
    tiny_clip_dir, shapes, tmp_path
):
    d = model_dir(tmp_path, f"hf:{tiny_clip_dir}")
    (d / "captioner").mkdir()  # a part record is all the check reads (the files load lazily)
    md = read_model_dir(d)
    fp = fingerprint(load_base(md.base_spec(), "cpu"))
    install_part(md, "captioner", part_record(md.base, fp, data="products/"))
    load_encoder(f"model:{d}", device="cpu")  # it matches its base
    said = tune(d, shapes, tmp_path, "--mode", "head")
    command = f"jointspace train --target captioner --model {d} --data SRC"
    assert (
        f"now stale (trained against the towers before): captioner; model:{d} will not load "
        f"until each is retrained: {command}" in said.replace("\n", " ")
    )
    md = read_model_dir(d)
    message = (f"part 'captioner' of model {d} was trained against the base 'hf:{tiny_clip_dir}'"
               f", before the towers were fine-tuned (now towers {md.towers_id}); retrain it: "
               f"{command}")  # fmt: skip
    with pytest.raises(ModelLoadError) as e:
        load_encoder(f"model:{d}", device="cpu")
    assert str(e.value) == message
    code, _, err = cli("embed", "--model", f"model:{d}", "--text", "a cat")
    assert (code, err.strip()) == (2, f"error: {message}")
    code, out, _ = cli("model", "show", d)
    assert out.splitlines()[-2].endswith(
        f"STALE: trained against the towers before they were fine-tuned; retrain: {command}"
    )
    shown = json.loads(cli("model", "show", d, "--json")[1])["parts"]["captioner"]
    assert (shown["matches"], shown["stale"]) == (False, "towers")
    # retrained (here: stamped again) against the new towers, it loads, and records them
    install_part(md, "captioner", part_record(md.base, fingerprint(load_base(md.base_spec(),
                                                                             "cpu"))))  # fmt: skip
    assert json.loads((d / "captioner" / "part.json").read_text())["captioner"]["towers"] == \
        md.towers_id  # fmt: skip
    assert load_encoder(f"model:{d}", device="cpu").parts.keys() == {"captioner"}


def test_collections_embedded_with_the_towers_before_are_refused(
    tiny_clip_dir, shapes, tmp_path, make_client
):
    from index import Catalog

    d = model_dir(tmp_path, f"hf:{tiny_clip_dir}")
    items = {"items": [{"id": "a", "text": "a red square"}, {"id": "b", "text": "a blue bar"}]}
    with make_client(f"model:{d}") as c:
        assert c.post("/collections", json={"name": "shop"}).status_code == 201
        assert c.put("/collections/shop/items", json=items).status_code == 200
        old_digest = c.app.state.runtime.encoder.model_digest
    cat = Catalog(tmp_path / "data" / "collections")  # made before stamps were recorded
    legacy = cat.create("legacy", 24, model=f"model:{d}")
    legacy.upsert(["x"], np.ones((1, 24), np.float32), model=f"model:{d}")
    assert cat.get("shop").model_digest == old_digest and legacy.model_digest is None
    cat.close()
    tune(d, shapes, tmp_path)
    new_digest = read_model_dir(d).model_digest
    message = (f"collection 'shop' holds vectors from the towers 'model:{d}' had when it was made "
               f"(towers {old_digest}); that model's towers are {new_digest} now (fine-tuned "
               f"since), and the two do not share a space: re-embed the collection with a batch "
               f"job (jointspace job embed SRC --model model:{d} --out OUT --ingest NAME, into a "
               "new collection, or after dropping 'shop')")  # fmt: skip
    with make_client(f"model:{d}") as c:
        for r in (c.post("/collections/shop/search", json={"query": {"text": "a red square"}}),
                  c.put("/collections/shop/items", json=items),
                  c.post("/collections/shop/search", json={"query": {"id": "a"}})):  # fmt: skip
            assert r.status_code == 409, r.text
            assert r.json()["error"] == {"type": "towers_changed", "message": message,
                                         "code": 409}  # fmt: skip
        # the words alone still search it; given vectors still go in; older collections work
        r = c.post("/collections/shop/search", json={"query": {"text": "red"}, "mode": "keyword"})
        assert r.status_code == 200 and [h["id"] for h in r.json()["hits"]] == ["a"]
        r = c.post("/collections/legacy/search", json={"query": {"text": "a red square"}})
        assert r.status_code == 200, r.text
        assert c.post("/collections", json={"name": "shop2"}).status_code == 201
        assert c.put("/collections/shop2/items", json=items).status_code == 200
        r = c.post("/collections/shop2/search", json={"query": {"text": "a red square"}})
        assert r.status_code == 200 and r.json()["hits"][0]["id"] == "a"
    # the batch job that re-embeds: into the old collection refused, into a new one fine
    data = ("--data-dir", tmp_path / "data")
    code, _, err = cli("job", "embed", shapes, "--model", f"model:{d}", "--out",
                       tmp_path / "vectors", "--workers", 0, "--ingest", "shop", *data)  # fmt: skip
    assert (code, err.strip().splitlines()[-1]) == (2, f"error: {message}")
    code, _out, err = cli("job", "ingest", tmp_path / "vectors", "shop3", *data)
    assert code == 0, err
    assert Catalog(tmp_path / "data" / "collections").get("shop3").model_digest == new_digest


# -- refusals ----------------------------------------------------------------------------------
def snapshot(d) -> dict:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file()
            else None for p in sorted(d.rglob("*"))}  # fmt: skip


def refused(d, *args) -> str:
    before = snapshot(d)
    code, _, err = cli("train", "--target", "towers", "--model", d, *args)
    assert code == 2, err
    assert snapshot(d) == before  # nothing written into DIR
    assert len(err.strip().splitlines()) == 1, err
    return err.strip().removeprefix("error: ")


def test_every_bad_input_is_one_line_exit_2_and_nothing_written(
    tiny_clip_dir, tiny_clap_dir, tiny_open_clip, shapes, tmp_path
):
    d = model_dir(tmp_path, f"hf:{tiny_clip_dir}")
    run = ("--out", tmp_path / "run")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert refused(d, "--data", empty, *run) == (
        f"{empty}: no image-caption pairs found (a folder of media with same-stem .txt captions, "
        "KEY.ext + KEY.txt in .tar shards, or a table with --path-column and --text-column)"
    )
    orphan = tmp_path / "orphan"
    orphan.mkdir()
    draw("red", "bar").save(orphan / "a.png")
    (orphan / "a.txt").write_text("a red bar")
    (orphan / "b.txt").write_text("a blue bar")
    assert refused(d, "--data", orphan, *run) == (
        f"{orphan}: caption b.txt has no image beside it (a same-stem file); 1 caption(s) "
        "without their medium"
    )
    bare = tmp_path / "bare"
    bare.mkdir()
    draw("red", "bar").save(bare / "a.png")
    assert refused(d, "--data", bare, *run) == (
        f"{bare}: 1 of 1 inputs have no caption; fine-tuning the towers trains on captioned pairs "
        "(a same-stem .txt, or --text-column)"
    )
    assert refused(d, "--data", shapes, "--mode", "prefix", *run) == (
        "--mode must be one of lora, full, lit, head, not 'prefix'"
    )
    assert refused(d, "--data", shapes, "--loss", "siglip", *run) == (
        f"--loss siglip: 'hf:{tiny_clip_dir}' scores with a softmax temperature, which a siglip "
        "loss does not train; fine-tune it with --loss clip, its own"
    )
    for lr in ("5", "0", "-1e-4", "nan"):
        assert refused(d, "--data", shapes, "--lr", lr, *run).startswith(
            f"--lr must be above 0 and at most 1, not {float(lr):g} (fine-tuning rates are"
        )
    assert refused(d, "--data", shapes, "--steps", 0, *run) == "--steps must be at least 1, not 0"
    assert refused(d, "--data", shapes, "--steps", 2_000_000, *run) == (
        "--steps must be from 1 to 1,000,000, not 2000000"
    )
    assert refused(d, "--data", shapes, "--batch-size", 64, *run) == (
        "--batch-size 64 takes 64 new pairs a step, more than the 11 there are to train on (a "
        "tenth is held out): use a smaller --batch-size or more pairs"
    )
    assert refused(d, "--data", shapes, "--replay-share", 0.3, *run) == (
        "--replay-share needs --replay SRC (the pairs to mix in)"
    )
    assert refused(d, "--data", shapes, "--replay", shapes, "--replay-share", 1, *run) == (
        "--replay-share must be from 0 to below 1, not 1.0"
    )
    assert refused(d, "--data", shapes, "--eval-suite", "nope", *run).startswith(
        "--eval-suite nope: unknown; known: fashion-zero-shot, "
    )
    clap = tmp_path / "clap"
    assert cli("model", "new", clap, "--base", f"hf:{tiny_clap_dir}")[0] == 0
    assert refused(clap, "--data", shapes, *run) == (
        f"fine-tuning trains a text tower and an image tower together; 'hf:{tiny_clap_dir}' has "
        "no image tower (it embeds audio, text)"
    )
    arch, _ckpt = tiny_open_clip["vit"]
    gone = tmp_path / "gone"
    gone.mkdir()
    (gone / "model.json").write_text(json.dumps({"base": f"open_clip:{arch}@missing.pt"}))
    assert refused(gone, "--data", shapes, *run) == (
        f"checkpoint file not found: {gone / 'missing.pt'}"
    )
    code, _, err = cli("train", "--target", "towers", "--data", shapes)
    assert (code, err.strip()) == (2, "error: --target towers fine-tunes a model directory's "
                                      "towers: give --model DIR (--target house trains the house "
                                      "towers from scratch)")  # fmt: skip
    code, _, err = cli("train", "--target", "captioner", "--model", d, "--mode", "lit")
    assert (code, err.strip()) == (2, "error: --mode applies to --target towers --model DIR only")
    assert not (tmp_path / "run" / "model").exists()


def test_eval_compares_models_in_one_table(tiny_clip_dir, shapes, tmp_path):
    """Before and after in one run of `jointspace eval`: one column per model, beside chance."""
    d = model_dir(tmp_path, f"hf:{tiny_clip_dir}")
    tune(d, shapes, tmp_path, "--mode", "head")
    code, out, err = cli("eval", "--model", f"hf:{tiny_clip_dir}", "--model", f"model:{d}",
                         "--suite", "digits-zero-shot", "--limit", 20,
                         "--out", tmp_path / "eval.json")  # fmt: skip
    assert code == 0, err
    row = next(line for line in out.splitlines() if "digits-zero-shot" in line)
    assert row.split("│")[3:6] != ["", "", ""] and row.rstrip("│ ").endswith("0.100")
    results = json.loads((tmp_path / "eval.json").read_text())
    assert [r["model"] for r in results] == [f"hf:{tiny_clip_dir}", f"model:{d}"]
    assert all(r["suites"]["digits-zero-shot"]["n"] == 20 for r in results)
