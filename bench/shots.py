"""Shot boundaries: the decoder's cut detector against PySceneDetect's ContentDetector on the same
clips (the video-moments suite's: four shots of 3-6 s of tinted garments, still, moving or
zooming, 4 frames/s H.264), when scenedetect is installed (`pip install scenedetect
opencv-python-headless`; it is not a dependency of this project). A clip counts as exact when
every cut is found at its frame and nothing else is.

    python bench/shots.py [--clips 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from encoders.video import decode_video
from housedata.clips import shot_clip
from housedata.sets import fashion_mnist


def score(found: list[list[float]], truth: list[list[float]]) -> str:
    exact = sum(f == t for f, t in zip(found, truth, strict=True))
    extra = sum(len(set(f) - set(t)) for f, t in zip(found, truth, strict=True))
    missed = sum(len(set(t) - set(f)) for f, t in zip(found, truth, strict=True))
    return f"exact {exact}/{len(truth)} clips, {extra} false cuts, {missed} missed"


def scenedetect_cuts(data: bytes, folder: str, min_len: int | None) -> list[float]:
    from scenedetect import ContentDetector, SceneManager, open_video

    path = Path(folder) / "clip.mp4"
    path.write_bytes(data)
    manager = SceneManager()
    manager.add_detector(ContentDetector() if min_len is None else
                         ContentDetector(min_scene_len=min_len))  # fmt: skip
    manager.detect_scenes(open_video(str(path), backend="pyav"))
    return [round(s[0].get_seconds(), 3) for s in manager.get_scene_list()[1:]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=100)
    args = ap.parse_args()
    images, labels = fashion_mnist("test")
    rng = np.random.default_rng(21)
    clips = [shot_clip(images, labels, rng) for _ in range(args.clips)]
    truth = [[round(s[0], 3) for s in shots[1:]] for _, shots in clips]
    print(f"# shot bench: {len(clips)} clips, {sum(map(len, truth))} cuts")
    t0 = time.perf_counter()
    ours = [decode_video(data, shots=True).cuts for data, _ in clips]
    print(f"decoder's detector (with 1 fps sampling)  {score(ours, truth)}, "
          f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
    try:
        import scenedetect  # noqa: F401
    except ImportError:
        print("PySceneDetect: not installed")
        return
    with tempfile.TemporaryDirectory() as d:
        for label, min_len in (("default", None), ("min_scene_len=4", 4)):
            t0 = time.perf_counter()
            found = [scenedetect_cuts(data, d, min_len) for data, _ in clips]
            print(f"PySceneDetect ContentDetector {label:<16} {score(found, truth)}, "
                  f"{time.perf_counter() - t0:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
