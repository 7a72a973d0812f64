"""Speech bench: seconds of speech transcribed per second by the recogniser alone, and inside a
video item's ingestion through the pipeline (decode, frames through the image tower, the sound
track transcribed and its segments embedded), against the same ingestion without speech, all
measured in the same run.

Clips: espeak-ng phrases, one per 4 s slot, under a still picture (MP4, H.264 + AAC).

    python bench/speech.py [--model house] [--clips 6] [--slots 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from encoders import Waveform
from encoders.speech import SPEECH_RATE
from housedata.writer import write_video
from runtime import inputs as I
from runtime.container import Runtime
from runtime.settings import Settings
from training.audio.data import HELD_OUT_VARIANTS, Voice
from training.speech.eval import _moment_clip, _phrases


def make_clips(n: int, slots: int) -> list[tuple[np.ndarray, bytes]]:
    """(speech at 16 kHz, the MP4 carrying it under a still picture) per clip."""
    rng = np.random.default_rng(0)
    phrases = _phrases(rng, n * slots)
    out = []
    for c in range(n):
        voice = Voice("en-us", HELD_OUT_VARIANTS[c % len(HELD_OUT_VARIANTS)])
        wave, _ = _moment_clip(phrases[c * slots : (c + 1) * slots], voice, rng)
        frames = [np.full((64, 64, 3), 90 + 20 * c, np.uint8)] * int(len(wave) / SPEECH_RATE * 8)
        out.append((wave, write_video(frames, 8, "MP4", Waveform(wave, SPEECH_RATE))))
    return out


async def ingest(rt: Runtime, videos: list[bytes], speech: bool) -> float:
    """Seconds to embed the videos one request at a time, as items are put."""
    t0 = time.perf_counter()
    for i, v in enumerate(videos):
        await rt.pipeline.embed([I.Video(v, f"video {i}", speech=speech)])
    return time.perf_counter() - t0


async def measure(rt: Runtime, clips: list[tuple[np.ndarray, bytes]]) -> dict:
    await rt.start()
    try:
        videos = [v for _, v in clips]
        await ingest(rt, videos[:1], True)  # warm: the recogniser loads on first use
        t0 = time.perf_counter()
        for w, _ in clips:
            rt.speech.recogniser.transcribe(w)
        alone = time.perf_counter() - t0
        frames_only = await ingest(rt, videos, False)
        with_speech = await ingest(rt, videos, True)
    finally:
        await rt.stop()
    return {"alone": alone, "frames_only": frames_only, "with_speech": with_speech}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="house")
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--slots", type=int, default=3)
    args = ap.parse_args()
    clips = make_clips(args.clips, args.slots)
    seconds = sum(len(w) for w, _ in clips) / SPEECH_RATE
    with tempfile.TemporaryDirectory() as d:
        rt = Runtime(Settings.load({}, model=args.model, data_dir=Path(d), demo=False))
        t = asyncio.run(measure(rt, clips))
    print(f"{len(clips)} clips, {seconds:.1f} s of sound ({args.slots} phrases each), "
          f"model {args.model}, recogniser {rt.settings.asr}")  # fmt: skip
    print(f"transcription alone:        {seconds / t['alone']:6.1f} s of sound per second")
    print(f"video ingestion with speech: {seconds / t['with_speech']:6.1f} s of sound per second "
          f"({t['with_speech']:.2f} s)")  # fmt: skip
    print(f"video ingestion, frames only: {t['frames_only']:.2f} s; with speech "
          f"{t['with_speech'] / t['frames_only']:.2f}x that")  # fmt: skip
    print(f"speech inside ingestion runs at {t['alone'] / t['with_speech']:.2f}x the rate alone")


if __name__ == "__main__":
    main()
