"""optuna-dashboard reads a sweep's study straight from its journal file (the README's command)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna

from sbbench.sweep.storage import open_storage

STARTUP_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def test_optuna_dashboard_lists_a_sweeps_study_from_its_journal(tmp_path):
    journal = tmp_path / ".sbbench" / "optuna" / "smoke.journal"
    study = optuna.create_study(study_name="smoke", storage=open_storage(f"journal:{journal}"),
                                direction="minimize")
    study.enqueue_trial({"method": "sb", "seed": 0}, user_attrs={"sbbench_point": "{}"})
    trial = study.ask()
    trial.suggest_categorical("method", ["sb"])
    study.tell(trial, 12.5)

    executable = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent))
    assert executable, "optuna-dashboard is part of the test extra"
    port = _free_port()
    server = subprocess.Popen([executable, str(journal), "--host", "127.0.0.1", "--port",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        api = f"http://127.0.0.1:{port}/api/studies"
        while True:
            try:
                studies = _get_json(api)["study_summaries"]
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "optuna-dashboard did not answer"
                time.sleep(0.3)
        (listed,) = studies
        detail = _get_json(f"{api}/{listed['study_id']}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert listed["study_name"] == "smoke"
    assert [t["values"] for t in detail["trials"]] == [[12.5]]
