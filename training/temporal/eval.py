"""The video eval suites, through the whole video path: clips are written as real MP4 files, decoded
by encoders.video at 1 frame/s and embedded by `Encoder.encode_video`, so what is measured is
what the service serves. Held-out items (Fashion-MNIST test images) and, for order, held-out
colour pairs only.

- video-order: a garment turning from colour A to colour B; is its vector closer to "a <item>
  turning from A to B." than to "... from B to A." (order_top1)? And is that caption closer to
  the clip than to the same frames played backwards (order_search_top1: what a text search for
  the moment needs)? The temporal head against mean pooling (the baseline) and chance (0.5).
- video-moments: a clip of four shots of different tinted garments (3 to 6 s each, each still,
  moving or zooming); for a query
  "a <colour> <item>" in a wording never used in training, is the clip's top segment the right
  one, its start and end within one interval (4 s) of the shot's? Segments at shot boundaries,
  and at fixed 4 s intervals; the model's pooling against mean pooling, beside chance.

Imports encoders and the training data; nothing of the service or the index.
"""

from __future__ import annotations

import numpy as np

from encoders.base import Encoder
from encoders.video import POOLINGS, Video, decode_video, segments
from housedata.clips import item_name, render, shot_clip, to_video
from housedata.sets import fashion_mnist
from training.suites import suite
from training.temporal.data import EVAL_TEMPLATE, HELD_OUT_PAIRS, sample_specs

INTERVAL = 4.0


def _pooling(enc: Encoder) -> str:
    return "temporal" if enc.temporal_head is not None else "mean"


@suite("video-order")
def video_order(enc: Encoder, limit: int | None = None, seed: int = 0) -> dict:
    images, labels = fashion_mnist("test")
    specs = sample_specs(labels, limit or 400, HELD_OUT_PAIRS, seed + 11, change_share=1.0,
                         frames=(8, 8))  # fmt: skip
    videos = [decode_video(to_video(render(images[s.image], s))) for s in specs]
    rng = np.random.default_rng(seed)
    right, wrong = [], []
    for s in specs:
        name = item_name(s.label, rng)
        right.append(EVAL_TEMPLATE.format(item=name, a=s.start, b=s.end))
        wrong.append(EVAL_TEMPLATE.format(item=name, a=s.end, b=s.start))
    t = enc.embed_text(right + wrong)
    n = len(specs)
    backwards = [Video(v.frames[::-1], v.times, v.duration) for v in videos]
    out = {"clips": n, "chance@1": 0.5}
    for tag, pooling in (("", _pooling(enc)), ("baseline:", "mean")):
        v = np.stack([e.vector for e in enc.encode_video(videos, INTERVAL, pooling=pooling)])
        r = np.stack([e.vector for e in enc.encode_video(backwards, INTERVAL, pooling=pooling)])
        out[f"{tag}order_top1"] = _wins(np.sum(v * t[:n], 1), np.sum(v * t[n:], 1))
        out[f"{tag}order_search_top1"] = _wins(np.sum(v * t[:n], 1), np.sum(r * t[:n], 1))
    return out


def _wins(right: np.ndarray, wrong: np.ndarray) -> float:
    """The share where `right` scores above `wrong`, a tie (to 1e-6) counting a half: mean
    pooling gives a clip and its reverse the same vector."""
    tie = np.isclose(right, wrong, rtol=0, atol=1e-6)
    return float(np.mean(np.where(tie, 0.5, right > wrong)))


@suite("video-moments")
def video_moments(enc: Encoder, limit: int | None = None, seed: int = 0) -> dict:
    images, labels = fashion_mnist("test")
    rng = np.random.default_rng(seed + 21)
    clips = [shot_clip(images, labels, rng) for _ in range(limit or 100)]
    videos = [decode_video(data, shots=True) for data, _ in clips]
    queries = enc.embed_text([q for _, truth in clips for _, _, q, _ in truth])
    out: dict = {"clips": len(clips), "queries": len(queries)}
    for tag, shots in (("", True), ("_interval", False)):
        n_segs = [len(segments(v, INTERVAL, shots=shots)) for v in videos]
        out[f"chance{tag}@1"] = float(np.mean([1 / n for n in n_segs]))
        for key, pooling in ((f"moment{tag}_top1", _pooling(enc)),
                             (f"baseline:moment{tag}_top1", "mean")):  # fmt: skip
            embs = enc.encode_video(videos, INTERVAL, shots=shots, pooling=pooling)
            out[key] = _moment_hits(embs, clips, queries)
    out["shots_found"] = float(np.mean([len(v.cuts) == 3 for v in videos]))
    if enc.temporal_head is not None:  # how far the head moves a segment from its frames' mean
        a, b = (enc.encode_video(videos, INTERVAL, shots=True, pooling=p) for p in POOLINGS)
        cos = [np.sum(x.segment_vectors * y.segment_vectors, 1) for x, y in zip(a, b, strict=True)]
        out["cosine_to_mean"] = float(np.mean(np.concatenate(cos)))
    return out


def _moment_hits(embs, clips, queries: np.ndarray) -> float:
    hits, q = [], 0
    for emb, (_, truth) in zip(embs, clips, strict=True):
        for start, end, *_ in truth:
            best = emb.segments[int(np.argmax(emb.segment_vectors @ queries[q]))]
            q += 1
            hits.append(abs(best.start - start) <= INTERVAL and abs(best.end - end) <= INTERVAL
                        and best.start < end and best.end > start)  # fmt: skip
    return float(np.mean(hits))
