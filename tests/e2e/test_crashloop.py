"""The crash loop through the HTTP API, three cycles (bench/crashloop.py runs 20 or more): the
service is SIGKILLed while puts are in flight and restarted; every acknowledged item is there, no
video keeps a segment beyond its whole item's count, every hit's media is readable, every sampled
item is found by its own word and no deleted one; for a float and a binary collection."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from encoders.house import default_house_dir

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not (default_house_dir() / "model.safetensors").is_file(),
                    reason="needs models/house")  # fmt: skip
@pytest.mark.parametrize("quantization", ["none", "binary"])
def test_no_acknowledged_put_is_lost_across_sigkills(quantization):
    bench = Path(__file__).resolve().parents[2] / "bench" / "crashloop.py"
    out = subprocess.run([sys.executable, str(bench), "--cycles", "3", "--seed", "1",
                          "--quantization", quantization],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    summary = re.search(r"crash loop: 3 SIGKILL cycles, (\d+) acknowledged items, (\d+) lost or undone",
                        out.stdout)  # fmt: skip
    assert summary, out.stdout + out.stderr[-3000:]
    assert int(summary[1]) > 0 and int(summary[2]) == 0, out.stdout
    videos = re.search(r"(\d+) acknowledged video puts", out.stdout)
    assert videos and int(videos[1]) > 0, out.stdout
    words = re.search(r"(\d+) keyword searches checked", out.stdout)
    assert words and int(words[1]) > 0 and f"quantization {quantization}" in out.stdout
