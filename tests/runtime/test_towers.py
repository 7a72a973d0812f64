"""The towers' model calls: small batches on one intra-op thread, larger ones on all of them."""

from __future__ import annotations

import torch

from runtime.towers import SMALL_BATCH, cores_for


def test_small_batches_run_on_one_thread_and_the_count_comes_back():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with cores_for(SMALL_BATCH):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with cores_for(SMALL_BATCH + 1):
            assert torch.get_num_threads() == 2
        try:
            with cores_for(1):
                raise RuntimeError("the model failed")
        except RuntimeError:
            pass
        assert torch.get_num_threads() == 2  # restored after a failing call too
    finally:
        torch.set_num_threads(before)
