"""Trials are forked from a warm fork server: a process of their own that starts with the
training stack already imported, in the launching process's directory and environment."""

from __future__ import annotations

import json
import os
import sys

from sbbench.sweep import trial_process


def _report_state(path: str) -> None:
    """Runs in a child of the fork server: what did it start with?"""
    with open(path, "w") as out:
        json.dump({"pid": os.getpid(), "parent": os.getppid(),
                   "preloaded": [m for m in ("torch", "mlflow", "optuna", "sbbench.train.run",
                                             "sbbench.sweep.worker", "matplotlib.pyplot")
                                 if m in sys.modules]}, out)


def test_a_child_of_the_server_starts_with_the_training_stack_imported(tmp_path):
    trial_process.start_server()
    report = tmp_path / "state.json"
    child = trial_process._CONTEXT.Process(target=_report_state, args=(str(report),))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == 0
    state = json.loads(report.read_text())
    assert state["pid"] != os.getpid()
    assert state["parent"] != os.getpid()  # forked by the server, not by this process
    assert state["preloaded"] == ["torch", "mlflow", "optuna", "sbbench.train.run",
                                  "sbbench.sweep.worker", "matplotlib.pyplot"]


def test_a_trial_that_cannot_start_fails_with_its_traceback_in_its_log(tmp_path):
    log = tmp_path / "trial.log"
    # A job the worker cannot parse: the trial process exits 1, and its log says why.
    process = trial_process.TrialProcess(json.dumps({"not": "a job"}), str(log), os.environ)
    assert process.wait(timeout=120) == 1
    assert process.pid != os.getpid()
    assert "TypeError" in log.read_text()
