"""CUDA paths (skipped without a GPU): host syncs in the selection path, bf16 autocast."""

import warnings

import pytest
import torch

from sbbench.selection import Scores, SelectionSettings, build_method

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_sb_select_syncs_at_most_once_per_forward_batch():
    device = torch.device("cuda")
    method = build_method("sb", SelectionSettings(batch_size=128, num_train=10_000,
                                                  device="cuda", prime_epochs=0))
    method.start_epoch(0)
    ids = torch.arange(128, device=device)
    x = torch.randn(128, 3, 32, 32, device=device)
    y = torch.zeros(128, dtype=torch.int64, device=device)
    losses = torch.rand(128, device=device)
    scores = Scores(torch.zeros(128, 10, device=device), losses)
    for _ in range(10):  # fill the window, emit some batches
        method.select(ids, x, y, lambda *_: scores)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            method.select(ids, x, y, lambda *_: scores)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message).lower()]
    assert len(syncs) <= 1, [str(w.message) for w in syncs]


def test_bf16_autocast_training_run(tiny):
    from sbbench.config import RunConfig
    from sbbench.train.run import train_untracked

    config = RunConfig.from_dict({**tiny, "device": "cuda", "amp": True, "method": "sb"})
    outcome = train_untracked(config)
    assert outcome.final["final_val_error"] < 0.9
    phases = outcome.curve[-1]
    total = sum(phases[k] for k in ("time_forward_select_s", "time_forward_train_s",
                                    "time_backward_s", "time_other_s"))
    assert total == pytest.approx(phases["train_time_s"], rel=1e-6)
