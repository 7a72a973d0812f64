"""The `jointspace` CLI: embed writes what the library computes; bad input is one line, exit 2."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from encoders import load_encoder
from index.gpu import gpu_count

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def images(tmp_path_factory, sample_images):
    d = tmp_path_factory.mktemp("imgs")
    paths = []
    for i, im in enumerate(sample_images[:3]):
        p = d / f"img{i}.png"
        im.save(p)
        paths.append(p)
    return paths


def test_embed_writes_parquet(tmp_path, tiny_clip_dir, images):
    out = tmp_path / "v.parquet"
    res = run(
        "embed",
        "--model",
        f"hf:{tiny_clip_dir}",
        "--text",
        "a red dress",
        "--text",
        "a cat",
        "--image",
        str(images[0]),
        "--image",
        str(images[1]),
        "--out",
        str(out),
    )
    assert res.exit_code == 0, res.output
    table = pq.read_table(out).to_pydict()
    assert table["id"] == ["text-0", "text-1", str(images[0]), str(images[1])]
    assert table["modality"] == ["text", "text", "image", "image"]
    assert table["truncated"] == [False, False, False, False]
    enc = load_encoder(f"hf:{tiny_clip_dir}", device="cpu")
    want = np.concatenate(
        [
            enc.embed_text(["a red dress", "a cat"]),
            enc.embed_images([Image.open(p) for p in images[:2]]),
        ]
    )
    np.testing.assert_allclose(np.array(table["vector"], dtype=np.float32), want, atol=1e-6)


def test_embed_writes_npy_and_prints_similarity(tmp_path, tiny_clip_dir, images):
    out = tmp_path / "v.npy"
    res = run(
        "embed",
        "--model",
        f"hf:{tiny_clip_dir}",
        "--text",
        "a cat",
        "--image",
        str(images[2]),
        "--out",
        str(out),
        "--similarity",
    )
    assert res.exit_code == 0, res.output
    m = np.load(out)
    assert m.shape == (2, 24) and m.dtype == np.float32
    assert f"{float(m[0] @ m[1]):.3f}" in res.stdout


def test_long_text_warns(tmp_path, tiny_clip_dir):
    res = run(
        "embed",
        "--model",
        f"hf:{tiny_clip_dir}",
        "--text",
        "cat " * 40,
        "--out",
        str(tmp_path / "v.npy"),
    )
    assert res.exit_code == 0
    assert "warning: text 0 was longer than the model's 16-token context and was truncated" in (
        res.stderr
    )


def one_line_error(res, expected: str) -> None:
    assert res.exit_code == 2
    assert res.stderr == f"error: {expected}\n"


def test_unknown_spec():
    one_line_error(
        run("embed", "--model", "clip", "--text", "a"),
        "unknown model spec 'clip': expected 'house', 'house:DIR', "
        "'open_clip:ARCH@TAG_OR_CHECKPOINT', 'hf:HUB_ID_OR_DIR' or 'model:DIR'",
    )


def test_serve_refuses_a_bad_list_of_models(tmp_path):
    one_line_error(
        run("serve", "--model", "house", "--model", "house", "--data-dir", str(tmp_path)),
        "models: a spec is given twice in 'house,house'",
    )
    one_line_error(
        run("serve", "--model", "house", "--model", "clip", "--data-dir", str(tmp_path)),
        "unknown model spec 'clip': expected 'house', 'house:DIR', "
        "'open_clip:ARCH@TAG_OR_CHECKPOINT', 'hf:HUB_ID_OR_DIR' or 'model:DIR'",
    )


@pytest.mark.skipif(gpu_count() > 0, reason="faiss sees a GPU here")
def test_serve_refuses_gpu_search_without_faiss_gpu(tmp_path):
    one_line_error(
        run("serve", "--index-device", "gpu", "--data-dir", str(tmp_path)),
        "index_device (JOINTSPACE_INDEX_DEVICE): search device 'gpu' is not available: this "
        "faiss is a CPU build (replace faiss-cpu with faiss-gpu: make gpu)",
    )


def test_serve_refuses_a_speech_recogniser_it_cannot_have(tmp_path, monkeypatch):
    monkeypatch.setenv("JOINTSPACE_ASR", str(tmp_path / "whisper"))
    (tmp_path / "whisper").mkdir()
    one_line_error(
        run("serve", "--data-dir", str(tmp_path), "--port", "1"),
        f"asr (JOINTSPACE_ASR): asr '{tmp_path / 'whisper'}': no CTranslate2 Whisper model "
        "(model.bin) there",
    )


def test_serve_refuses_a_data_dir_another_process_holds(tmp_path, held_elsewhere):
    root = tmp_path / "collections"
    with held_elsewhere(root) as pid:
        one_line_error(
            run("serve", "--data-dir", str(tmp_path), "--port", "1"),
            f"{root} is in use by another process (pid {pid}): one process at a time "
            "owns a data directory's collections; stop it, or send the items through its API",
        )


def test_empty_string(tiny_clip_dir):
    one_line_error(run("embed", "--model", f"hf:{tiny_clip_dir}", "--text", ""), "text 0 is empty")


def test_png_claiming_20000_squared(tmp_path, tiny_clip_dir):
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    p = tmp_path / "bomb.png"
    p.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )
    one_line_error(
        run("embed", "--model", f"hf:{tiny_clip_dir}", "--image", str(p)),
        f"{p}: 20000x20000 is 400.0 megapixels, over the limit of 40",
    )


def test_truncated_jpeg(tmp_path, tiny_clip_dir):
    buf = io.BytesIO()
    Image.effect_noise((128, 128), 50).convert("RGB").save(buf, "JPEG")
    p = tmp_path / "cut.jpg"
    p.write_bytes(buf.getvalue()[:1500])
    one_line_error(
        run("embed", "--model", f"hf:{tiny_clip_dir}", "--image", str(p)),
        f"{p}: truncated or corrupt JPEG data",
    )


def test_text_file_named_jpg(tmp_path, tiny_clip_dir):
    p = tmp_path / "notes.jpg"
    p.write_text("hello")
    one_line_error(
        run("embed", "--model", f"hf:{tiny_clip_dir}", "--image", str(p)),
        f"{p}: not a supported image format (allowed: JPEG, PNG, WEBP, GIF, BMP)",
    )


def test_bad_out_suffix(tiny_clip_dir):
    res = run("embed", "--model", f"hf:{tiny_clip_dir}", "--text", "a", "--out", "v.csv")
    assert res.exit_code == 2
    assert "--out must end in .npy or .parquet, not '.csv'" in res.stderr


def test_models_lists_architectures_and_local(tmp_path, tiny_clip_dir):
    import shutil

    shutil.copytree(tiny_clip_dir, tmp_path / "tiny-clip")
    res = runner.invoke(app, ["models", "--json"], env={"JOINTSPACE_MODELS_DIR": str(tmp_path)})
    assert res.exit_code == 0
    import json

    data = json.loads(res.stdout)
    assert "laion2b_s34b_b79k" in data["open_clip"]["ViT-B-32"]
    assert data["hf_families"] == ["align", "clap", "clip", "siglip", "siglip2"]
    assert data["local"] == [f"hf:{tmp_path / 'tiny-clip'}"]


def test_real_entry_point_exits_2_without_traceback(tmp_path):
    p = tmp_path / "x.jpg"
    p.write_text("not an image")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "embed",
            "--model",
            "hf:/nonexistent",
            "--image",
            str(p),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 2
    assert (
        proc.stderr
        == f"error: {p}: not a supported image format (allowed: JPEG, PNG, WEBP, GIF, BMP)\n"
    )
    assert "Traceback" not in proc.stdout + proc.stderr


def test_embed_audio_prints_the_library_vectors(tmp_path, tiny_clap_dir, tone):
    from encoders import decode_audio
    from encoders.audio import encode_audio

    paths = []
    for i, kind in enumerate(("WAV", "MP3")):
        p = tmp_path / f"clip{i}.{kind.lower()}"
        p.write_bytes(encode_audio(tone(1.0 + i, 22_050, 300 + 200 * i), 22_050, kind))
        paths.append(p)
    out = tmp_path / "v.npy"
    args = ["embed", "--model", f"hf:{tiny_clap_dir}", "--text", "a dog", "--out", str(out)]
    res = run(*args, "--audio", str(paths[0]), "--audio", str(paths[1]))
    assert res.exit_code == 0, res.output
    enc = load_encoder(f"hf:{tiny_clap_dir}", device="cpu")
    want = enc.embed_audio([decode_audio(p, enc.audio_rate) for p in paths])
    np.testing.assert_allclose(np.load(out)[1:], want, atol=1e-5)


def test_audio_refusals_in_the_cli(tmp_path, tiny_clap_dir, tiny_clip_dir):
    notes = tmp_path / "notes.wav"
    notes.write_text("hello")
    one_line_error(
        run("embed", "--model", f"hf:{tiny_clap_dir}", "--audio", str(notes)),
        f"{notes}: not a supported audio format (allowed: WAV, FLAC, Ogg (Vorbis, Opus), MP3, "
        "M4A/AAC)",
    )
    from encoders.audio import encode_audio

    ok = tmp_path / "ok.wav"
    ok.write_bytes(encode_audio(np.zeros(8000, np.float32), 8000))
    one_line_error(
        run("embed", "--model", f"hf:{tiny_clip_dir}", "--audio", str(ok)),
        f"model 'hf:{tiny_clip_dir}' has no audio tower (it embeds: image, text)",
    )


def test_serve_refuses_an_unreachable_milvus(tmp_path):
    one_line_error(
        run("serve", "--index-backend", "milvus:http://127.0.0.1:1", "--data-dir", str(tmp_path)),
        "cannot reach Milvus at http://127.0.0.1:1: Fail connecting to server on 127.0.0.1:1, "
        "illegal connection params or server unavailable; is it running? (docker compose "
        "--profile milvus up -d starts one)",
    )


def test_serve_refuses_a_milvus_lite_database_another_process_holds(tmp_path, held_elsewhere):
    db = tmp_path / "m.db"
    with held_elsewhere(db, opener="pymilvus.MilvusClient"):
        one_line_error(
            run("serve", "--index-backend", f"milvus:{db}", "--data-dir", str(tmp_path)),
            f"{db} is in use by another process: one process at a time opens a milvus-lite "
            "database; stop it, send the items through its API, or use a Milvus server",
        )
