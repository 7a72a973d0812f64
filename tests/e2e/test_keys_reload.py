"""Key rotation without a restart: `jointspace serve` as a process, SIGHUP re-reads the keys file;
a bad file on reload keeps the keys in force. And `jointspace keys new` makes a usable entry."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from typer.testing import CliRunner

from cli.main import app
from service.runner import free_port


def entry(name: str, token: str, role: str = "read") -> dict:
    return {"name": name, "sha256": hashlib.sha256(token.encode()).hexdigest(), "role": role}


def status(url: str, token: str) -> int:
    return httpx.get(f"{url}/models", headers={"authorization": f"Bearer {token}"}).status_code


def wait_for(pred, timeout: float = 20.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_reloads_the_keys_file(tmp_path, tiny_clip_dir):
    keys = tmp_path / "keys.json"
    old, new = "o" * 32, "n" * 32
    keys.write_text(json.dumps({"keys": [entry("old", old)]}))
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "JOINTSPACE_KEYS_FILE": str(keys)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--model", f"hf:{tiny_clip_dir}",
         "--data-dir", str(tmp_path / "data"), "--port", str(port), "--no-demo"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(lambda: _up(url), 90), "the service did not start"
        assert (status(url, old), status(url, new)) == (200, 401)
        keys.write_text(json.dumps({"keys": [entry("new", new)]}))  # rotation
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: status(url, new) == 200)
        assert status(url, old) == 401
        keys.write_text('{"keys": [{"name": "broken"')  # a bad file: the keys in force stay
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert proc.poll() is None and status(url, new) == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert "keys file not reloaded, the old keys stay in force" in stderr
    assert "keys file " + str(keys) + " reloaded: 1 keys" in stderr
    assert proc.returncode == 0  # a graceful shutdown on SIGTERM exits 0


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_keys_new_prints_the_key_once_and_its_entry():
    res = CliRunner().invoke(app, ["keys", "new", "--name", "dash", "--role", "read",
                                   "--collection", "shop", "--rate", "20"])  # fmt: skip
    assert res.exit_code == 0, res.output
    lines = [x for x in res.stdout.splitlines() if x.strip()]
    key, body = lines[0], json.loads(lines[-1])
    assert key.startswith("js_") and len(key) > 40
    assert body == {"name": "dash", "sha256": hashlib.sha256(key.encode()).hexdigest(),
                    "role": "read", "collections": ["shop"], "rate": 20.0}  # fmt: skip
    scoped = CliRunner().invoke(app, ["keys", "new", "--name", "h", "--model", "house"])
    assert json.loads(scoped.stdout.splitlines()[-1])["models"] == ["house"]
    bad = CliRunner().invoke(app, ["keys", "new", "--name", "x", "--role", "owner"])
    assert bad.exit_code == 2
    assert "error: unknown role 'owner' (roles: read, write, admin)" in bad.output
