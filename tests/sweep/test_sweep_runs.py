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
from tests.sweep.tiny_study import longer_workload, sweep_args, write_study


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
    # A child run a dead worker could not name on its trial (it died between creating the run
    # and recording `mlflow_run_id`) is found by its tags on the next start and ended KILLED.
    client = MlflowClient(tracking_uri=tracking_uri)
    orphan = client.create_run(parent.info.experiment_id, tags={
        "mlflow.parentRunId": parent.info.run_id, "sbbench.study": "tiny",
        "sbbench.trial": "0"}).info.run_id
    # Running it again finds nothing to do: no new trial, no new run.
    assert main(sweep_args(study_file, tracking_uri, storage, "--workers", "2")) == 0
    assert len(load(storage).get_trials()) == 4 and len(all_runs(tracking_uri)) == 6
    orphan_run = client.get_run(orphan)
    assert orphan_run.info.status == "KILLED"
    assert orphan_run.data.tags["sbbench.failure_kind"] == "interrupted"
    assert all(client.get_run(t.user_attrs["mlflow_run_id"]).info.status == "FINISHED"
               for t in trials)


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
    # Each trial's log says what ran, for how long and how it ended.
    logs = {t.state.name: (tmp_path / ".sbbench" / "logs" / "tiny" /
                           f"trial-{t.number}.log").read_text() for t in trials}
    assert "traditional-mnist1d-s0" in logs["COMPLETE"] and "training clock" in logs["COMPLETE"]
    assert "COMPLETE, objective" in logs["COMPLETE"]
    assert '"lr": 1000000000.0' in logs["FAIL"] and "DIVERGED" in logs["FAIL"]


def test_kill_a_worker_then_resume(tmp_path, data_dir, tracking_uri):
    # Longer trials so there is time to kill one mid-run.
    study_file = write_study(tmp_path, data_dir, seeds=[0, 1],
                             workload=longer_workload(data_dir))
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
    # The trial records the process that runs it (a child of the sweep's fork server): kill -9.
    worker_pid = victim.user_attrs["worker_pid"]
    assert worker_pid != coordinator.pid
    os.kill(worker_pid, signal.SIGKILL)
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
    assert len(points) == len(set(points)) == 4  # every point once, no duplicates
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


def test_target_factor_from_the_traditional_trials(tmp_path, data_dir, tracking_uri):
    """target_factor: the target is fixed once from the Traditional trials' median final
    validation error; trials that finish before it is known wait for it, across invocations,
    and every trial's value is time to that one target."""
    study_file = write_study(tmp_path, data_dir, seeds=[0, 1], grid={"method": ["sb",
                                                                              "traditional"]},
                             objective={"kind": "time_to_target", "target_factor": 1.2})
    storage = tmp_path / "tiny.journal"
    # A capped first invocation runs only the first point (sb, seed 0): no target yet, so its
    # trial waits (its run is FINISHED).
    assert main(sweep_args(study_file, tracking_uri, storage, "--n-trials", "1")) == 0
    study = load(storage)
    (first,) = study.get_trials()
    assert json.loads(first.user_attrs["sbbench_point"])["method"] == "sb"
    assert first.state.name == "RUNNING" and first.user_attrs["awaiting_target"]
    client = MlflowClient(tracking_uri=tracking_uri)
    assert client.get_run(first.user_attrs["mlflow_run_id"]).info.status == "FINISHED"
    assert not [k for k in study.user_attrs if k.startswith("target_error:")]
    # The same command without the cap: the waiting trial is not re-run, but told.
    assert main(sweep_args(study_file, tracking_uri, storage, "--workers", "2")) == 0
    study = load(storage)
    trials = study.get_trials()
    assert len(trials) == 4 and all(t.state.name == "COMPLETE" for t in trials)
    assert not any(t.user_attrs["awaiting_target"] for t in trials)
    (key,) = [k for k in study.user_attrs if k.startswith("target_error:")]
    target = study.user_attrs[key]
    finals = sorted(t.user_attrs["final_val_error"] for t in trials
                    if json.loads(t.user_attrs["sbbench_point"])["method"] == "traditional")
    assert abs(target - 1.2 * (finals[0] + finals[1]) / 2) < 1e-12
    for trial in trials:
        assert trial.user_attrs["target_error"] == target
        assert isinstance(trial.user_attrs["censored"], bool)
    runs = all_runs(tracking_uri)
    assert len([r for r in runs if "sbbench.trial" in r.data.tags]) == 4  # none re-ran
    assert not [r for r in runs if r.info.status == "RUNNING"]
    # Fixed once: a later invocation (nothing to do) keeps it.
    assert main(sweep_args(study_file, tracking_uri, storage)) == 0
    assert load(storage).user_attrs[key] == target


