"""`mlflow run . -e sweep` attaches the sweep to the project run (no second parent)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mlflow import MlflowClient

from tests.conftest import all_runs
from tests.sweep.tiny_study import write_study

REPO = Path(__file__).resolve().parents[2]


def test_mlflow_run_sweep_entry_point(tmp_path, data_dir, tracking_uri):
    study = write_study(tmp_path, data_dir, grid={"method": ["traditional"]}, seeds=[0, 1])
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri,
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    command = [str(Path(sys.executable).parent / "mlflow"), "run", str(REPO), "-e", "sweep",
               "--env-manager", "local", "--experiment-name", "sweep-project",
               "-P", f"study={study}", "-P", f"storage=journal:{tmp_path / 'j.journal'}"]
    # workers left at the project's default (auto), as the README's main command does
    result = subprocess.run(command, env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = all_runs(tracking_uri, "sweep-project")
    project_runs = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(project_runs) == 1  # the run `mlflow run` created, used as the parent
    parent = project_runs[0]
    assert parent.data.tags["sbbench.kind"] == "sweep"
    assert parent.info.status == "FINISHED"
    # Named after the study (not MLflow's random name), described with the verdict, and in an
    # experiment the MLflow UI opens as model training.
    assert parent.info.run_name == "sweep tiny"
    note = parent.data.tags["mlflow.note.content"]
    assert note.startswith("## sbbench sweep `tiny`") and "[analysis run](#/experiments/" in note
    assert "validation error <=" in note
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("sweep-project")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
                and r.data.tags.get("sbbench.kind") != "analysis"]
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
