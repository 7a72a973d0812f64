"""Storm bench: does the service keep doing the work it can do while clients that ignore
Retry-After hammer it, and does it come back after a trigger? And what does one lone client pay
over the bare model call?

Everything runs in its own process, as in production: the service (`jointspace serve`, default
settings), the load generator (`hey`, a compiled Go client that retries at once: it ignores
Retry-After), the trigger (busy processes that take the CPU away) and this script, which only
starts them and reads hey's per-request CSV.

Scenarios, all in one run:
- capacity: 32 clients for `--base-seconds`, accepted texts/s (the baseline);
- storm: 192 clients for `--seconds`, with `--hog-procs` busy processes from `--hog-at` for
  `--hog-seconds`; accepted texts/s and p99 of accepted requests in the `--after` seconds after
  the hog (their ratio to the capacity figure), every status code seen, and one normal request's
  latency right after the storm;
- batch one: one client, one text, `--single` requests: p50 against the bare model call
  (`encode_text` of the same text in this process, tokenizing included), the two in turns;
- images (`--images`): `--image-model` (default a ViT-B/32-sized open_clip with random weights),
  4 clients each sending 16 JPEGs, retrying at once: img/s, share refused, against the bare
  model's img/s at batch 16 in this process.

    python bench/storm.py [--model house] [--seconds 30] [--images]

Needs `hey` (Debian: apt-get install hey).
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import numpy as np

from service.runner import free_port

ROOT = Path(__file__).resolve().parents[1]

TEXT = "a red striped cotton dress"
HOG = "import time\nt = time.time() + {s}\nwhile time.time() < t: pass\n"


@contextmanager
def serve(model: str | list[str], env: dict[str, str]) -> str:
    """`jointspace serve` in its own process on a free port (several models: a list); yields its
    URL."""
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        e = {**os.environ, "JOINTSPACE_DATA_DIR": d, "JOINTSPACE_DEMO": "false", **env}
        specs = [model] if isinstance(model, str) else model
        flags = [x for m in specs for x in ("--model", m)]
        cmd = [sys.executable, "-m", "cli.main", "serve", *flags, "--port", str(port)]
        p = subprocess.Popen(
            cmd, cwd=ROOT, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 300
            while True:
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if p.poll() is not None or time.time() > deadline:
                    raise SystemExit("the service did not start")
                time.sleep(0.3)
            yield url
        finally:
            p.terminate()
            p.wait(60)


def hey(url: str, body: bytes, clients: int, seconds: float = 0, n: int = 0) -> list[tuple]:
    """Run hey; (offset s, latency s, status) of every request it made."""
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        f.write(body)
        f.flush()
        run = ["-z", f"{seconds}s"] if seconds else ["-n", str(n)]
        out = subprocess.run(
            ["hey", *run, "-c", str(clients), "-m", "POST", "-T", "application/json", "-D",
             f.name, "-t", "60", "-o", "csv", f"{url}/v1/embeddings"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    rows = csv.DictReader(io.StringIO(out))
    return [(float(r["offset"]), float(r["response-time"]), int(r["status-code"])) for r in rows]


def hog(at: float, seconds: float, procs: int) -> threading.Timer:
    """From `at` s on, `procs` processes that spin for `seconds`."""
    code = HOG.format(s=seconds)

    def go() -> None:
        for _ in range(procs):
            subprocess.Popen([sys.executable, "-c", code])

    t = threading.Timer(at, go)
    t.start()
    return t


def window(rows: list[tuple], start: float, end: float, per: int = 1) -> tuple[float, float]:
    """Accepted inputs/s and p99 (s) of accepted requests that finished in [start, end)."""
    ok = [lat for off, lat, code in rows if code == 200 and start <= off + lat < end]
    p99 = float(np.percentile(ok, 99)) if ok else float("nan")
    return len(ok) * per / (end - start), p99


def codes(rows: list[tuple]) -> dict[int, int]:
    return dict(sorted(Counter(c for _, _, c in rows).items()))


def p50_ms(f, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def texts(args, url: str) -> None:
    body = json.dumps({"input": TEXT}).encode()
    hey(url, body, 4, n=200)  # warm-up
    base = hey(url, body, 32, seconds=args.base_seconds)
    cap, cap_p99 = window(base, 1, args.base_seconds)
    threading_hog = hog(args.hog_at, args.hog_seconds, args.hog_procs)
    rows = hey(url, body, 192, seconds=args.seconds)
    threading_hog.join()
    t0 = time.perf_counter()
    after = httpx.post(f"{url}/v1/embeddings", json={"input": TEXT}, timeout=60)
    after_ms = (time.perf_counter() - t0) * 1e3
    end = args.hog_at + args.hog_seconds
    rate, p99 = window(rows, end, min(end + args.after, args.seconds))
    before, _ = window(rows, 1, args.hog_at)
    print(f"32 clients                 {cap:7.0f} texts/s accepted, p99 {cap_p99 * 1e3:5.0f} ms, "
          f"codes {codes(base)}")  # fmt: skip
    print(f"192 clients, before hog    {before:7.0f} texts/s accepted")
    print(f"192 clients, {args.after:.0f} s after hog {rate:7.0f} texts/s accepted "
          f"({rate / cap:.2f}x 32 clients), p99 {p99 * 1e3:5.0f} ms")  # fmt: skip
    print(f"192 clients, whole storm   codes {codes(rows)}")
    print(f"right after the storm      {after.status_code} in {after_ms:.0f} ms")


def single(args, url: str, model: str) -> None:
    """One client, one text: a request through the service and a bare model call in turns, so
    that both see the same machine."""
    from encoders import load_encoder

    enc = load_encoder(model, device="cpu")
    served, bare = [], []
    with httpx.Client(timeout=60) as c:
        for i in range(args.single + 20):
            t0 = time.perf_counter()
            r = c.post(f"{url}/v1/embeddings", json={"input": TEXT})
            t1 = time.perf_counter()
            enc.encode_text([TEXT])
            t2 = time.perf_counter()
            assert r.status_code == 200
            if i >= 20:  # warm-up
                served.append(t1 - t0)
                bare.append(t2 - t1)
    s50, b50 = (float(np.median(x)) * 1e3 for x in (served, bare))
    print(f"one client, one text       p50 {s50:5.1f} ms through the service (httpx), "
          f"{b50:5.1f} ms bare model call, in turns (+{s50 - b50:.1f} ms)")  # fmt: skip


def jpegs(n: int, side: int = 224) -> list[str]:
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buf, "JPEG")
        out.append("data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode())
    return out


def images(args) -> None:
    from PIL import Image

    from encoders import decode_image, load_encoder

    pics = jpegs(16)
    body = json.dumps({"input": [{"type": "image", "image": p} for p in pics]}).encode()
    enc = load_encoder(args.image_model, device="cpu")
    decoded = [decode_image(base64.b64decode(p.split(",", 1)[1])) for p in pics]
    assert all(isinstance(im, Image.Image) for im in decoded)
    enc.embed_images(decoded)

    def bare_rate() -> float:
        t0 = time.perf_counter()
        for _ in range(3):
            enc.embed_images(decoded)
        return 48 / (time.perf_counter() - t0)

    before = bare_rate()
    with serve(args.image_model, args.env_dict) as url:
        hey(url, body, 1, n=2)
        rows = hey(url, body, 4, seconds=args.image_seconds)
    bare = max(before, bare_rate())  # the better of before and after: the model's own speed
    ok = sum(c == 200 for _, _, c in rows)
    rate = ok * 16 / args.image_seconds
    print(f"images, 4 clients x 16     {rate:7.1f} img/s accepted ({rate / bare:.2f}x the bare "
          f"model at batch 16: {bare:.1f} img/s), refused {1 - ok / len(rows):.1%}, "
          f"codes {codes(rows)}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="house")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--base-seconds", type=float, default=15)
    ap.add_argument("--hog-at", type=float, default=2)
    ap.add_argument("--hog-seconds", type=float, default=6)
    ap.add_argument("--hog-procs", type=int, default=3)
    ap.add_argument("--after", type=float, default=15)
    ap.add_argument("--single", type=int, default=500)
    ap.add_argument("--images", action="store_true")
    ap.add_argument("--image-model", default="open_clip:ViT-B-32@random-init")
    ap.add_argument("--image-seconds", type=float, default=30)
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the service")
    args = ap.parse_args()
    if not shutil.which("hey"):
        raise SystemExit("bench/storm.py needs hey: apt-get install hey")
    env = args.env_dict = dict(kv.split("=", 1) for kv in args.env)
    print(f"# storm bench: {args.model}, {os.cpu_count()} cores, service settings "
          f"{env or 'default'}; hog: {args.hog_procs} busy processes at {args.hog_at:g}-"
          f"{args.hog_at + args.hog_seconds:g} s of a {args.seconds:g} s storm")  # fmt: skip
    with serve(args.model, env) as url:
        texts(args, url)
        single(args, url, args.model)
    if args.images:
        images(args)


if __name__ == "__main__":
    main()
