"""One real tiny night (a few seconds of training per run): the whole path through the sweep
coordinator, the analysis, the gate and the records."""

from __future__ import annotations

import pytest
import yaml

from sbbench.cli import main
from sbbench.nightly import history as H


@pytest.mark.slow
def test_a_tiny_real_night_is_a_tagged_baseline_with_its_trials_as_children(
        tracking_uri, tiny, tmp_path, capsys):
    from mlflow import MlflowClient

    suite = tmp_path / "tiny_nightly.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "tiny_nightly", "sampler": "grid",
        "workload": {**tiny, "epochs": 3}, "fixed": {"prime_epochs": 1, "lr": 0.05},
        "grid": {"method": ["traditional", "stale_sb"], "beta": [1], "staleness": [2]},
        "seeds": [0], "objective": {"kind": "time_to_target", "target_factor": 1.4}}))
    code = main(["nightly", "--suite", str(suite), "--tracking-uri", tracking_uri,
                 "--out", str(tmp_path / "out"), "--no-progress",
                 # 600 examples: the loss window is too short for the exact keep rate
                 "--keep-rate-tolerance", "0.2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "baseline" in out and "throughput/traditional" in out
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(H.DEFAULT_EXPERIMENT)
    nights = H.find_nights(client, [experiment.experiment_id], "tiny_nightly")
    assert len(nights) == 1
    night = nights[0]
    assert night.status == "FINISHED" and night.verdict == H.VERDICT_BASELINE
    assert night.tags[H.TAG_KIND] == "nightly" and night.tags["sbbench.fingerprint"]
    assert "sbbench.torch_version" in night.tags and "sbbench.git_commit" in night.tags
    children = client.search_runs([experiment.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{night.run_id}'")
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    assert {"throughput/stale_sb", "time_to_target_s/stale_sb", "speedup/stale_sb",
            "efficiency/stale_sb", "final_test_error/traditional"} <= set(night.metrics)
    artifacts = {a.path for a in client.list_artifacts(night.run_id)}
    assert {"nightly.md", "nightly.json", "figures"} <= artifacts
    out_dirs = list((tmp_path / "out").glob("nightly-tiny_nightly-*"))
    assert len(out_dirs) == 1 and (out_dirs[0] / "nightly.md").is_file()
