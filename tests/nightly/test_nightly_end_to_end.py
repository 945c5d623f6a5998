"""One real tiny night (a second or two of training per run) against a planted history: the
whole path through the sweep coordinator (twice under one parent: the night and its
confirmation), the analysis, the gate and the records."""

from __future__ import annotations

import pytest
import yaml

from sbbench.cli import main
from sbbench.nightly import history as H
from sbbench.nightly.night import identity_for
from sbbench.nightly.suite import load_suite


@pytest.mark.slow
def test_a_tiny_real_night_against_a_planted_history_confirms_and_names_the_regression(
        store, tiny, tmp_path, capsys, monkeypatch):
    suite_path = tmp_path / "tiny_nightly.yaml"
    suite_path.write_text(yaml.safe_dump({
        "name": "tiny_nightly", "sampler": "grid",
        "workload": {**tiny, "epochs": 2}, "fixed": {"prime_epochs": 1, "lr": 0.05},
        "grid": {"method": ["traditional", "sb"], "beta": [1]},
        "seeds": [0], "objective": {"kind": "time_to_target", "target_factor": 1.4}}))
    identity = identity_for(load_suite(suite_path))   # this machine's real fingerprint
    # Five earlier nights in which SB processed 10 million examples per second.
    for day in range(5):
        store.write_night({"throughput/sb": [1e7 * (1 + 0.01 * day)]}, 5 - day,
                          identity=identity)
    # While the sweep coordinator runs the trials under the night's run, the night stays a
    # night (sbbench.kind=nightly), never a sweep.
    from sbbench.sweep.coordinator import Coordinator

    kinds = []
    sweep = Coordinator._sweep

    def spying_sweep(self):
        kinds.append(store.client.get_run(self.context.parent_run_id).data.tags.get(
            H.TAG_KIND))
        return sweep(self)

    monkeypatch.setattr(Coordinator, "_sweep", spying_sweep)
    code = main(["nightly", "--suite", str(suite_path), "--tracking-uri", store.uri,
                 "--out", str(tmp_path / "out"), "--no-progress",
                 # 600 examples: the loss window is too short for the exact keep rate
                 "--keep-rate-tolerance", "0.3"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert kinds == ["nightly", "nightly"]   # the night, then its confirmation
    assert "REGRESSION throughput/sb" in out and "confirmed" in out
    client = store.client
    nights = H.find_nights(client, [store.experiment_id], "tiny_nightly",
                           identity.fingerprint)
    night = nights[-1]
    assert len(nights) == 6 and night.verdict == H.VERDICT_REGRESSION
    assert night.status == "FINISHED" and night.tags[H.TAG_KIND] == "nightly"
    assert night.tags[H.TAG_REGRESSIONS] == "throughput/sb"
    assert "sbbench.torch_version" in night.tags and "sbbench.git_commit" in night.tags
    children = client.search_runs([store.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{night.run_id}'")
    # the night's two runs and the confirmation's two (SB and its Traditional reference)
    assert len(children) == 4 and all(c.info.status == "FINISHED" for c in children)
    studies = {c.data.tags["sbbench.study"] for c in children}
    assert len(studies) == 2 and any(s.endswith("-confirm") for s in studies)
    assert {"throughput/sb", "time_to_target_s/sb", "speedup/sb", "efficiency/sb",
            "final_test_error/traditional", "nightly_exit_code"} <= set(night.metrics)
    artifacts = {a.path for a in client.list_artifacts(night.run_id)}
    assert {"nightly.md", "nightly.json", "figures"} <= artifacts
