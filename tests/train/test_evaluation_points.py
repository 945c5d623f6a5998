"""Every method evaluates at exactly the same examples-seen counts, whatever its forward batch,
and the training itself does not depend on where the evaluations fall."""

from __future__ import annotations

import pytest
import torch

from sbbench.config import RunConfig
from sbbench.tracking import NullTracker

RUNS = [("traditional", {}), ("random", {}), ("sb", {}), ("stale_sb", {"staleness": 2}),
        ("kath18", {}),  # presample 3 x 50 = 150
        ("sb", {"forward_batch_size": 150})]
IDS = [m + ("-fb150" if "forward_batch_size" in e else "") for m, e in RUNS]


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
        torch.manual_seed(0)
        loop = build_training(config, tracker, resolve_device("cpu"))
        sizes, step = [], loop.train_step

        def recording(batch):
            sizes.append((loop.method.epoch, len(batch)))
            step(batch)

        loop.train_step = recording
        outcome = loop.run()
    return tracker.val_error_steps, sizes, outcome, loop.model


@pytest.mark.parametrize("method,extra", RUNS, ids=IDS)
def test_every_method_logs_val_error_at_the_same_steps(tiny, method, extra):
    # 130 divides neither the batch (50) nor the presample (150); the budget of 2.55 epochs of
    # 600 (1530 examples) ends inside an epoch and inside a forward batch.
    config = RunConfig.from_dict({**tiny, "method": method, "epochs": 2.55,
                                  "eval_every_examples": 130, **extra})
    steps, sizes, outcome, model = run(config)
    assert steps == list(range(130, 1530, 130)) + [1530]
    assert outcome.final["total_examples_seen"] == 1530
    assert sum(n for _, n in sizes) == outcome.final["total_examples_backpropped"]
    if method in ("traditional", "sb", "random"):
        # No batch is cut at an evaluation point: every backward batch has `batch_size`
        # examples except the flush at the end of an epoch (the run stops inside epoch 2).
        for epoch in (0, 1):
            in_epoch = [n for e, n in sizes if e == epoch]
            assert all(n == 50 for n in in_epoch[:-1]) and 0 < in_epoch[-1] <= 50
        assert all(n == 50 for e, n in sizes if e == 2)
        if method == "traditional":
            assert {n for _, n in sizes} == {50}
    # The training does not depend on the evaluation schedule: evaluating every 600 examples
    # instead gives the same model at the end.
    _, other_sizes, other, other_model = run(config.replace(eval_every_examples=600))
    assert other_sizes == sizes
    assert torch.equal(other.per_example.times_backpropped, outcome.per_example.times_backpropped)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 other_model.state_dict().values()))
    assert other.curve[-1]["val_error"] == outcome.curve[-1]["val_error"]
