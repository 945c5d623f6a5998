"""Sweeps end to end: worker processes, trials <-> child runs, failures, resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
from mlflow import MlflowClient

from sbbench.cli import main
from sbbench.sweep.storage import open_storage
from tests.conftest import all_runs
from tests.sweep.tiny_study import sweep_args, write_study


def load(storage: Path, name: str = "tiny"):
    return optuna.load_study(study_name=name, storage=open_storage(f"journal:{storage}"))


def children_of(runs, parent_id):
    return [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_id]


def test_grid_with_two_workers_runs_every_point_once(tmp_path, data_dir, tracking_uri):
    study_file = write_study(tmp_path, data_dir)
    storage = tmp_path / "tiny.journal"
    assert main(sweep_args(study_file, tracking_uri, storage, "--workers", "2")) == 0
    study = load(storage)
    trials = study.get_trials()
    points = sorted(t.user_attrs["sbbench_point"] for t in trials)
    # traditional x 2 seeds + sb x beta 2 x 2 seeds; beta dropped for traditional.
    assert len(points) == 4 and len(set(points)) == 4
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert {json.loads(p).get("beta") for p in points} == {None, 2}
    runs = all_runs(tracking_uri)
    parents = [r for r in runs if r.data.tags.get("sbbench.kind") == "sweep"]
    assert len(parents) == 1
    parent = parents[0]
    children = children_of(runs, parent.info.run_id)
    assert len(children) == 4 and len(runs) == 5
    by_id = {r.info.run_id: r for r in children}
    for trial in trials:
        child = by_id[trial.user_attrs["mlflow_run_id"]]
        assert child.data.tags["sbbench.trial"] == str(trial.number)
        assert child.data.tags["sbbench.study"] == "tiny"
        assert child.info.status == "FINISHED"
        assert child.data.params["seed"] == str(json.loads(trial.user_attrs["sbbench_point"])
                                                ["seed"])
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["trials_complete"] == 4
    artifacts = [a.path for a in MlflowClient(tracking_uri=tracking_uri).list_artifacts(
        parent.info.run_id, "study")]
    assert artifacts == ["study/tiny.yaml"]
    # Running it again finds nothing to do: no new trial, no new run.
    assert main(sweep_args(study_file, tracking_uri, storage, "--workers", "2")) == 0
    assert len(load(storage).get_trials()) == 4 and len(all_runs(tracking_uri)) == 5


def test_failing_trial_does_not_stop_the_study(tmp_path, data_dir, tracking_uri):
    study_file = write_study(tmp_path, data_dir, grid={"method": ["traditional"],
                                                       "lr": [0.05, 1e9]}, seeds=[0])
    storage = tmp_path / "tiny.journal"
    assert main(sweep_args(study_file, tracking_uri, storage)) == 0
    trials = load(storage).get_trials()
    states = sorted(t.state.name for t in trials)
    assert states == ["COMPLETE", "FAIL"]
    failed = next(t for t in trials if t.state.name == "FAIL")
    assert failed.user_attrs["failure_kind"] == "diverged"
    run = MlflowClient(tracking_uri=tracking_uri).get_run(failed.user_attrs["mlflow_run_id"])
    assert run.info.status == "FAILED"
    assert run.data.tags["sbbench.failure_kind"] == "diverged"


def test_kill_a_worker_then_resume(tmp_path, data_dir, tracking_uri):
    # Longer trials so there is time to kill one mid-run.
    study_file = write_study(tmp_path, data_dir, seeds=[0, 1, 2],
                             workload={"dataset": "mnist1d", "train_size": 3000,
                                       "val_size": 200, "test_size": 200, "epochs": 3,
                                       "eval_every_examples": 1000, "batch_size": 50,
                                       "device": "cpu", "data_dir": data_dir})
    storage = tmp_path / "tiny.journal"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    coordinator = subprocess.Popen(
        [sys.executable, "-m", "sbbench.cli", *sweep_args(study_file, tracking_uri, storage)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = MlflowClient(tracking_uri=tracking_uri)
    victim = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and victim is None:
        time.sleep(0.5)
        try:
            study = load(storage)
        except Exception:
            continue
        done = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
        running = [t for t in study.get_trials() if t.state.name == "RUNNING"
                   and "mlflow_run_id" in t.user_attrs]
        if done and running:
            victim = running[0]
    assert victim is not None, "no trial was ever running after a completed one"
    # The worker is the coordinator's child running `sbbench.sweep.worker`: kill -9 it.
    workers = subprocess.run(["pgrep", "-P", str(coordinator.pid), "-f", "sbbench.sweep.worker"],
                             capture_output=True, text=True).stdout.split()
    assert workers
    os.kill(int(workers[0]), signal.SIGKILL)
    coordinator.send_signal(signal.SIGKILL)  # the whole sweep dies too (a crash)
    coordinator.wait(timeout=60)
    assert client.get_run(victim.user_attrs["mlflow_run_id"]).info.status == "RUNNING"
    completed_before = {t.user_attrs["sbbench_point"] for t in load(storage).get_trials()
                        if t.state.name == "COMPLETE"}
    # Resume: the same command.
    assert main(sweep_args(study_file, tracking_uri, storage)) == 0
    trials = load(storage).get_trials()
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    points = [t.user_attrs["sbbench_point"] for t in complete]
    assert len(points) == len(set(points)) == 6  # every point once, no duplicates
    assert victim.user_attrs["sbbench_point"] in points  # the interrupted one re-ran
    resumed_numbers = {t.number for t in complete if t.user_attrs["sbbench_point"]
                       in completed_before}
    assert all(n < victim.number + 2 for n in resumed_numbers)  # finished ones did not re-run
    assert not [t for t in trials if t.state.name == "RUNNING"]
    runs = all_runs(tracking_uri)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    killed = client.get_run(victim.user_attrs["mlflow_run_id"])
    assert killed.info.status == "KILLED"
    # One parent across both invocations.
    assert len([r for r in runs if r.data.tags.get("sbbench.kind") == "sweep"]) == 1
