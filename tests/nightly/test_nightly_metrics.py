"""Metrics and exact invariants from a night's child runs written into a temporary store."""

from __future__ import annotations

import pytest

from sbbench.nightly import metrics as M

STUDY = "nightly-nightly-test"


def child(client, experiment_id, parent, method, seed, metrics, status="FINISHED",
          failure=None, at_priming=None, **params):
    base = {"method": method, "seed": seed, "train_size": 1000, "prime_epochs": 1, "beta": 3,
            "staleness": 3}
    base.update(params)
    tags = {"mlflow.parentRunId": parent, M.TAG_STUDY: STUDY, M.TAG_TRIAL: str(seed),
            M.TAG_METHOD: method}
    if failure:
        tags[M.TAG_FAILURE_KIND], tags[M.TAG_FAILURE_REASON] = failure
    run_id = client.create_run(experiment_id, tags=tags).info.run_id
    for key, value in base.items():
        client.log_param(run_id, key, value)
    for key, value in metrics.items():   # at the last step, as a run logs its totals
        client.log_metric(run_id, key, value, step=4000)
    # the evaluation at the end of priming (step: examples seen), and one before it
    for key, value in (at_priming or {}).items():
        client.log_metric(run_id, key, value / 2, step=500)
        client.log_metric(run_id, key, value, step=1000)
    client.set_terminated(run_id, status)
    return run_id


@pytest.fixture
def night(store):
    client, exp = store.client, store.experiment_id
    parent = client.create_run(exp).info.run_id
    ids = {}
    # Traditional: a slow first epoch (warm-up), then 0.9 s and 1.0 s per epoch
    for seed, t, first in ((0, 4.0, 1.3), (1, 4.2, 1.2)):
        ids[("traditional", seed)] = child(client, exp, parent, "traditional", seed, {
            "total_examples_seen": 4000, "total_examples_backpropped": 4000,
            "total_train_time_s": t, "total_epochs": 4, "final_test_error": 0.1},
            at_priming={"train_time_s": first, "time_forward_select_s": 0.0})
    # SB: priming 1 s, three epochs of 0.5 s with 0.2 s of selection forwards each
    ids[("sb", 0)] = child(client, exp, parent, "sb", 0, {
        "total_examples_seen": 4000, "total_examples_backpropped": 1000 + 750,
        "total_train_time_s": 1.0 + 3 * 0.5, "total_epochs": 4, "final_test_error": 0.11,
        "time_forward_select_s": 0.6, "total_selection_forwards": 3000,
        "total_selection_forwards_skipped": 0},
        at_priming={"train_time_s": 1.0, "time_forward_select_s": 0.0})
    # Random keeping far too many
    ids[("random", 0)] = child(client, exp, parent, "random", 0, {
        "total_examples_seen": 4000, "total_examples_backpropped": 1000 + 1200,
        "total_train_time_s": 3.0, "total_epochs": 4, "final_test_error": 0.12})
    # StaleSB n=3: one refresh epoch, two stale ones after priming
    ids[("stale_sb", 0)] = child(client, exp, parent, "stale_sb", 0, {
        "total_examples_seen": 4000, "total_examples_backpropped": 1750,
        "total_train_time_s": 2.0, "total_epochs": 4, "final_test_error": 0.12,
        "time_forward_select_s": 0.2, "total_selection_forwards": 1000,
        "total_selection_forwards_skipped": 2000})
    ids[("kath18", 0)] = child(client, exp, parent, "kath18", 0, {"total_examples_seen": 800},
                               status="FAILED", failure=("diverged", "non-finite loss"))
    ids[("kath18", 1)] = child(client, exp, parent, "kath18", 1, {}, status="FAILED",
                               failure=("error", "RuntimeError: boom"))
    return client, exp, parent, ids


