"""The README's curl examples, run as written against a live `jointspace serve` (the house model and
the demo collection, on a free port of 127.0.0.1, in a temporary data directory), so that the front
page cannot drift from the code.

An example is a ```bash or ```sh block of README.md that calls curl. It addresses the service as
`localhost:8000`, which is rewritten to the live service's address; it makes its own inputs in the
folder it runs in, which all examples share, in the README's order. Its comment `# {...}` shows the
shape of the last answer: every curl call must exit 0 with a 2xx status, every answer printed must
be JSON, and the last one must have the top-level keys the comment shows."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from encoders.house import default_house_dir

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BASE = "localhost:8000"
DATA = [Path("/usr/share/datasets/fashion-mnist"), Path("/usr/share/tuxpaint/stamps")]
TOOLS = ["curl", "base64", "python3", "espeak-ng"]

# Every curl call exits non-zero on an HTTP error and writes its status to stderr.
PRELUDE = """set -euo pipefail
curl() { command curl --show-error --fail-with-body -w '%{stderr}HTTP %{http_code}\\n' "$@"; }
"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (default_house_dir() / "model.safetensors").is_file(), reason="needs models/house"
    ),
    pytest.mark.skipif(
        not all(p.exists() for p in DATA),
        reason="needs the Debian packages dataset-fashion-mnist and tuxpaint-stamps-default",
    ),
    pytest.mark.skipif(not all(shutil.which(t) for t in TOOLS), reason=f"needs {', '.join(TOOLS)}"),
]


def shape(block: str) -> str | None:
    """The answer's shape the block's comment shows: from a line `# {` until its braces close."""
    lines = block.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("# {"):
            text = ""
            for more in lines[i:]:
                if not more.startswith("#"):
                    break
                text += more[1:]
                if text.count("{") + text.count("[") == text.count("}") + text.count("]"):
                    break
            return text
    return None


def top_keys(text: str) -> set[str]:
    """The keys at the outermost level of a JSON-like shape (`...` stands in for values)."""
    keys, depth = set(), 0
    for m in re.finditer(r'"([^"\\]*)"\s*:|[{}\[\]]', text):
        tok = m.group(0)
        if tok in "{[":
            depth += 1
        elif tok in "}]":
            depth -= 1
        elif depth == 1:
            keys.add(m.group(1))
    return keys


def examples() -> list[str]:
    blocks = re.findall(r"^```(?:bash|sh)\n(.*?)^```", README.read_text(), re.M | re.S)
    return [b for b in blocks if re.search(r"(^|[\s($])curl\s", b)]


def title(block: str) -> str:
    first = next((ln for ln in block.splitlines() if ln.startswith("# ")), "example")
    return re.sub(r"\W+", "-", first[2:].split(":")[0]).strip("-")[:40]


def json_values(out: str) -> list:
    """Every JSON value printed one after another (each curl call prints one answer)."""
    dec, values, i = json.JSONDecoder(), [], 0
    while True:
        while i < len(out) and out[i].isspace():
            i += 1
        if i == len(out):
            return values
        value, i = dec.raw_decode(out, i)
        values.append(value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """`jointspace serve` with the house model and the demo collection; yields its address."""
    tmp = tmp_path_factory.mktemp("readme")
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    for key in [k for k in env if k.startswith("JOINTSPACE_") and k != "JOINTSPACE_CACHE_DIR"]:
        del env[key]
    # default settings, but a queue-wait budget that a machine busy with other work cannot exhaust:
    # an example answered 429 would say nothing about the README
    env["JOINTSPACE_MAX_QUEUE_WAIT_MS"] = "60000"
    log = (tmp / "serve.log").open("w")
    cmd = [sys.executable, "-m", "cli.main", "serve", "--model", "house", "--port", str(port),
           "--data-dir", str(tmp / "data"), "--demo"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 180
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("the service did not start:\n" + (tmp / "serve.log").read_text())
            time.sleep(0.3)
        work = tmp / "work"
        work.mkdir()
        yield f"127.0.0.1:{port}", work
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_the_readme_has_curl_examples_with_their_answers():
    blocks = examples()
    assert len(blocks) >= 8
    for block in blocks:
        assert BASE in block, block
        assert shape(block) and top_keys(shape(block)), f"no `# {{...}}` answer shown:\n{block}"


@pytest.mark.parametrize("block", examples(), ids=title)
def test_readme_example_runs_as_written(service, block):
    address, work = service
    script = PRELUDE + block.replace(BASE, address)
    out = subprocess.run(["bash", "-c", script], cwd=work, capture_output=True, text=True,
                         timeout=180)  # fmt: skip
    where = f"\n--- example:\n{block}\n--- stderr:\n{out.stderr[-3000:]}\n--- stdout:\n{out.stdout[-2000:]}"
    assert out.returncode == 0, where
    codes = re.findall(r"^HTTP (\d{3})$", out.stderr, re.M)
    assert codes and all(c.startswith("2") for c in codes), where
    values = json_values(out.stdout)
    assert values, where
    last = values[-1]
    assert isinstance(last, dict), where
    assert top_keys(shape(block)) <= last.keys(), where
