"""`mlflow run . -e nightly --env-manager local --experiment-name sbbench-nightly`: the project
run is the night (tagged nightly, named as one), its trials are children, and the entry point's
parameters (and an undeclared one) reach `sbbench nightly`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from sbbench.nightly import history as H

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_mlflow_run_nightly_entry_point(tmp_path, tiny, tracking_uri):
    suite = tmp_path / "tiny_nightly.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "tiny_nightly", "sampler": "grid", "workload": {**tiny, "epochs": 2},
        "fixed": {"prime_epochs": 1, "lr": 0.05},
        "grid": {"method": ["traditional", "sb"], "beta": [1]}, "seeds": [0],
        "objective": {"kind": "time_to_target", "target_factor": 1.4}}))
    out = tmp_path / "out"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri,
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    command = [str(Path(sys.executable).parent / "mlflow"), "run", str(REPO), "-e", "nightly",
               "--env-manager", "local", "--experiment-name", "sbbench-nightly",
               "-P", f"suite={suite}", "-P", "tolerance=0.07", "-P", "level=0.995",
               "-P", f"out={out}",
               # undeclared: passed through as --keep_rate_tolerance (600 examples are too few
               # for the exact keep rate)
               "-P", "keep_rate_tolerance=0.3"]
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("sbbench-nightly")
    runs = client.search_runs([experiment.experiment_id])
    nights = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(nights) == 1   # the run `mlflow run` created is the night
    night = nights[0]
    assert night.info.status == "FINISHED"
    assert night.data.tags[H.TAG_KIND] == "nightly"
    assert night.data.tags[H.TAG_VERDICT] == H.VERDICT_BASELINE
    assert night.info.run_name.startswith("nightly-tiny_nightly-")
    assert night.data.params["tolerance"] == "0.07" and night.data.params["level"] == "0.995"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == night.info.run_id]
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    (report,) = out.glob("*/nightly.json")
    data = json.loads(report.read_text())
    assert data["exit_code"] == 0 and data["level"] == pytest.approx(0.995)
    assert data["run_id"] == night.info.run_id
    assert "7%" in data["gate_rule"]   # the tolerance reached the gate
