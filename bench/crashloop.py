"""Crash loop through the HTTP API: start the service as a process, put and delete items from
several writers, replace video items (their segment count shrinking and growing), put multi-part
items and items with pictures, drop and recreate a second collection, SIGKILL the service while
writes are in flight, restart it, and check: every item whose put was acknowledged (200) in that
cycle is there with its vector (and a sample of 500 from earlier cycles), every acknowledged
delete stays deleted, no video has a segment beyond its whole item's `segments`, every media URL
of a hit is readable, the recreated collection holds exactly what was put into it, and the count
lies between what was acknowledged and what was sent. The crash collection indexes each item's
`tag` (a word of its own) for keyword search: a sample of 100 acknowledged items of the cycle must
each be the one hit of a keyword search for its tag, and 100 acknowledged deletes none.
`--quantization int8` or `binary` makes it a quantized collection (metric cosine; float: ip).

    python bench/crashloop.py [--cycles 20] [--model house] [--seed 0] [--quantization none]
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from housedata.writer import write_video  # noqa: E402
from service.runner import free_port  # noqa: E402

VIDEOS = 4  # video items the video writer keeps replacing
SEGMENTS = (4, 2)  # a 4 s clip cut every 1 s or every 2 s: versions of 4 and of 2 segments
MOST_SEGMENTS = max(SEGMENTS)


def start(model: str, data: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "cli.main", "serve", "--model", model, "--data-dir", str(data),
           "--port", str(port), "--no-demo"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited with {proc.returncode} at start-up")
        time.sleep(0.2)
    raise RuntimeError("the service did not start")


class State:
    """What the clients know: acknowledged items, acknowledged deletes, ids in doubt."""

    def __init__(self) -> None:
        self.acked: dict[str, np.ndarray] = {}
        self.deleted: set[str] = set()
        self.doubt: set[str] = set()  # a delete whose answer never came: either state is right
        self.sent: set[str] = set()
        self.videos: set[str] = set()  # video ids ever put (their segments are checked)
        self.video_puts = 0  # acknowledged puts of a video, a multi-part and a picture item
        self.words_checked = 0  # keyword searches checked (items found by their tag, deletes not)
        self.lock = threading.Lock()


def writer(url: str, prefix: str, dim: int, st: State, stop: threading.Event) -> None:
    rng = np.random.default_rng(abs(hash(prefix)) % 2**32)
    n = 0
    mine: list[str] = []
    with httpx.Client(timeout=30) as c:
        while not stop.is_set():
            if mine and rng.random() < 0.3:  # delete one of this writer's acknowledged items
                victim = mine.pop(int(rng.integers(len(mine))))
                try:
                    r = c.delete(f"{url}/collections/crash/items/{victim}")
                except httpx.HTTPError:
                    with st.lock:
                        st.acked.pop(victim, None)
                        st.doubt.add(victim)
                    return
                with st.lock:
                    st.acked.pop(victim, None)
                    (st.deleted if r.status_code == 200 else st.doubt).add(victim)
                continue
            ids = [f"{prefix}-{n + i}" for i in range(10)]
            vecs = rng.normal(size=(10, dim)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            with st.lock:
                st.sent.update(ids)
            body = {"items": [{"id": i, "vector": v.tolist(), "metadata": {"tag": tag(i)}}
                              for i, v in zip(ids, vecs, strict=True)]}  # fmt: skip
            try:
                r = c.put(f"{url}/collections/crash/items", json=body)
            except httpx.HTTPError:
                return  # the service died under this put: not acknowledged
            if r.status_code == 200:
                with st.lock:
                    st.acked.update(zip(ids, vecs, strict=True))
                mine += ids
            n += 10


def tag(item_id: str) -> str:
    """An item's own word for the keyword index ("c0w1-30" -> "tagc0w1x30")."""
    return "tag" + item_id.replace("-", "x")


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def clip_bytes(rng) -> bytes:
    """A 4 s MP4 whose colour changes every second (so its segments differ)."""
    colours = rng.integers(0, 255, size=(4, 3))
    frames = [np.full((32, 32, 3), colours[int(t // 4)], np.uint8) for t in range(16)]
    return write_video(frames, 4.0, "MP4")


def png_url(rng) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (24, 24), tuple(int(x) for x in rng.integers(0, 255, 3))).save(buf, "PNG")
    return data_url(buf.getvalue(), "image/png")


def video_writer(url: str, prefix: str, st: State, stop: threading.Event) -> None:
    """Replaces its video items with versions of 4 and of 2 segments, and puts multi-part
    items (a text and a picture fused) and items with a picture. Their vectors are the model's,
    so only their presence is tracked (in `sent`); the checks look at segments and media."""
    rng = np.random.default_rng(abs(hash(prefix)) % 2**32)
    clip = data_url(clip_bytes(rng), "video/mp4")
    n = 0
    with httpx.Client(timeout=60) as c:
        while not stop.is_set():
            vid = f"{prefix}-v{n % VIDEOS}"
            interval = 4 / SEGMENTS[(n // VIDEOS) % len(SEGMENTS)]
            items = [
                {"id": vid, "video": clip, "segments": {"interval": interval}},
                {"id": f"{prefix}-m{n}", "text": "a red square", "image": png_url(rng)},
                {"id": f"{prefix}-i{n}", "image": png_url(rng)},
            ]
            with st.lock:
                st.videos.add(vid)
                st.sent.update([vid, *(f"{vid}@{i}" for i in range(MOST_SEGMENTS))])
                st.sent.update(it["id"] for it in items[1:])
            try:
                r = c.put(f"{url}/collections/crash/items", json={"items": items})
            except httpx.HTTPError:
                return  # the service died under this put
            with st.lock:
                st.video_puts += r.status_code == 200
            n += 1


def scratch(url: str, k: int) -> list[str]:
    """Drop the second collection and make it again with ten items; returns their ids."""
    with httpx.Client(timeout=30) as c:
        if c.get(f"{url}/collections/scratch").status_code == 200:
            c.delete(f"{url}/collections/scratch").raise_for_status()
        c.post(f"{url}/collections", json={"name": "scratch"}).raise_for_status()
        dim = c.get(f"{url}/collections/scratch").json()["dim"]
        ids = [f"s{k}-{i}" for i in range(10)]
        body = {"items": [{"id": i, "vector": [1.0] + [0.0] * (dim - 1)} for i in ids]}
        c.put(f"{url}/collections/scratch/items", json=body).raise_for_status()
        return ids


def cycle(args, data: Path, k: int, st: State, rng) -> tuple[int, int]:
    """One start, load, kill, restart and check; returns (acknowledged so far, wrong)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start(args.model, data, port)
    if k == 0:
        metric = "ip" if args.quantization == "none" else "cosine"
        body = {"name": "crash", "metric": metric, "quantization": args.quantization,
                "text_fields": ["tag"]}  # fmt: skip
        httpx.post(f"{url}/collections", json=body).raise_for_status()
    dim = httpx.get(f"{url}/collections/crash").json()["dim"]
    scratch_ids = scratch(url, k)
    stop = threading.Event()
    threads = [threading.Thread(target=writer, args=(url, f"c{k}w{w}", dim, st, stop))
               for w in range(3)]  # fmt: skip
    threads.append(threading.Thread(target=video_writer, args=(url, f"c{k}v", st, stop)))
    for t in threads:
        t.start()
    time.sleep(rng.uniform(0.5, 2.5))
    proc.send_signal(signal.SIGKILL)  # while puts are in flight
    proc.wait()
    stop.set()
    for t in threads:
        t.join()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start(args.model, data, port)
    try:
        return len(st.acked), check(url, st, f"c{k}w", rng, scratch_ids)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def check(url: str, st: State, cycle_prefix: str, rng, scratch_ids: list[str]) -> int:
    """Wrong answers among: this cycle's acknowledged items and a sample of 500 earlier ones (there,
    with their vectors), every acknowledged delete (gone), and the recreated collection (exactly
    its ten items). The count bounds the rest."""
    with httpx.Client(timeout=30) as c:
        count = c.get(f"{url}/collections/crash").json()["count"]
        most = len(st.sent) - len(st.deleted)
        if count < len(st.acked) or count > most:
            raise AssertionError(f"{count} items: acknowledged {len(st.acked)}, at most {most}")
        new = [i for i in st.acked if i.startswith(cycle_prefix)]
        old = [i for i in st.acked if not i.startswith(cycle_prefix)]
        sample = list(rng.choice(old, size=min(500, len(old)), replace=False)) if old else []
        wrong = 0
        for item_id in new + sample:
            r = c.get(f"{url}/collections/crash/items/{item_id}", params={"include_vector": True})
            ok = r.status_code == 200 and np.allclose(
                r.json()["vector"], st.acked[item_id], atol=1e-6
            )
            wrong += not ok
        for item_id in st.deleted:
            wrong += c.get(f"{url}/collections/crash/items/{item_id}").status_code != 404
        wrong += words_found(c, url, st, new, rng)
        wrong += videos_whole(c, url, st) + media_readable(c, url)
        got = c.get(f"{url}/collections/scratch").json()["count"]
        wrong += got != len(scratch_ids)
        wrong += sum(c.get(f"{url}/collections/scratch/items/{i}").status_code != 200
                     for i in scratch_ids)  # fmt: skip
        return wrong


def words_found(c: httpx.Client, url: str, st: State, new: list[str], rng) -> int:
    """Acknowledged items not found (alone) by their tag, and acknowledged deletes still found."""

    def hits(item_id: str) -> list[str]:
        body = {"query": {"text": tag(item_id)}, "mode": "keyword", "k": 3}
        return [
            h["id"] for h in c.post(f"{url}/collections/crash/search", json=body).json()["hits"]
        ]

    items = list(rng.choice(new, size=min(100, len(new)), replace=False)) if new else []
    gone = sorted(st.deleted)
    gone = list(rng.choice(gone, size=min(100, len(gone)), replace=False)) if gone else []
    st.words_checked += len(items) + len(gone)
    return sum(hits(i) != [i] for i in items) + sum(hits(i) != [] for i in gone)


def videos_whole(c: httpx.Client, url: str, st: State) -> int:
    """Videos with a segment stored beyond what their whole item says (or segments without a
    whole item)."""
    wrong = 0
    for vid in sorted(st.videos):
        r = c.get(f"{url}/collections/crash/items/{vid}")
        has = r.json()["metadata"]["segments"] if r.status_code == 200 else 0
        for i in range(has, MOST_SEGMENTS):
            wrong += c.get(f"{url}/collections/crash/items/{vid}@{i}").status_code != 404
    return wrong


def media_readable(c: httpx.Client, url: str) -> int:
    """Hits of a picture query whose media URL does not answer 200."""
    body = {"query": {"text": "a red square"}, "k": 50}
    hits = c.post(f"{url}/collections/crash/search", json=body).json()["hits"]
    return sum(c.get(f"{url}{h['media']}").status_code != 200 for h in hits if h["media"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--model", default="house")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quantization", choices=("none", "int8", "binary"), default="none")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    st = State()
    lost = 0
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.cycles):
            total, wrong = cycle(args, Path(tmp) / "data", k, st, rng)
            lost += wrong
            print(f"cycle {k + 1}: {total} acknowledged items, {len(st.deleted)} acknowledged "
                  f"deletes so far, {wrong} wrong", flush=True)  # fmt: skip
    print(
        f"crash loop: {args.cycles} SIGKILL cycles, {len(st.acked)} acknowledged items, "
        f"{lost} lost or undone, {len(st.deleted)} acknowledged deletes (checked gone), "
        f"{st.video_puts} acknowledged video puts ({len(st.videos)} videos of {SEGMENTS} "
        f"segments, checked whole), {st.words_checked} keyword searches checked, "
        f"{args.cycles} drops and re-creates, quantization {args.quantization}, "
        f"{len(st.sent) - len(st.acked) - len(st.deleted)} ids sent but not acknowledged or in "
        f"doubt, {time.time() - t0:.0f} s"
    )


if __name__ == "__main__":
    main()
