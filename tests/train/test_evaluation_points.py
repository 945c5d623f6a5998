"""Every method evaluates at exactly the same examples-seen counts, whatever its forward batch."""

from __future__ import annotations

import pytest
import torch

from sbbench.config import RunConfig
from sbbench.tracking import NullTracker

RUNS = [("traditional", {}), ("random", {}), ("sb", {}), ("stale_sb", {"staleness": 2}),
        ("kath18", {}),  # presample 3 x 50 = 150
        ("sb", {"forward_batch_size": 150})]


class StepRecorder(NullTracker):
    def __init__(self):
        self.val_error_steps = []

    def log_evaluation(self, metrics, step):
        if "val_error" in metrics:
            self.val_error_steps.append(step)
            assert metrics["examples_seen"] == step


def run(config):
    from sbbench.train.run import build_training, resolve_device

    tracker = StepRecorder()
    with torch.random.fork_rng(devices=[]):
        loop = build_training(config, tracker, resolve_device("cpu"))
        sizes, step = [], loop.train_step

        def recording(batch):
            sizes.append((loop.method.epoch, len(batch)))
            step(batch)

        loop.train_step = recording
        outcome = loop.run()
    return tracker.val_error_steps, sizes, outcome


@pytest.mark.parametrize("method,extra", RUNS, ids=[
    m + ("-fb150" if "forward_batch_size" in e else "") for m, e in RUNS])
def test_every_method_logs_val_error_at_the_same_steps(tiny, method, extra):
    # 130 divides neither the batch (50) nor the presample (150); 2.5 epochs of 600 end
    # inside an epoch and inside a forward batch.
    config = RunConfig.from_dict({**tiny, "method": method, "epochs": 2.5,
                                  "eval_every_examples": 130, **extra})
    steps, sizes, outcome = run(config)
    assert steps == list(range(130, 1500, 130)) + [1500]
    assert outcome.final["total_examples_seen"] == 1500
    if method == "sb":
        # Cutting a forward batch leaves SB's backward batches exact: all of `batch_size` but
        # the flush at the end of each epoch (the run stops inside epoch 2: no flush there).
        for epoch in (0, 1):
            in_epoch = [n for e, n in sizes if e == epoch]
            assert all(n == 50 for n in in_epoch[:-1]) and 0 < in_epoch[-1] <= 50
        assert all(n == 50 for e, n in sizes if e == 2)
        assert sum(n for _, n in sizes) == outcome.final["total_examples_backpropped"]
