"""The temporal head: untrained it is mean pooling; spans of any length batch together exactly;
its files round-trip and a mismatched one is refused; a few hundred steps on a toy problem teach
it an order that mean pooling cannot see; encode_video's pooling option and its refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from encoders import InputError, ModelLoadError
from encoders.temporal import (
    TemporalConfig,
    TemporalHead,
    has_temporal_head,
    load_temporal_head,
    save_temporal_head,
)
from encoders.video import Segment, mean_pool, pool

DIM = 16


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_an_untrained_head_is_mean_pooling():
    torch.manual_seed(0)
    head = TemporalHead(TemporalConfig(dim=DIM, max_frames=8)).eval()
    frames = unit(np.random.default_rng(0).normal(size=(6, DIM)).astype(np.float32))
    spans = [Segment(0.0, 3.0, [0, 1, 2]), Segment(3.0, 6.0, [3, 4, 5])]
    got, want = pool(frames, spans, head), mean_pool(frames, spans)
    np.testing.assert_allclose(got.vector, want.vector, atol=1e-6)
    np.testing.assert_allclose(got.segment_vectors, want.segment_vectors, atol=1e-6)


def test_spans_of_different_lengths_batch_exactly():
    torch.manual_seed(0)
    head = TemporalHead(TemporalConfig(dim=DIM, max_frames=8))
    torch.nn.init.normal_(head.out.weight, std=0.3)  # a head that does something
    head.eval()
    rng = np.random.default_rng(1)
    spans = [unit(rng.normal(size=(n, DIM)).astype(np.float32)) for n in (1, 3, 8, 20)]
    together = head.pool(spans)
    for s, got in zip(spans, together, strict=True):
        np.testing.assert_allclose(got, head.pool([s])[0], atol=1e-5)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    # a span longer than max_frames is resampled evenly: 20 frames -> 8
    idx = np.linspace(0, 19, 8).round().astype(int)
    np.testing.assert_allclose(together[3], head.pool([spans[3][idx]])[0], atol=1e-5)


def test_files_round_trip_and_mismatches_are_refused(tmp_path):
    torch.manual_seed(0)
    head = TemporalHead(TemporalConfig(dim=DIM, max_frames=8))
    torch.nn.init.normal_(head.out.weight, std=0.3)
    save_temporal_head(tmp_path / "t", head)
    assert has_temporal_head(tmp_path / "t") and not has_temporal_head(tmp_path)
    back = load_temporal_head(tmp_path / "t", DIM)
    x = [unit(np.random.default_rng(2).normal(size=(5, DIM)).astype(np.float32))]
    np.testing.assert_allclose(back.pool(x), head.eval().pool(x), atol=1e-6)
    with pytest.raises(ModelLoadError) as e:
        load_temporal_head(tmp_path / "t", 32)
    assert str(e.value) == f"{tmp_path / 't'}: the temporal head is 16-d, the model 32-d"
    (tmp_path / "t" / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(ModelLoadError, match=r"^cannot load the temporal head at "):
        load_temporal_head(tmp_path / "t", DIM)


def test_a_few_hundred_steps_learn_an_order_mean_pooling_cannot_see():
    """Clips of two states, a then b, or b then a; the caption of 'a then b' is a + b plus a
    small order direction. The head must put each clip nearer its own caption."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    states = unit(rng.normal(size=(6, DIM)).astype(np.float32))
    order = unit(rng.normal(size=(6, 6, DIM)).astype(np.float32))

    def batch(n):
        i, j = rng.integers(6, size=n), rng.integers(6, size=n)
        j = np.where(i == j, (j + 1) % 6, j)
        clips = np.stack(
            [np.stack([states[a]] * 2 + [states[b]] * 2) for a, b in zip(i, j, strict=True)]
        )
        cap = unit(states[i] + states[j] + 0.3 * order[i, j])
        rev = unit(states[i] + states[j] + 0.3 * order[j, i])
        return torch.from_numpy(clips), torch.from_numpy(cap), torch.from_numpy(rev)

    head = TemporalHead(TemporalConfig(dim=DIM, layers=1, heads=2, ff=32, max_frames=8))
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    for _ in range(300):
        clips, cap, rev = batch(64)
        z = head(clips)
        logits = 20 * z @ torch.cat([cap, rev]).T
        loss = F.cross_entropy(logits, torch.arange(64))
        opt.zero_grad()
        loss.backward()
        opt.step()
    clips, cap, rev = batch(256)
    with torch.no_grad():
        z = head.eval()(clips)
    mean = F.normalize(clips.mean(1), dim=-1)
    right = lambda v: float(((v * cap).sum(1) > (v * rev).sum(1)).float().mean())  # noqa: E731
    assert right(z) > 0.95
    assert right(mean) < 0.7  # the mean of a, a, b, b is the mean of b, b, a, a


def test_encode_video_pooling_refusals(tiny_clip_dir):
    from encoders import load_encoder
    from encoders.video import decode_video
    from housedata.writer import write_video

    enc = load_encoder(f"hf:{tiny_clip_dir}")
    v = decode_video(write_video([np.zeros((16, 16, 3), np.uint8)] * 8, 4))
    with pytest.raises(InputError) as e:
        enc.encode_video([v], pooling="temporal")
    assert str(e.value) == (f"model 'hf:{tiny_clip_dir}' has no temporal head: use pooling 'mean' "
                            "(the house model ships one in models/house/temporal)")  # fmt: skip
    with pytest.raises(InputError) as e:
        enc.encode_video([v], pooling="max")
    assert str(e.value) == "pooling must be one of mean, temporal, not 'max'"
