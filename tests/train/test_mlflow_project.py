"""`mlflow run . -e train` resumes the run MLflow created instead of making a second one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import all_runs

REPO = Path(__file__).resolve().parents[2]


def test_mlflow_run_train_entry_point_resumes_project_run(tiny, tracking_uri, tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri,
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MLFLOW_RUN_ID", None)
    command = [str(Path(sys.executable).parent / "mlflow"), "run", str(REPO), "-e", "train",
               "--env-manager", "local", "--experiment-name", "project-test",
               "-P", "method=stale_sb", "-P", "staleness=3", "-P", "epochs=2",
               "-P", "device=cpu"]
    for key in ("train_size", "val_size", "test_size", "eval_every_examples", "batch_size",
                "data_dir", "num_threads"):
        command += ["-P", f"{key}={tiny[key]}"]
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = all_runs(tracking_uri, "project-test")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["method"] == "stale_sb"
    assert "final_test_error" in run.data.metrics
    assert run.data.tags["sbbench.method"] == "stale_sb"
