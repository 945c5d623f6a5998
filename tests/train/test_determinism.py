"""Same seed on the CPU: same selections, same metrics. Eval-mode scoring leaves BN alone."""

from __future__ import annotations

import pytest
import torch

from sbbench.config import RunConfig
from sbbench.train.run import train_untracked

TIMING_KEYS = ("train_time_s", "time_forward_select_s", "time_forward_train_s",
               "time_backward_s", "time_other_s")


def untimed(curve):
    return [{k: v for k, v in point.items() if k not in TIMING_KEYS} for point in curve]


@pytest.mark.parametrize("method", ["sb", "stale_sb", "random", "kath18"])
def test_same_seed_same_selections_and_metrics(method, tiny):
    config = RunConfig.from_dict({**tiny, "method": method, "epochs": 3, "seed": 5})
    first, second = train_untracked(config), train_untracked(config)
    assert untimed(first.curve) == untimed(second.curve)
    assert torch.equal(first.per_example.times_backpropped, second.per_example.times_backpropped)
    assert torch.equal(first.per_example.times_scored, second.per_example.times_scored)
    # The global RNG is not what drives it: a shifted global stream changes nothing.
    torch.manual_seed(12345)
    torch.rand(1000)
    third = train_untracked(config)
    assert untimed(third.curve) == untimed(first.curve)
    other = train_untracked(config.replace(seed=6))
    assert not torch.equal(other.per_example.times_backpropped,
                           first.per_example.times_backpropped)


def test_eval_mode_scoring_leaves_batchnorm_statistics(tiny):
    from sbbench.train.run import build_training, resolve_device
    from sbbench.tracking import NullTracker

    config = RunConfig.from_dict({**tiny, "method": "sb"})
    loop = build_training(config, NullTracker(), resolve_device("cpu"))
    batchnorms = [m for m in loop.model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    before = [b.running_mean.clone() for b in batchnorms]
    ids = torch.arange(50)
    loop.score_forward(ids, loop.data.train_x[ids], loop.data.train_y[ids])
    assert all(torch.equal(b.running_mean, m) for b, m in zip(batchnorms, before))
    assert loop.model.training  # back in train mode for the training step

    train_scoring = build_training(config.replace(score_mode="train"), NullTracker(),
                                   resolve_device("cpu"))
    batchnorms = [m for m in train_scoring.model.modules()
                  if isinstance(m, torch.nn.BatchNorm1d)]
    before = [b.running_mean.clone() for b in batchnorms]
    train_scoring.score_forward(ids, loop.data.train_x[ids], loop.data.train_y[ids])
    assert not all(torch.equal(b.running_mean, m) for b, m in zip(batchnorms, before))


def test_loop_counters_and_exact_backward_batches(tiny):
    from sbbench.train.run import build_training, resolve_device
    from sbbench.tracking import NullTracker

    config = RunConfig.from_dict({**tiny, "method": "sb", "epochs": 3})
    loop = build_training(config, NullTracker(), resolve_device("cpu"))
    sizes = []
    original = loop.train_step

    def recording(batch):
        sizes.append(len(batch))
        original(batch)

    loop.train_step = recording
    outcome = loop.run()
    # Priming: 12 batches of 50; then exact batches of 50 plus at most one flush per epoch.
    assert sizes[:12] == [50] * 12
    partial = [s for s in sizes[12:] if s != 50]
    assert len(partial) <= 2 and all(0 < s < 50 for s in partial)
    assert sum(sizes) == outcome.final["total_examples_backpropped"]
    assert outcome.final["total_examples_seen"] == 1800
    assert outcome.final["total_selection_forwards"] == 1200  # two post-priming epochs
    assert outcome.final["total_optimizer_steps"] == len(sizes)


def test_stale_sb_skips_selection_forwards(tiny):
    config = RunConfig.from_dict({**tiny, "method": "stale_sb", "staleness": 3, "epochs": 4})
    final = train_untracked(config).final
    # Epoch 0 priming, epoch 1 refresh (600 scored), epochs 2-3 stale (1200 skipped).
    assert final["total_selection_forwards"] == 600
    assert final["total_selection_forwards_skipped"] == 1200


def test_time_budget_and_target_stop(tiny):
    config = RunConfig.from_dict({**tiny, "method": "traditional", "epochs": 50,
                                  "time_budget_s": 0.3})
    outcome = train_untracked(config)
    assert outcome.stop_reason == "time_budget"
    assert outcome.final["total_train_time_s"] < 5
    target = RunConfig.from_dict({**tiny, "method": "traditional", "epochs": 50,
                                  "target_val_error": 0.9})
    outcome = train_untracked(target)
    assert outcome.stop_reason == "target"
    assert outcome.curve[-1]["val_error"] <= 0.9


def test_learning_rate_schedule_by_examples():
    from sbbench.train.schedules import StepLearningRate

    schedule = StepLearningRate(0.1, (60, 120, 160), 0.2, num_train=1000)
    assert schedule.lr_at(0) == 0.1
    assert schedule.lr_at(59_999) == 0.1
    assert schedule.lr_at(60_000) == pytest.approx(0.02)
    assert schedule.lr_at(160_000) == pytest.approx(0.1 * 0.2 ** 3)


@pytest.mark.parametrize("forward_batch_size", [None, 120])
def test_planned_stale_epochs_train_exactly_what_batch_by_batch_trains(tiny, monkeypatch,
                                                                       forward_batch_size):
    """StaleSB's stale epochs load and train only the kept examples (decided up front); the
    run must match, evaluation for evaluation, the run that decides them batch by batch."""
    from sbbench.selection.stale import StaleSelectiveBackprop

    config = RunConfig.from_dict({**tiny, "method": "stale_sb", "epochs": 5, "staleness": 2,
                                  "forward_batch_size": forward_batch_size, "seed": 3})
    plans = []
    original = StaleSelectiveBackprop.plan_epoch

    def recording(self, order):
        plan = original(self, order)
        plans.append(plan is not None)
        return plan

    monkeypatch.setattr(StaleSelectiveBackprop, "plan_epoch", recording)
    planned = train_untracked(config)
    assert plans == [False, False, True, False, True]  # priming, refresh, stale, ...
    monkeypatch.setattr(StaleSelectiveBackprop, "plan_epoch", lambda self, order: None)
    batch_by_batch = train_untracked(config)
    assert len(planned.curve) == 5 * 3  # evaluations inside epochs too
    assert untimed(planned.curve) == untimed(batch_by_batch.curve)
    assert torch.equal(planned.per_example.times_backpropped,
                       batch_by_batch.per_example.times_backpropped)
    assert planned.final["total_selection_forwards_skipped"] == 2 * 600
    # Mid-epoch evaluations count the candidates reached so far, not the whole planned epoch:
    # those of the forward batches processed before the evaluation point (an evaluation inside
    # a forward batch comes before it is processed).
    stale_epoch = planned.curve[6:9]  # epoch 2 starts after 2 x 600 examples seen
    forward = forward_batch_size or 50
    assert [p["selection_forwards_skipped"] for p in stale_epoch] == \
        [(p["examples_seen"] - 1200) // forward * forward for p in stale_epoch]
    assert stale_epoch[0]["selection_forwards_skipped"] < 600
