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


def test_stale_sb_decides_a_stale_epoch_with_two_syncs():
    """Batch by batch a stale epoch would sync once per forward batch (79 here); planned whole,
    twice in all (the positions kept, then their per-batch counts on the host)."""
    device = torch.device("cuda")
    method = build_method("stale_sb", SelectionSettings(batch_size=128, num_train=10_000,
                                                        device="cuda", prime_epochs=0,
                                                        staleness=2))
    method.cached_loss = torch.rand(10_000, device=device)
    method.start_epoch(1)
    order = torch.randperm(10_000, device=device)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            plan = method.plan_epoch(order)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message).lower()]
    assert len(syncs) <= 2, [str(w.message) for w in syncs]
    assert plan is not None and plan.kept_ids.device.type == "cuda"
    assert len(plan.candidates) == 79 and 0 < plan.kept_ids.numel() < 10_000
