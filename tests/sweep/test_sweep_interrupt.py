"""Ctrl-C on a running sweep: children and parent end KILLED, the study stays consistent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna

from sbbench.sweep.storage import open_storage
from tests.conftest import all_runs
from tests.sweep.tiny_study import longer_workload, sweep_args, write_study


def test_ctrl_c_kills_children_and_parent_and_leaves_nothing_running(tmp_path, data_dir,
                                                                    tracking_uri):
    # Three waves of trials on two workers: the sweep cannot finish in the second between
    # seeing a trial start and pressing Ctrl-C.
    study_file = write_study(tmp_path, data_dir, seeds=[0, 1, 2],
                             workload=longer_workload(data_dir))
    storage = tmp_path / "tiny.journal"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    # Its own process group, like a terminal's foreground job: Ctrl-C reaches every process.
    sweep = subprocess.Popen([sys.executable, "-m", "sbbench.cli",
                              *sweep_args(study_file, tracking_uri, storage, "--workers", "2")],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    deadline = time.monotonic() + 120
    running = []
    # Poll the journal, not MLflow: opening the sqlite store from here while the sweep creates
    # it would race on the schema migration.
    while time.monotonic() < deadline and not running:
        time.sleep(0.3)
        if not storage.exists():
            continue
        try:
            study = optuna.load_study(study_name="tiny",
                                      storage=open_storage(f"journal:{storage}"))
        except KeyError:
            continue
        running = [t for t in study.get_trials() if t.state.name == "RUNNING"
                   and "mlflow_run_id" in t.user_attrs]
    assert running, "no trial started: " + (sweep.stderr.read() if sweep.poll() else "")
    time.sleep(1.0)
    os.killpg(sweep.pid, signal.SIGINT)
    _, stderr = sweep.communicate(timeout=120)
    assert sweep.returncode == 130, stderr[-2000:]
    runs = all_runs(tracking_uri)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    parent = next(r for r in runs if r.data.tags.get("sbbench.kind") == "sweep")
    assert parent.info.status == "KILLED"
    killed = [r for r in runs if r.info.status == "KILLED" and r is not parent]
    assert killed and all(r.data.tags.get("sbbench.failure_kind") == "interrupted"
                          for r in killed), [
        (r.info.status, {k: v for k, v in r.data.tags.items() if k.startswith("sbbench.f")})
        for r in killed]
    study = optuna.load_study(study_name="tiny", storage=open_storage(f"journal:{storage}"))
    assert not [t for t in study.get_trials() if t.state.name in ("RUNNING", "WAITING")]
    interrupted = [t for t in study.get_trials() if t.user_attrs.get("interrupted")]
    assert interrupted
