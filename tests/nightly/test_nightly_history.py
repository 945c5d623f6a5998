"""A night against fixture histories in a temporary MLflow store: verdicts, exit codes, accept,
new series, short history, confirmation, and what is recorded on the night's run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sbbench.nightly import history as H
from sbbench.nightly import metrics as M
from sbbench.nightly.night import evaluate_night, record_night
from sbbench.nightly.suite import Suite, text_digest

from tests.nightly.conftest import measurement_of, night_samples


def evaluate(store, samples, remeasure=None, identity=None, **options):
    identity = identity or store.identity()
    run_id = store.new_night(identity)
    report = evaluate_night(store.client, run_id, identity, measurement_of(samples),
                            store.options(**options), remeasure)
    return run_id, report


def test_thirty_percent_slower_traditional_throughput_is_a_named_regression(store):
    store.history(10)
    tonight = night_samples(np.random.default_rng(99), {"throughput/traditional": 1.3})
    calls = []

    def remeasure(methods):
        calls.append(methods)
        again = night_samples(np.random.default_rng(100), {"throughput/traditional": 1.3})
        return measurement_of(again)

    _, report = evaluate(store, tonight, remeasure)
    assert report["exit_code"] == 1 and report["verdict"] == H.VERDICT_REGRESSION
    assert calls == [{"traditional"}]
    assert len(report["regressions"]) == 1
    text = report["regressions"][0]
    assert text.startswith("throughput/traditional") and "worse" in text
    row = next(r for r in report["metrics"] if r["metric"] == "throughput/traditional")
    assert row["confirmation"] == "confirmed" and row["worsening"] == pytest.approx(0.23, abs=0.04)
    assert report["history"]["n"] == 10 and "prediction interval" in report["history"]["note"]


def test_a_night_within_the_noise_exits_0(store):
    store.history(10)
    _, report = evaluate(store, night_samples(np.random.default_rng(7)))
    assert report["exit_code"] == 0 and report["verdict"] == H.VERDICT_OK
    assert not report["regressions"]
    assert report["changes_since_last_good"] == []
    # the fixture's last night was 31 days ago
    assert any("schedule stopped" in w for w in report["warnings"])


def test_a_diverged_run_is_a_regression_named_as_such(store):
    store.history(10)
    measurement = measurement_of(night_samples(np.random.default_rng(7)))
    measurement.invariants.append(M.Invariant("finished/sb", False, "run abc (sb) diverged: "
                                              "non-finite training loss", kind="diverged"))
    identity = store.identity()
    run_id = store.new_night(identity)
    report = evaluate_night(store.client, run_id, identity, measurement, store.options())
    assert report["exit_code"] == 1
    assert any("finished/sb" in r and "DIVERGED" in r for r in report["regressions"])


def test_a_step_change_after_accept_raises_no_alarm(store):
    store.history(10)
    rng = np.random.default_rng(5)
    step = {"throughput/traditional": 1.3}
    # the first night after a real change regresses, and someone accepts it as the new normal
    regressed = store.write_night(night_samples(rng, step), 3, H.VERDICT_REGRESSION)
    _, without_accept = evaluate(store, night_samples(rng, step))
    assert without_accept["exit_code"] == 1   # still slower than the old normal
    H.accept(store.client, regressed)
    store.write_night(night_samples(rng, step), 2)
    store.write_night(night_samples(rng, step), 1)
    _, report = evaluate(store, night_samples(rng, step))
    assert report["exit_code"] == 0, report["regressions"]
    assert report["history"]["accepted_run_id"] == regressed
    assert report["history"]["n"] == 3 and "accepted" in report["history"]["note"]


def test_accept_refuses_a_run_that_is_not_a_measured_night(store):
    other = store.client.create_run(store.experiment_id).info.run_id
    with pytest.raises(H.NightlyInputError, match="not a nightly"):
        H.accept(store.client, other)
    crashed = store.write_night({}, 1, H.VERDICT_ERROR, status="FAILED")
    with pytest.raises(H.NightlyInputError, match="did not measure"):
        H.accept(store.client, crashed)


def test_the_first_night_is_the_baseline(store):
    _, report = evaluate(store, night_samples(np.random.default_rng(1)))
    assert report["exit_code"] == 0 and report["verdict"] == H.VERDICT_BASELINE
    assert "baseline" in report["headline"]
    assert all(r["verdict"] == "baseline" for r in report["metrics"])


def test_an_edited_suite_starts_a_new_series_without_comparison(store):
    store.history(10)
    text = store.suite.spec.text + "\n# one more epoch, say\n"
    edited = Suite(store.suite.spec, store.suite.path, text_digest(text))
    identity = store.identity(edited, fingerprint="fp-test-edited")
    slow = night_samples(np.random.default_rng(1), {"throughput/traditional": 1.5})
    _, report = evaluate(store, slow, identity=identity)
    assert report["exit_code"] == 0 and report["verdict"] == H.VERDICT_BASELINE
    assert any("suite file changed" in w and "new series" in w for w in report["warnings"])
    assert report["history"]["n"] == 0


def test_a_short_history_uses_the_short_history_rule(store):
    store.history(3)
    _, ok = evaluate(store, night_samples(np.random.default_rng(8)))
    assert ok["exit_code"] == 0
    assert any("short history" in w for w in ok["warnings"])
    slow = night_samples(np.random.default_rng(9), {"throughput/sb": 1.3})
    _, bad = evaluate(store, slow, lambda methods: measurement_of(slow))
    assert bad["exit_code"] == 1
    row = next(r for r in bad["metrics"] if r["metric"] == "throughput/sb")
    # tonight's 3 runs against the 9 runs of the 3 earlier nights, read back from the store
    assert row["rule"] == "short history" and row["p_value"] == pytest.approx(1 / 220)
    assert "short history" in row["evidence"] and "9 runs of 3 earlier night(s)" in row["evidence"]


def test_a_one_off_outlier_that_vanishes_on_remeasurement_is_unconfirmed(store):
    store.history(10)
    outlier = night_samples(np.random.default_rng(11), {"time_to_target_s/kath18": 1.4})
    normal = night_samples(np.random.default_rng(12))
    asked = []
    _, report = evaluate(store, outlier, lambda methods: asked.append(methods) or
                         measurement_of(normal))
    assert asked == [{"kath18"}]
    assert report["exit_code"] == 0 and report["verdict"] == H.VERDICT_UNCONFIRMED
    row = next(r for r in report["metrics"] if r["metric"] == "time_to_target_s/kath18")
    assert row["confirmation"] == "unconfirmed"
    assert any("did not reproduce" in w for w in report["warnings"])


def test_a_night_that_measured_nothing_is_exit_2_never_0(store):
    store.history(10)
    empty = M.measure([], None, expected_runs=15)
    identity = store.identity()
    run_id = store.new_night(identity)
    report = evaluate_night(store.client, run_id, identity, empty, store.options())
    assert report["exit_code"] == 2 and "no runs" in report["headline"]
    partial = measurement_of({k: v for k, v in night_samples(np.random.default_rng(1)).items()
                              if "kath18" not in k})
    partial.problems.append("partial suite: 12 of 15 runs")
    run_id = store.new_night(identity)
    report = evaluate_night(store.client, run_id, identity, partial, store.options())
    assert report["exit_code"] == 2


def test_interrupted_and_failed_nights_are_never_history(store):
    ids = store.history(6)
    killed = store.write_night(night_samples(np.random.default_rng(3), {
        "throughput/sb": 3.0}), 1, verdict=None, status="KILLED")
    regressed = store.write_night(night_samples(np.random.default_rng(4)), 0.5,
                                  H.VERDICT_REGRESSION, status="FINISHED")
    nights = H.find_nights(store.client, [store.experiment_id], "nightly", store.fingerprint)
    history = H.select_history(nights)
    assert [n.run_id for n in history.nights] == ids
    assert killed not in {n.run_id for n in history.nights}
    assert regressed not in {n.run_id for n in history.nights}
    assert len(H.select_history(nights, limit=4).nights) == 4


def test_changes_since_the_last_good_night_are_reported(store):
    store.history(6)
    versions = dict(store.identity().versions, **{"sbbench.torch_version": "2.6.0",
                                                  "sbbench.git_commit": "b" * 40})
    identity = store.identity(versions=versions)
    _, report = evaluate(store, night_samples(np.random.default_rng(2)), identity=identity)
    assert "torch 2.5.0 -> 2.6.0" in report["changes_since_last_good"]
    assert any(c.startswith("commit aaaaaaaaaa -> bbbbbbbbbb")
               for c in report["changes_since_last_good"])


def test_a_recorded_night_is_read_back_as_history_and_shown_in_mlflow(store, tmp_path):
    store.history(6)
    samples = night_samples(np.random.default_rng(21))
    identity = store.identity()
    run_id = store.new_night(identity)
    measurement = measurement_of(samples)
    report = evaluate_night(store.client, run_id, identity, measurement, store.options())
    figures = record_night(store.client, run_id, report, measurement, tmp_path / "night")
    store.client.set_terminated(run_id, "FINISHED")
    run = store.client.get_run(run_id)
    assert run.data.tags[H.TAG_VERDICT] == "ok" and run.data.tags[H.TAG_EXIT_CODE] == "0"
    assert run.data.metrics["throughput/sb"] == pytest.approx(np.median(samples["throughput/sb"]))
    assert run.data.metrics["nightly_exit_code"] == 0
    artifacts = {a.path for a in store.client.list_artifacts(run_id)}
    assert {"nightly.md", "nightly.json", "figures"} <= artifacts
    assert {f.name for f in figures} >= {"trend_throughput.png", "trend_speedup.png"}
    data = json.loads((tmp_path / "night" / "nightly.json").read_text())
    assert data["exit_code"] == 0 and data["metrics"]
    md = (tmp_path / "night" / "nightly.md").read_text()
    assert "| metric | tonight | history median | band | change | verdict |" in md
    nights = H.find_nights(store.client, [store.experiment_id], "nightly", store.fingerprint)
    assert nights[-1].run_id == run_id and nights[-1].good
    assert H.samples_of(store.client, nights[-1], "throughput/sb") == pytest.approx(
        samples["throughput/sb"])


def test_a_noisy_short_history_still_alarms_on_a_halved_throughput_and_says_it_is_noisy(store):
    """The case a busy core produced: three nights whose SB runs spread by +-40%. Uncapped,
    3 x CV asked for a worsening over 100% and a halved throughput passed silently."""
    rng = np.random.default_rng(31)
    spread = [60000.0, 30000.0, 18000.0]
    for day in (3, 2, 1):
        samples = night_samples(rng)
        samples["throughput/sb"] = [v * (1 + 0.05 * day) for v in spread]
        store.write_night(samples, day, H.VERDICT_BASELINE if day == 3 else H.VERDICT_OK)
    halved = night_samples(np.random.default_rng(32))
    halved["throughput/sb"] = [9000.0, 8000.0, 7000.0]
    _, report = evaluate(store, halved, lambda methods: measurement_of(halved))
    assert report["exit_code"] == 1, report["regressions"]
    assert report["regressions"][0].startswith("throughput/sb")
    row = next(r for r in report["metrics"] if r["metric"] == "throughput/sb")
    assert row["too_noisy"] and row["threshold"] == pytest.approx(0.25)
    assert any(w.startswith("history too noisy") and "throughput/sb (CV" in w
               for w in report["warnings"])
    from sbbench.nightly.report import text_report
    assert "history too noisy: CV" in text_report(report)
