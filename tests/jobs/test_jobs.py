"""Batch embedding jobs with the shipped house model: each source kind, the errors file, resume
after SIGKILL, refusals, the Ray runner against the local one, and ingest into a collection."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from encoders import decode_audio, decode_image, load_encoder
from encoders.audio import encode_audio
from index import Catalog
from index.backend import open_catalog
from jobs import JobError, JobOptions, embed_job, ingest
from jobs.sources import plan

COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30)}


@pytest.fixture(scope="module")
def house():
    return load_encoder("house", device="cpu")


def png(path: Path, colour, size=(40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def tone(seconds=1.0, rate=16_000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return encode_audio((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)


@pytest.fixture()
def folder(tmp_path) -> Path:
    src = tmp_path / "src"
    for name, rgb in COLOURS.items():
        png(src / f"{name}.png", rgb)
    (src / "red.txt").write_text("a red square\n")
    (src / "red.json").write_text(json.dumps({"colour": "red", "price": 3}))
    (src / "notes" / "lone.txt").parent.mkdir()
    (src / "notes" / "lone.txt").write_text("a caption with no picture")
    (src / "notes" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    (src / "notes" / "readme.md").write_text("not an input")
    (src / "sounds").mkdir()
    (src / "sounds" / "beep.wav").write_bytes(tone())
    return src


def rows(out: Path) -> list[dict]:
    found = []
    for path in sorted(out.glob("shard-*.parquet")):
        found += pq.read_table(path).to_pylist()
    return found


def errors(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "_errors.jsonl").read_text().splitlines()]


def test_folder_job(folder, tmp_path, house):
    out = tmp_path / "out"
    manifest = embed_job([folder], out, "house", JobOptions(workers=2, shard_size=3))
    got = rows(out)
    assert [r["id"] for r in got] == [
        "blue.png", "green.png", "notes/lone.txt", "red.png", "sounds/beep.wav",
    ]  # fmt: skip
    assert [r["modality"] for r in got] == ["image", "image", "text", "image", "audio"]
    assert [r["source"] for r in got] == [r["id"] for r in got]
    red = got[3]
    assert json.loads(red["metadata"]) == {"colour": "red", "price": 3, "text": "a red square"}
    assert red["start"] is None and red["end"] is None
    # the same vectors as the library (and the API) give for the same files
    want = house.embed_images([decode_image(folder / "red.png")])[0]
    np.testing.assert_allclose(np.array(red["vector"], np.float32), want, atol=1e-6)
    clip = decode_audio(folder / "sounds" / "beep.wav", house.audio_rate)
    np.testing.assert_allclose(got[4]["vector"], house.embed_audio([clip])[0], atol=1e-5)
    np.testing.assert_allclose(
        got[2]["vector"], house.embed_text(["a caption with no picture"])[0], atol=1e-6
    )
    assert errors(out) == [{"id": "notes/broken.jpg", "source": "notes/broken.jpg",
                            "modality": "image", "error": "corrupt JPEG header"}]  # fmt: skip
    assert manifest["items"] == 6 and manifest["shards"] == 2 and manifest["errors"] == 1
    assert manifest["rows"] == {"audio": 1, "image": 3, "text": 1}
    assert manifest["model"] == "house" and manifest["dim"] == 256 and manifest["complete"]
    assert sorted(p.name for p in out.glob("shard-*")) == [
        "shard-00000.parquet",
        "shard-00001.parquet",
    ]
    schema = pq.read_schema(out / "shard-00000.parquet")
    assert schema.field("vector").type == pa.list_(pa.float32(), 256)


def test_output_reads_as_a_dataset(folder, tmp_path):
    """pandas and pyarrow read the output directory itself: the side files' leading `_` keeps
    them out of the dataset."""
    import pandas as pd
    import pyarrow.dataset as pds

    out = tmp_path / "out"
    embed_job([folder], out, "house", JobOptions(workers=0, shard_size=3))
    assert sorted(p.name for p in out.iterdir()) == [
        "_errors", "_errors.jsonl", "_manifest.json", "shard-00000.parquet", "shard-00001.parquet",
    ]  # fmt: skip
    assert sorted(p.name for p in (out / "_errors").iterdir()) == [
        "shard-00000.jsonl", "shard-00001.jsonl",
    ]  # fmt: skip
    want = rows(out)
    frame = pd.read_parquet(out)
    assert list(frame.columns) == ["id", "source", "modality", "vector", "metadata", "start", "end"]
    assert frame["id"].tolist() == [r["id"] for r in want]
    got = pds.dataset(out, format="parquet").to_table().to_pylist()
    assert got == want
    for r, vec in zip(want, frame["vector"], strict=True):
        np.testing.assert_array_equal(np.asarray(vec, np.float32), np.float32(r["vector"]))


def test_first_layout_is_migrated_on_resume(folder, tmp_path):
    """A directory written with manifest.json, errors/ and errors.jsonl resumes under the new
    names, and the CLI says so once."""
    out = tmp_path / "out"
    embed_job([folder], out, "house", JobOptions(workers=0, shard_size=3))
    before = rows(out)
    for old, new in (("manifest.json", "_manifest.json"), ("errors", "_errors"),
                     ("errors.jsonl", "_errors.jsonl")):  # fmt: skip
        (out / new).rename(out / old)
    (out / "shard-00001.parquet").unlink()  # an interrupted job: one shard still to do
    res = CliRunner().invoke(app, ["job", "embed", str(folder), "--out", str(out), "--workers",
                                   "0", "--shard-size", "3"])  # fmt: skip
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())  # the terminal wraps long lines
    assert said.count("renamed manifest.json, errors/ and errors.jsonl") == 1
    assert (
        f"{out}: renamed manifest.json, errors/ and errors.jsonl to _manifest.json, _errors/ and _errors.jsonl, so that data tools read the directory as a dataset"
        in said
    )
    assert "resuming: 1 of 2 shards are done" in said
    assert sorted(p.name for p in out.iterdir()) == [
        "_errors", "_errors.jsonl", "_manifest.json", "shard-00000.parquet", "shard-00001.parquet",
    ]  # fmt: skip
    assert rows(out) == before
    assert errors(out)[0]["id"] == "notes/broken.jpg"


def make_tar(path: Path, members: dict[str, bytes]) -> Path:
    import io

    with tarfile.open(path, "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def png_bytes(rgb) -> bytes:
    import io

    buf = io.BytesIO()
    Image.new("RGB", (40, 30), rgb).save(buf, format="PNG")
    return buf.getvalue()


def test_tar_shards(tmp_path, house):
    a = make_tar(tmp_path / "a.tar", {
        "0001.png": png_bytes(COLOURS["red"]), "0001.txt": b"a red square",
        "0001.json": b'{"sku": "R1"}', "0002.png": png_bytes(COLOURS["blue"]),
    })  # fmt: skip
    b = make_tar(tmp_path / "b.tar", {"x/0003.txt": b"only words", "x/0004.png": b"not a png"})
    out = tmp_path / "out"
    manifest = embed_job([a, b], out, "house", JobOptions(workers=0))
    got = rows(out)
    assert [r["id"] for r in got] == ["a.tar/0001.png", "a.tar/0002.png", "b.tar/x/0003.txt"]
    assert json.loads(got[0]["metadata"]) == {"sku": "R1", "text": "a red square"}
    want = house.embed_images([Image.new("RGB", (40, 30), COLOURS["red"])])[0]
    np.testing.assert_allclose(got[0]["vector"], want, atol=1e-6)
    assert errors(out) == [{"id": "b.tar/x/0004.png", "source": "b.tar/x/0004.png",
                            "modality": "image",
                            "error": "not a supported image format (allowed: JPEG, PNG, WEBP, "
                                     "GIF, BMP)"}]  # fmt: skip
    assert manifest["kind"] == "tar" and manifest["shards"] == 2
    assert len(pq.read_table(out / "shard-00000.parquet")) == 2


def write_table(path: Path, records: list[dict]) -> Path:
    if path.suffix == ".csv":
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(records[0]))
            w.writeheader()
            w.writerows(records)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    else:
        pq.write_table(pa.Table.from_pylist(records), path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_table_of_paths_and_texts(tmp_path, suffix):
    png(tmp_path / "img" / "red.png", COLOURS["red"])
    records = [
        {"id": "p1", "path": "img/red.png", "text": "a red square", "shop": "north"},
        {"id": "p2", "path": None, "text": "blue trousers", "shop": "south"},
        {"id": "p3", "path": "img/missing.png", "text": None, "shop": "south"},
        {"id": None, "path": None, "text": None, "shop": "east"},
    ]
    out = tmp_path / "out"
    embed_job([write_table(tmp_path / f"items{suffix}", records)], out, "house",
              JobOptions(workers=0))  # fmt: skip
    got = rows(out)
    assert [(r["id"], r["source"], r["modality"]) for r in got] == [
        ("p1", f"items{suffix}:0", "image"), ("p2", f"items{suffix}:1", "text"),
    ]  # fmt: skip
    assert json.loads(got[0]["metadata"]) == {"shop": "north", "text": "a red square"}
    found = errors(out)
    assert [(e["id"], e["source"]) for e in found] == [
        ("p3", f"items{suffix}:2"), (f"items{suffix}:3", f"items{suffix}:3"),
    ]  # fmt: skip
    assert found[0]["error"] == f"{tmp_path / 'img' / 'missing.png'}: no such file"
    assert found[1]["error"] == "empty text (a row needs a path or a non-empty text)"


def test_refusals(folder, tmp_path):
    out = tmp_path / "out"
    embed_job([folder], out, "house", JobOptions(workers=0, limit=2))
    with pytest.raises(JobError) as e:
        embed_job([folder], out, "house", JobOptions(workers=0))
    assert "holds a job over other input (2 items from" in str(e.value)
    assert str(e.value).endswith(f"this one plans 6 items from {folder}: choose another --out")
    manifest = json.loads((out / "_manifest.json").read_text())
    (out / "_manifest.json").write_text(json.dumps(manifest | {"model": "open_clip:RN50@x"}))
    with pytest.raises(JobError, match="^" + str(out).replace("\\", "\\\\") +
                       " holds vectors from model 'open_clip:RN50@x'; this job uses 'house': "
                       "choose another --out$"):  # fmt: skip
        embed_job([folder], out, "house", JobOptions(workers=0))
    with pytest.raises(JobError, match="no such file or folder"):
        embed_job([tmp_path / "nowhere"], tmp_path / "o2", "house", JobOptions())
    with pytest.raises(JobError, match="unknown runner 'spark': use one of local, ray"):
        embed_job([folder], tmp_path / "o3", "house", JobOptions(runner="spark"))


def children(pid: int) -> list[int]:
    """Processes whose parent is `pid`, except multiprocessing's resource tracker."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"resource_tracker" not in cmd:
            found.append(int(stat.parent.name))
    return found


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Path:
    """600 small PNGs: 30 shards of 20."""
    src = tmp_path_factory.mktemp("many")
    rng = np.random.default_rng(0)
    for i in range(600):
        png(src / f"{i:04d}.png", tuple(int(c) for c in rng.integers(0, 255, 3)), (24, 24))
    return src


