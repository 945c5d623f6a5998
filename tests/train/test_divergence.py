"""Divergence ends a run however it shows: training loss, parameters, validation loss, or a
collapse to chance after learning. Intervals without a step log no training loss. Diverged runs
keep their per-example table."""

from __future__ import annotations

import math

import pytest
import torch

from sbbench.config import RunConfig
from sbbench.run_failures import RunDiverged
from sbbench.tracking import NullTracker


def make_loop(tiny, **overrides):
    from sbbench.train.run import build_training, resolve_device

    config = RunConfig.from_dict({**tiny, "method": "sb", **overrides})
    return build_training(config, NullTracker(), resolve_device("cpu"))


def before_second_evaluation(loop, corrupt):
    original, calls = loop.evaluate, []

    def evaluate():
        calls.append(1)
        if len(calls) == 2:
            corrupt(loop.model)
        return original()

    loop.evaluate = evaluate


def test_non_finite_parameters_end_the_run(tiny):
    loop = make_loop(tiny)
    first_weight = next(loop.model.parameters())
    before_second_evaluation(loop, lambda model: first_weight.data.view(-1)[0].fill_(math.inf))
    with pytest.raises(RunDiverged, match="non-finite parameters"):
        loop.run()
    assert len(loop.outcome.curve) == 1


def test_non_finite_validation_loss_ends_the_run(tiny):
    loop = make_loop(tiny)
    batchnorm = next(m for m in loop.model.modules() if isinstance(m, torch.nn.BatchNorm1d))
    # Parameters and the training loss stay finite; only the evaluation sees it.
    before_second_evaluation(loop, lambda model: batchnorm.running_var.fill_(math.nan))
    with pytest.raises(RunDiverged, match="non-finite validation loss"):
        loop.run()


def test_collapse_to_chance_after_learning_ends_the_run(tiny, monkeypatch):
    from sbbench.train import loop as loop_module

    assert not loop_module.collapsed_to_chance(0.9, math.inf, 10)   # never learned: slow
    assert not loop_module.collapsed_to_chance(0.84, 0.45, 10)
    assert loop_module.collapsed_to_chance(0.85, 0.45, 10)
    assert not loop_module.collapsed_to_chance(0.85, 0.46, 10)
    loop = make_loop(tiny, method="traditional")
    errors = iter([0.6, 0.3, 0.2, 0.88, 0.1, 0.1])
    monkeypatch.setattr(loop, "_error_and_loss", lambda x, y: (next(errors), 1.0))
    with pytest.raises(RunDiverged, match="collapsed to chance"):
        loop.run()
    assert [p["val_error"] for p in loop.outcome.curve] == [0.6, 0.3, 0.2]


def test_interval_without_a_step_has_no_training_loss(tiny):
    # After priming, SB keeps ~25%: a backward batch of 50 takes ~200 candidates, so most
    # evaluations every 50 examples come with no optimizer step since the previous one.
    loop = make_loop(tiny, eval_every_examples=50, beta=3)
    outcome = loop.run()
    previous_steps, empty = 0, 0
    for point in outcome.curve:
        if point["optimizer_steps"] == previous_steps:
            assert "train_loss" not in point
            empty += 1
        else:
            assert point["train_loss"] > 0
        previous_steps = point["optimizer_steps"]
        assert math.isfinite(point["val_loss"]) and point["val_loss"] > 0
    assert empty > 0


def test_diverged_run_writes_its_per_example_table(tiny, tracking_uri):
    from mlflow import MlflowClient

    from sbbench.cli import main
    from tests.conftest import all_runs
    from tests.train.test_mlflow_record import cli_args

    assert main(["train", *cli_args(tiny, method="sb", lr=1e9, label_noise=0.1),
                 "--tracking-uri", tracking_uri, "--no-progress"]) == 1
    run = all_runs(tracking_uri)[0]
    assert run.info.status == "FAILED"
    assert run.data.tags["sbbench.failure_kind"] == "diverged"
    artifacts = {a.path for a in MlflowClient(tracking_uri=tracking_uri)
                 .list_artifacts(run.info.run_id)}
    assert "per_example.csv.gz" in artifacts