def test_stale_waiting_trial_does_not_hijack_or_block_a_point(tmp_path, data_dir, tracking_uri):
    """A coordinator killed between enqueue_trial and ask leaves a WAITING trial: the next start
    fails it (interrupted) and runs its point once, as a new trial."""
    study_file = write_study(tmp_path, data_dir, grid={"method": ["traditional"]}, seeds=[0])
    storage = tmp_path / "tiny.journal"
    stale = optuna.create_study(study_name="tiny", storage=open_storage(f"journal:{storage}"))
    point = {"method": "traditional", "seed": 0}
    stale.enqueue_trial(point, user_attrs={"sbbench_point": json.dumps(point, sort_keys=True)})
    assert main(sweep_args(study_file, tracking_uri, storage)) == 0
    trials = load(storage).get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[0].user_attrs["interrupted"] and "mlflow_run_id" not in trials[0].user_attrs
    assert trials[1].user_attrs["sbbench_point"] == trials[0].user_attrs["sbbench_point"]
    assert len(all_runs(tracking_uri)) == 2  # the parent and one child


def test_under_a_project_run_a_stale_earlier_parent_is_ended(tmp_path, data_dir, tracking_uri,
                                                             monkeypatch):
    """As under `mlflow run` (MLFLOW_RUN_ID set): the project run is the parent, and the parent
    an earlier, killed `mlflow run` left RUNNING is ended KILLED on resume."""
    study_file = write_study(tmp_path, data_dir, grid={"method": ["traditional"]}, seeds=[0])
    storage = tmp_path / "tiny.journal"
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_id = client.create_experiment("project")
    stale = client.create_run(experiment_id, tags={"sbbench.kind": "sweep",
                                                   "sbbench.study": "tiny"}).info.run_id
    project = client.create_run(experiment_id).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", project)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment_id)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    assert main(sweep_args(study_file, tracking_uri, storage)) == 0
    assert client.get_run(stale).info.status == "KILLED"
    assert client.get_run(project).info.status == "FINISHED"
    assert client.get_run(project).data.tags["sbbench.kind"] == "sweep"
    runs = all_runs(tracking_uri, "project")
    (child,) = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == project]
    assert child.info.status == "FINISHED" and len(runs) == 3
    assert all_runs(tracking_uri) == []  # nothing went to the default experiment


def test_tpe_study_with_pruning_and_conditional_ranges(tmp_path, data_dir, tracking_uri):
    """A tuning study: n_trials trials, ranges asked only of the methods they mean something
    for (beta is not asked of traditional), each trial a child run with its sampled values."""
    study_file = write_study(
        tmp_path, data_dir, sampler="tpe", n_trials=4, pruning=True, seeds=[100, 101],
        grid={"method": ["traditional", "sb"]},
        ranges={"lr": {"low": 0.01, "high": 0.2, "log": True}, "beta": {"low": 1, "high": 3}})
    storage = tmp_path / "tiny.journal"
    assert main(sweep_args(study_file, tracking_uri, storage, "--workers", "2")) == 0
    trials = load(storage).get_trials()
    assert len(trials) == 4 and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    client = MlflowClient(tracking_uri=tracking_uri)
    for trial in trials:
        assert 0.01 <= trial.params["lr"] <= 0.2
        assert ("beta" in trial.params) == (trial.params["method"] == "sb")
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert float(run.data.params["lr"]) == trial.params["lr"]
        assert run.data.params["seed"] == str([100, 101][trial.number % 2])
        if "beta" in trial.params:
            assert float(run.data.params["beta"]) == trial.params["beta"]
    # The study's own count is reached: running it again adds nothing.
    assert main(sweep_args(study_file, tracking_uri, storage)) == 0
    assert len(load(storage).get_trials()) == 4