def summary_for(ids):
    rows = []
    times = {("traditional", 0): (3.0, True), ("traditional", 1): (3.2, True),
             ("sb", 0): (2.0, True), ("random", 0): (2.5, False), ("stale_sb", 0): (1.5, True)}
    for (method, seed), (time_s, reached) in times.items():
        rows.append({"method": method, "target_index": 0, "runs": [
            {"run_id": ids[(method, seed)], "time_s": time_s, "reached": reached}]})
        rows.append({"method": method, "target_index": 1, "runs": [
            {"run_id": ids[(method, seed)], "time_s": 99.0, "reached": True}]})
    return {"configurations": rows}


def test_metrics_and_invariants_of_a_night(night):
    client, exp, parent, ids = night
    records = M.trial_runs(client, [exp], parent, STUDY)
    assert len(records) == 7
    m = M.measure(records, summary_for(ids), expected_runs=8)
    assert sorted(m.samples["throughput/traditional"]) == pytest.approx([4000 / 4.2, 1000.0])
    assert m.samples["throughput/sb"] == pytest.approx([1600.0])
    assert m.samples["final_test_error/sb"] == pytest.approx([0.11])
    assert m.samples["time_to_target_s/random"] == pytest.approx([5.0])  # never reached: 2 x
    assert m.samples["speedup/sb"] == pytest.approx([3.1 / 2.0])
    # Efficiency over the same epochs, each run's own clock after priming: Traditional 0.9 s
    # and 1.0 s per epoch (median 0.95), SB 0.5 s with 0.2 s of selection forwards.
    trad_post = 0.95
    r, s = 0.6 / 3 / trad_post, 0.25
    assert m.samples["efficiency/sb"] == pytest.approx([trad_post / 0.5 * (r + s)])
    # Random logged no clocks at the end of priming: the older estimate, priming charged at
    # Traditional's whole-run epoch (median of 4.0 / 4 and 4.2 / 4)
    trad_epoch = 1.025
    random_epoch = (3.0 - trad_epoch) / 3
    assert m.samples["efficiency/random"] == pytest.approx([trad_epoch / random_epoch * 0.4])
    invariants = {i.name: i for i in m.invariants}
    assert invariants["keep_rate/sb"].ok
    assert not invariants["keep_rate/random"].ok and "0.4000" in invariants[
        "keep_rate/random"].detail
    assert invariants["stale_skips/stale_sb"].ok
    diverged = invariants["finished/kath18"]
    assert diverged.kind == "diverged" and not diverged.ok
    assert any("ended FAILED" in p and "boom" in p for p in m.problems)
    assert any("partial suite: 7 of 8" in p for p in m.problems)


def test_stale_sb_that_forwards_on_stale_epochs_breaks_its_invariant(store):
    client, exp = store.client, store.experiment_id
    parent = client.create_run(exp).info.run_id
    child(client, exp, parent, "stale_sb", 0, {
        "total_examples_seen": 4000, "total_examples_backpropped": 1750,
        "total_train_time_s": 2.0, "total_epochs": 4, "final_test_error": 0.12,
        "total_selection_forwards": 3000, "total_selection_forwards_skipped": 0})
    m = M.measure(M.trial_runs(client, [exp], parent, STUDY), None, expected_runs=1)
    (inv,) = [i for i in m.invariants if i.name.startswith("stale_skips")]
    assert not inv.ok and "expected 0.6667" in inv.detail


def test_an_empty_night_cannot_measure():
    m = M.measure([], None, expected_runs=15)
    assert m.problems == ["the suite produced no runs"] and not m.samples


def test_configurations_that_vary_get_their_own_labels(store):
    client, exp = store.client, store.experiment_id
    parent = client.create_run(exp).info.run_id
    metrics = {"total_examples_seen": 4000, "total_examples_backpropped": 1750,
               "total_train_time_s": 2.0, "total_epochs": 4, "final_test_error": 0.1}
    child(client, exp, parent, "sb", 0, metrics, beta=1)
    child(client, exp, parent, "sb", 0, metrics, beta=3)
    m = M.measure(M.trial_runs(client, [exp], parent, STUDY), None, expected_runs=2)
    assert {"throughput/sb[beta=1]", "throughput/sb[beta=3]"} <= set(m.samples)