def start_job(src: Path, out: Path) -> tuple[subprocess.Popen, list[str]]:
    """`jointspace job embed` in a process of its own, once it has written 3 shards."""
    cmd = [sys.executable, "-m", "cli.main", "job", "embed", str(src), "--out", str(out),
           "--shard-size", "20", "--batch-size", "4", "--workers", "1"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=os.environ | {"HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.time() + 120
    while len(list(out.glob("shard-*.parquet"))) < 3 and time.time() < deadline:
        time.sleep(0.01)
    return proc, cmd


def test_ctrl_c_keeps_finished_shards(many, tmp_path):
    out = tmp_path / "out"
    proc, _ = start_job(many, out)
    workers = children(proc.pid)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.rstrip().endswith(
        "interrupted: finished shards are kept; run the same command to resume"
    )
    assert 3 <= len(list(out.glob("shard-*.parquet"))) < 30
    time.sleep(1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]


def test_resume_after_sigkill(many, tmp_path):
    """A job killed with SIGKILL mid-way, run again with the same command, ends with exactly one
    row per input."""
    out = tmp_path / "out"
    proc, cmd = start_job(many, out)
    workers = children(proc.pid)
    assert len(workers) == 1  # --workers 1
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10  # its decode worker must not outlive it
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    done_before = len(list(out.glob("shard-*.parquet")))
    assert 3 <= done_before < 30, "the job must be killed part way"
    assert json.loads((out / "_manifest.json").read_text())["complete"] is False
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"resuming: {done_before} of 30 shards are done" in res.stderr
    ids = [r["id"] for r in rows(out)]
    assert len(ids) == 600 and sorted(ids) == [f"{i:04d}.png" for i in range(600)]
    assert not list(out.glob(".*.tmp"))
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["complete"] and manifest["rows"] == {"image": 600}
    assert manifest["last_run"]["shards"] == 30 - done_before


def test_ray_runner_equals_local(folder, tmp_path):
    pytest.importorskip("ray.data")
    local, remote = tmp_path / "local", tmp_path / "ray"
    embed_job([folder], local, "house", JobOptions(workers=0, shard_size=3))
    manifest = embed_job([folder], remote, "house",
                         JobOptions(runner="ray", workers=1, shard_size=3))  # fmt: skip
    a, b = rows(local), rows(remote)
    assert [(r["id"], r["modality"], r["metadata"]) for r in a] == [
        (r["id"], r["modality"], r["metadata"]) for r in b
    ]
    np.testing.assert_allclose([r["vector"] for r in a], [r["vector"] for r in b], atol=1e-5)
    assert errors(local) == errors(remote)
    assert manifest["last_run"]["runner"] == "ray"


def test_ingest_makes_a_searchable_collection(folder, tmp_path, house):
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["job", "embed", str(folder), "--out", str(out), "--workers",
                                   "0", "--ingest", "shop", "--data-dir", str(tmp_path / "data")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "collection 'shop': 5 items, index Flat (5 rows read)" in res.output
    catalog = Catalog(tmp_path / "data" / "collections")
    col = catalog.get("shop")
    assert col.model == "house" and col.count == 5
    q = house.embed_images([Image.new("RGB", (40, 30), COLOURS["red"])])
    hits = col.search(q, k=2)[0]
    assert hits[0].id == "red.png"
    item = col.get(["red.png"])[0]
    assert item.metadata == {"colour": "red", "price": 3, "text": "a red square",
                             "source": "red.png", "modality": "image"}  # fmt: skip
    again = ingest(out, catalog, "shop")  # idempotent: upsert by id
    assert again == {"collection": "shop", "rows": 5, "count": 5, "index": "Flat"}
    catalog.close()


def test_ingest_into_milvus_gives_the_same_hits(folder, tmp_path, house):
    """`job ingest --index-backend milvus:PATH.db`: the same items and nearest hits as FAISS."""
    out = tmp_path / "out"
    embed_job([folder], out, "house", JobOptions(workers=0))
    db = tmp_path / "m.db"
    res = CliRunner().invoke(app, ["job", "ingest", str(out), "shop", "--index-backend",
                                   f"milvus:{db}", "--data-dir", str(tmp_path / "data")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "collection 'shop': 5 items, index AUTOINDEX (5 rows read)" in res.output
    catalog = open_catalog(f"milvus:{db}", tmp_path / "data" / "collections")
    col = catalog.get("shop")
    assert (col.model, col.count) == ("house", 5)
    q = house.embed_images([Image.new("RGB", (40, 30), COLOURS["red"])])
    assert col.search(q, k=1)[0][0].id == "red.png"
    assert col.get(["red.png"])[0].metadata == {"colour": "red", "price": 3, "text": "a red square",
                                                "source": "red.png", "modality": "image"}  # fmt: skip
    catalog.close()


def test_ingest_is_refused_while_another_process_holds_the_data_dir(
    folder, tmp_path, held_elsewhere
):
    out = tmp_path / "out"
    embed_job([folder], out, "house", JobOptions(workers=0))
    root = tmp_path / "data" / "collections"
    with held_elsewhere(root) as pid:
        res = CliRunner().invoke(app, ["job", "ingest", str(out), "shop",
                                       "--data-dir", str(tmp_path / "data")])  # fmt: skip
        assert res.exit_code == 2
        assert res.output.strip().splitlines()[-1] == (
            f"error: {root} is in use by another process (pid {pid}): one process at a "
            "time owns a data directory's collections; stop it, or send the items through its API"
        )
    res = CliRunner().invoke(app, ["job", "ingest", str(out), "shop",
                                   "--data-dir", str(tmp_path / "data")])  # fmt: skip
    assert res.exit_code == 0, res.output  # the kernel let go of the dead holder's lock


def test_cli_one_line_errors(tmp_path):
    res = CliRunner().invoke(app, ["job", "embed", str(tmp_path / "nowhere"), "--out",
                                   str(tmp_path / "o")])  # fmt: skip
    assert res.exit_code == 2
    assert res.output.strip() == f"error: {tmp_path / 'nowhere'}: no such file or folder"
    res = CliRunner().invoke(app, ["job", "ingest", str(tmp_path), "shop"])
    assert res.exit_code == 2
    assert f"{tmp_path}: no _manifest.json" in res.output


PLAN_PEAK = """
import resource, sys
from pathlib import Path
from jobs.sources import plan

p = plan([Path(sys.argv[1])], ["text", "image", "audio"], shard_size=10_000)
seen = sum(len(s.items) for s in p.shards())
assert seen == p.n_items == int(sys.argv[2]), (seen, p.n_items)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
def test_planning_memory_does_not_grow_with_the_table(tmp_path):
    """The planner lists a table a batch at a time, twice (sizes and fingerprint, then the
    shards one by one): a million rows cost the driver about what a hundred thousand do (the
    planner that held every item peaked at 1,329 MiB on a million rows, twice its 100 k figure)."""
    peaks = {}
    for n in (100_000, 1_000_000):
        path = tmp_path / f"items-{n}.parquet"
        paths = pa.array([f"img/{i:07d}.jpg" for i in range(n)])
        pq.write_table(pa.table({"id": [f"r{i}" for i in range(n)], "path": paths}), path,
                       row_group_size=50_000)  # fmt: skip
        res = subprocess.run([sys.executable, "-c", PLAN_PEAK, str(path), str(n)],
                             capture_output=True, text=True, check=True)  # fmt: skip
        peaks[n] = int(res.stdout.strip()) / 1024  # MiB
    assert peaks[1_000_000] < 1.25 * peaks[100_000], peaks


def test_a_table_that_changes_during_the_job_stops_it(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text("id,text\n" + "".join(f"t{i},text {i}\n" for i in range(5)))
    p = plan([path], ["text"], shard_size=2)
    assert p.sizes == {"shard-00000": 2, "shard-00001": 2, "shard-00002": 1}
    path.write_text("id,text\n" + "".join(f"t{i},text {i}\n" for i in range(3)))
    with pytest.raises(JobError) as e:
        list(p.shards())
    assert str(e.value) == (
        f"{path} changed while the job ran (shard-00001 now has 1 inputs, 2 planned): run it "
        "again on a source that holds still"
    )
    path.write_text("id,text\n" + "".join(f"t{i},text {i}\n" for i in range(7)))
    with pytest.raises(JobError, match=r"\(shard-00002 now has 2 inputs, 1 planned\)"):
        list(p.shards())
