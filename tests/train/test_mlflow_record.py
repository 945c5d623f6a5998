"""What one `sbbench train` run leaves in MLflow, read back through MLflow's own API."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from mlflow import MlflowClient

from sbbench.cli import main
from tests.conftest import all_runs

EVAL_METRICS = {"val_error", "test_error", "train_loss", "train_time_s", "examples_seen",
                "examples_backpropped", "selection_forwards", "optimizer_steps", "keep_rate",
                "time_forward_select_s", "time_forward_train_s", "time_backward_s",
                "time_other_s"}
FINAL_METRICS = {"final_val_error", "final_test_error", "total_train_time_s",
                 "total_examples_backpropped", "total_selection_forwards"}


def cli_args(workload: dict, **overrides) -> list[str]:
    args = []
    for key, value in {**workload, **overrides}.items():
        args += ["--" + key.replace("_", "-"), str(value)]
    return args


def test_train_run_record(tiny, tracking_uri, capsys):
    code = main(["train", *cli_args(tiny, method="sb", beta=2, label_noise=0.1, seed=3),
                 "--tracking-uri", tracking_uri, "--no-progress"])
    assert code == 0
    runs = all_runs(tracking_uri)
    assert len(runs) == 1
    run = runs[0]
    client = MlflowClient(tracking_uri=tracking_uri)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["method"] == "sb" and params["beta"] == "2.0" and params["seed"] == "3"
    assert params["model"] == "cnn1d" and params["label_noise"] == "0.1"
    assert params["batch_size"] == "50"
    tags = run.data.tags
    for tag in ("sbbench.method", "sbbench.dataset", "sbbench.model", "sbbench.git_commit",
                "sbbench.torch_version", "sbbench.device"):
        assert tags[tag], tag
    assert tags["sbbench.method"] == "sb"
    assert EVAL_METRICS | FINAL_METRICS <= set(run.data.metrics)

    # One evaluation every 200 examples seen over 2 epochs of 600: steps 200 ... 1200.
    history = client.get_metric_history(run.info.run_id, "val_error")
    assert [m.step for m in history] == list(range(200, 1201, 200))
    seen = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "examples_seen")}
    assert all(seen[step] == step for step in seen)
    # The phases add up to the clock at every evaluation.
    def curve(key):
        return {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}
    clock = curve("train_time_s")
    phases = [curve(k) for k in ("time_forward_select_s", "time_forward_train_s",
                                 "time_backward_s", "time_other_s")]
    for step, total in clock.items():
        assert sum(p[step] for p in phases) == pytest.approx(total, rel=1e-6, abs=1e-9)
    # Priming epoch (600 examples) trains on everything: keep rate 1, then selection (< 1).
    keep = curve("keep_rate")
    assert keep[200] == 1.0 and keep[600] == 1.0
    assert keep[1200] < 0.8
    assert run.data.metrics["total_examples_backpropped"] == \
        curve("examples_backpropped")[1200]

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "per_example.csv.gz", "error_vs_time.png"} <= artifacts
    local = client.download_artifacts(run.info.run_id, "config.json")
    config = json.loads(open(local).read())
    assert config["beta"] == 2.0 and config["label_noise"] == 0.1
    table = pd.read_csv(client.download_artifacts(run.info.run_id, "per_example.csv.gz"))
    assert list(table.columns) == ["id", "label", "clean_label", "is_noisy", "times_scored",
                                   "times_backpropped", "last_loss"]
    assert len(table) == 600 and table["is_noisy"].sum() == 60
    assert table["times_backpropped"].sum() == run.data.metrics["total_examples_backpropped"]
    assert table["times_scored"].sum() == run.data.metrics["total_selection_forwards"]
    assert (table.loc[~table.is_noisy, "label"] == table.loc[~table.is_noisy, "clean_label"]).all()
    # The dataset is recorded as a run input.
    inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
    assert inputs and inputs[0].dataset.name == "mnist1d"
    assert "final test error" in capsys.readouterr().out


def test_kath18_logs_tau(tiny, tracking_uri):
    assert main(["train", *cli_args(tiny, method="kath18"), "--tracking-uri", tracking_uri,
                 "--no-progress"]) == 0
    run = all_runs(tracking_uri)[0]
    assert {"kath_tau", "kath_is_on"} <= set(run.data.metrics)
    assert run.data.metrics["kath_tau"] >= 0


def test_diverged_run_ends_failed_with_reason(tiny, tracking_uri, capsys):
    code = main(["train", *cli_args(tiny, method="sb", lr=1e9), "--tracking-uri",
                 tracking_uri, "--no-progress"])
    assert code == 1
    run = all_runs(tracking_uri)[0]
    assert run.info.status == "FAILED"
    assert run.data.tags["sbbench.failure_kind"] == "diverged"
    assert "non-finite" in run.data.tags["sbbench.failure_reason"]
    assert "diverged" in capsys.readouterr().err


def test_crash_ends_failed_not_running(tiny, tracking_uri, monkeypatch):
    from sbbench.train import loop

    def explode(self, batch):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(loop.TrainingLoop, "train_step", explode)
    with pytest.raises(RuntimeError, match="simulated crash"):
        main(["train", *cli_args(tiny), "--tracking-uri", tracking_uri, "--no-progress"])
    run = all_runs(tracking_uri)[0]
    assert run.info.status == "FAILED"
    assert run.data.tags["sbbench.failure_kind"] == "error"
    assert "simulated crash" in run.data.tags["sbbench.failure_reason"]


def test_ctrl_c_ends_killed(tiny, tracking_uri, monkeypatch):
    from sbbench.train import loop

    def interrupt(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop.TrainingLoop, "evaluate", interrupt)
    assert main(["train", *cli_args(tiny), "--tracking-uri", tracking_uri,
                 "--no-progress"]) == 130
    run = all_runs(tracking_uri)[0]
    assert run.info.status == "KILLED"
    assert run.data.tags["sbbench.failure_kind"] == "interrupted"


def test_a_crashed_run_keeps_the_evaluations_before_the_crash(tiny, tracking_uri, monkeypatch):
    """Evaluations are buffered between writes; the failure path still writes them all."""
    from sbbench.train import loop

    real_step, steps = loop.TrainingLoop.train_step, []

    def crash_late(self, batch):
        steps.append(1)
        if len(steps) > 15:  # 4 steps per evaluation (200 examples at batch 50): the 16th
            raise RuntimeError("simulated crash")  # step crashes before the 4th evaluation
        real_step(self, batch)

    monkeypatch.setattr(loop.TrainingLoop, "train_step", crash_late)
    with pytest.raises(RuntimeError):
        main(["train", *cli_args(tiny, method="traditional"), "--tracking-uri", tracking_uri,
              "--no-progress"])
    run = all_runs(tracking_uri)[0]
    history = MlflowClient(tracking_uri=tracking_uri).get_metric_history(run.info.run_id,
                                                                         "val_error")
    assert run.info.status == "FAILED"
    assert [m.step for m in history] == [200, 400, 600]  # every evaluation before the crash


def test_an_explicit_tracking_uri_does_not_become_the_process_default(tiny, tracking_uri,
                                                                      monkeypatch):
    """A run logged to a store named on the command line leaves MLFLOW_TRACKING_URI alone
    (mlflow.set_tracking_uri would set it, and the next run would follow it silently)."""
    import os

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["train", *cli_args(tiny), "--tracking-uri", tracking_uri,
                 "--no-progress"]) == 0
    assert "MLFLOW_TRACKING_URI" not in os.environ
