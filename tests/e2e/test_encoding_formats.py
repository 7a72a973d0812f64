"""Compact outputs of /v1/embeddings and /embed: every encoding_format against numpy's packing
and the stated int8 scaling, and the refusals."""

from __future__ import annotations

import base64
import math

import numpy as np
import pytest

from encoders import decode_image, load_encoder

TEXTS = ["a red dress", "a cat", "SKU-4411 boots"]


@pytest.fixture(scope="module")
def enc(tiny_clip_dir):
    return load_encoder(f"hf:{tiny_clip_dir}", device="cpu")


def _int8(v: np.ndarray) -> np.ndarray:
    limit = min(1.0, 4 / math.sqrt(v.shape[1]))
    return np.clip(np.rint(v * 127 / limit), -127, 127).astype(np.int64)


def _expected(v: np.ndarray, fmt: str) -> np.ndarray:
    if fmt == "int8":
        return _int8(v)
    if fmt == "uint8":
        return _int8(v) + 128
    bits = np.packbits(v > 0, axis=1).astype(np.int64)
    return bits if fmt == "ubinary" else bits - 128


@pytest.mark.parametrize("fmt", ["int8", "uint8", "binary", "ubinary"])
def test_openai_formats_match_numpy(client, enc, fmt):
    r = client.post("/v1/embeddings", json={"input": TEXTS, "encoding_format": fmt})
    assert r.status_code == 200
    got = np.array([d["embedding"] for d in r.json()["data"]])
    assert got.dtype == np.int64  # integers in the JSON, not floats
    want = _expected(enc.embed_text(TEXTS), fmt)
    np.testing.assert_array_equal(got, want)
    width = enc.dim if fmt in ("int8", "uint8") else math.ceil(enc.dim / 8)
    assert got.shape == (3, width)
    lo, hi = {"int8": (-127, 127), "uint8": (1, 255), "binary": (-128, 127),
              "ubinary": (0, 255)}[fmt]  # fmt: skip
    assert lo <= got.min() and got.max() <= hi


def test_int8_scaling_follows_the_dimensions_returned(client, enc):
    r = client.post("/v1/embeddings", json={"input": "a cat", "encoding_format": "int8",
                                            "dimensions": 8})  # fmt: skip
    v = enc.embed_text(["a cat"])[:, :8]
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    np.testing.assert_array_equal(r.json()["data"][0]["embedding"], _int8(v)[0])


def test_scaling_is_the_same_for_every_request(client):
    one = client.post("/v1/embeddings", json={"input": "a cat", "encoding_format": "int8"})
    two = client.post(
        "/v1/embeddings", json={"input": ["a dog", "a cat"], "encoding_format": "int8"}
    )
    assert one.json()["data"][0]["embedding"] == two.json()["data"][1]["embedding"]


@pytest.mark.parametrize("fmt", ["float", "base64", "int8", "ubinary"])
def test_embed_json_formats(client, enc, png, fmt):
    r = client.post("/embed", json={"texts": TEXTS[:2], "images": [png()], "encoding_format": fmt})
    assert r.status_code == 200
    vecs = [e["vector"] for e in r.json()["embeddings"]]
    raw = base64.b64decode(png().split(",", 1)[1])
    want = np.concatenate([enc.embed_text(TEXTS[:2]), enc.embed_images([decode_image(raw)])])
    if fmt == "float":
        np.testing.assert_allclose(np.array(vecs), want, atol=1e-6)
    elif fmt == "base64":
        got = np.stack([np.frombuffer(base64.b64decode(s), "<f4") for s in vecs])
        np.testing.assert_allclose(got, want, atol=1e-6)
    else:
        np.testing.assert_array_equal(np.array(vecs), _expected(want, fmt))


def test_embed_multipart_format(client, enc, png):
    raw = base64.b64decode(png().split(",", 1)[1])
    r = client.post("/embed", data={"texts": ["a cat"], "encoding_format": "binary"},
                    files=[("files", ("red.png", raw, "image/png"))])  # fmt: skip
    assert r.status_code == 200, r.text
    want = _expected(enc.embed_text(["a cat"]), "binary")[0]
    np.testing.assert_array_equal(r.json()["embeddings"][0]["vector"], want)
    assert len(r.json()["embeddings"][1]["vector"]) == 3  # 24 dimensions, 8 to a byte


def test_refusals(client):
    r = client.post("/v1/embeddings", json={"input": "a cat", "encoding_format": "int4"})
    assert r.status_code == 422
    assert r.json()["error"]["message"] == (
        "encoding_format: Input should be 'float', 'base64', 'int8', 'uint8', 'binary' or 'ubinary'"
    )
    r = client.post("/embed", data={"texts": ["a cat"], "encoding_format": "int4"},
                    files=[("files", ("red.png", b"x", "image/png"))])  # fmt: skip
    assert r.status_code == 422
    assert r.json()["error"]["message"] == (
        "encoding_format: give it once, as one of float, base64, int8, uint8, binary, ubinary"
    )
