"""`--workers auto` (the default of `sbbench sweep` and of `mlflow run . -e sweep`): one worker
per usable CPU core, each trial on one thread, never more workers than trials."""

from __future__ import annotations

import argparse
import os

import optuna
import pytest

from sbbench.cli import main
from sbbench.commands.sweep import AUTO, _workers, auto_workers, closing_line
from sbbench.sweep.study import load_study
from tests.conftest import all_runs
from tests.sweep.tiny_study import sweep_args, write_study


def test_the_workers_flag_takes_auto_or_a_whole_number():
    assert _workers("auto") == AUTO and _workers("AUTO") == AUTO
    assert _workers("2") == 2 and _workers("2.0") == 2   # mlflow run passes floats as "2.0"
    for bad in ("0", "-1", "1.5", "many"):
        with pytest.raises(argparse.ArgumentTypeError, match="auto nor a whole number"):
            _workers(bad)


def test_auto_is_one_worker_per_usable_core_capped_by_the_trials(tmp_path, data_dir,
                                                                  monkeypatch):
    spec = load_study(write_study(tmp_path, data_dir))   # device: cpu, 4 trials
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5})
    assert auto_workers(spec, spec.total_trials) == ([], 4)
    assert auto_workers(spec, 1) == ([], 1)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})   # taskset -c 3
    assert auto_workers(spec, spec.total_trials) == ([], 1)
    pinned = load_study(write_study(tmp_path, data_dir, name="gpu1",
                                    workload={"dataset": "mnist1d", "device": "cuda:1"}))
    assert auto_workers(pinned, 8) == ([], 1)   # one GPU named by the study: one worker


def test_auto_on_two_cores_runs_two_trials_at_once_on_one_thread_each(
        tmp_path, data_dir, tracking_uri, capsys, monkeypatch):
    # Two usable cores as auto sees them (the trials overlap in time even on one real core).
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    study = write_study(tmp_path, data_dir, grid={"method": ["traditional"]}, seeds=[0, 1])
    storage = tmp_path / "j.journal"
    assert main(sweep_args(study, tracking_uri, storage, "--workers", "auto")) == 0
    assert "x 2 workers" in capsys.readouterr().out
    runs = [r for r in all_runs(tracking_uri) if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == 2 and {r.data.params["num_threads"] for r in runs} == {"1"}
    trials = optuna.load_study(study_name="tiny", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(storage)))).trials
    first, second = sorted((t.user_attrs["timing"] for t in trials),
                           key=lambda timing: timing["entered_at"])
    assert second["entered_at"] < first["ended_at"]   # the two trials overlapped


def test_the_closing_line_divides_the_training_clock_by_the_workers():
    class Result:
        study_name, parent_run_id, storage_url = "s", "p", "journal:x"
        counts, trials_run, train_clock_s = {"COMPLETE": 4}, 4, 120.0
    assert "= 50% of the wall time x 2 workers" in closing_line(Result(), 120.0, 2)
    alone = closing_line(Result(), 120.0, 1)
    assert "= 100% of the wall time" in alone and "workers" not in alone
