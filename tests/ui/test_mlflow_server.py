"""What a user sees through a real `mlflow server` after a sweep: the experiment opens as model
training, the parent is named after the study and describes the verdict, the analysis run's
headline speedups are metrics, and every trial is a child of the parent."""

from __future__ import annotations

import json
import math
import urllib.request

import pytest
from mlflow import MlflowClient

# The session's tiny sweep (a server start and four trials) lands on the first test.
pytestmark = pytest.mark.timeout(1200)

KIND = "mlflow.experimentKind"
NOTE = "mlflow.note.content"
PARENT = "mlflow.parentRunId"


def _client(served) -> MlflowClient:
    return MlflowClient(tracking_uri=served.url)


def test_the_server_answers_over_rest(served_sweep):
    # The same store through the server's own REST endpoint (no MLflow client in between).
    url = (f"{served_sweep.url}/api/2.0/mlflow/experiments/get-by-name?experiment_name="
           f"{served_sweep.experiment}")
    with urllib.request.urlopen(url, timeout=10) as response:
        experiment = json.load(response)["experiment"]
    tags = {t["key"]: t["value"] for t in experiment.get("tags", [])}
    assert tags[KIND] == "custom_model_development"


def test_sweep_seen_through_the_server(served_sweep):
    client = _client(served_sweep)
    experiment = client.get_experiment_by_name(served_sweep.experiment)
    assert experiment.tags[KIND] == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    (parent,) = [r for r in runs if PARENT not in r.data.tags]
    assert parent.info.run_name == f"sweep {served_sweep.study}"
    assert parent.data.tags["sbbench.kind"] == "sweep"
    assert parent.info.status == "FINISHED"
    note = parent.data.tags[NOTE]
    assert note.startswith(f"## sbbench sweep `{served_sweep.study}`")
    assert "| method | vs | target |" in note and "validation error <=" in note

    children = [r for r in runs if r.data.tags.get(PARENT) == parent.info.run_id]
    assert len(children) == len(runs) - 1  # nothing outside the parent
    (analysis,) = [r for r in children if r.data.tags.get("sbbench.kind") == "analysis"]
    trials = [r for r in children if r is not analysis]
    assert len(trials) == 4 and all(r.info.status == "FINISHED" for r in trials)
    assert {r.data.tags["sbbench.method"] for r in trials} == {"traditional", "sb"}
    assert {r.data.tags["sbbench.study"] for r in trials} == {served_sweep.study}
    # The note links to the analysis run in the UI.
    assert f"#/experiments/{experiment.experiment_id}/runs/{analysis.info.run_id}" in note

    # Headline speedups: SB against Traditional, with its bootstrap interval, as metrics.
    headline = {k: v for k, v in analysis.data.metrics.items() if k.startswith("speedup.")}
    key = "speedup.sb_vs_traditional.t0"
    assert key in headline, sorted(headline)
    assert all(math.isfinite(v) for v in headline.values())
    if f"{key}.ci_low" in headline:
        assert headline[f"{key}.ci_low"] <= headline[key] <= headline[f"{key}.ci_high"]
    # The report is downloadable through the server.
    artifacts = {a.path for a in client.list_artifacts(analysis.info.run_id)}
    assert {"report.md", "summary.json"} <= artifacts, artifacts
