"""Time to target, censoring, run classification and configuration keys (no MLflow)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from sbbench.analysis import record as R
from sbbench.analysis.grouping import group_runs, match_baseline
from sbbench.analysis.loading import RunRecord, classify, split_params
from sbbench.analysis.time_to_target import (first_crossing, time_to_target, workload_budget,
                                             workload_targets)


def make_run(method="sb", outcome=R.OUTCOME_OK, val=(0.5, 0.3, 0.1, 0.05, 0.2, 0.04),
             dt=2.0, keep=0.5, final_val=None, params=None, run_id="r") -> RunRecord:
    steps = [10_000 * (i + 1) for i in range(len(val))]
    curve = pd.DataFrame({"step": steps, "val_error": list(val),
                          "test_error": [v + 0.01 for v in val],
                          "train_time_s": [dt * (i + 1) for i in range(len(val))],
                          "examples_backpropped": [keep * s for s in steps],
                          "examples_seen": steps})
    params = params or {"method": method, "dataset": "d", "model": "m", "seed": "0"}
    workload, config = split_params(method, params)
    metrics = {} if final_val is None else {"final_val_error": final_val}
    return RunRecord(run_id, run_id, "FINISHED", outcome, method, params, {}, workload, config,
                     metrics, curve=curve)


def test_first_crossing_is_the_first_evaluation_at_or_below_target():
    run = make_run()
    assert first_crossing(run.curve, 0.1) == 2          # 0.1 <= 0.1 at the third evaluation
    c = time_to_target(run, 0.1)
    assert c.reached and c.time_s == 6.0
    assert c.examples_seen == 30_000 and c.examples_backpropped == 15_000
    # later re-crossings (0.05 then 0.04 after a bounce to 0.2) do not matter
    assert time_to_target(run, 0.06).time_s == 8.0


def test_never_reaching_is_censored_at_the_runs_budget():
    c = time_to_target(make_run(), 0.01)
    assert not c.reached and c.censored and math.isinf(c.time_or_inf)
    assert c.time_s == 12.0 and c.examples_seen == 60_000


def test_diverged_run_never_reaches_and_is_censored_at_the_workload_budget():
    diverged = make_run(outcome=R.OUTCOME_DIVERGED, val=(0.5, 0.05))   # crossed, then blew up
    finished = make_run(dt=3.0)
    budget = workload_budget([diverged, finished])
    assert budget["time_s"] == 18.0
    c = time_to_target(diverged, 0.1, budget)
    assert not c.reached and c.crossed_before_divergence
    assert c.time_s == 18.0 and c.examples_seen == 60_000


def test_pruned_run_is_censored_at_its_last_evaluation():
    pruned = make_run(outcome=R.OUTCOME_PRUNED, val=(0.5, 0.4))
    c = time_to_target(pruned, 0.1, {"time_s": 99.0, "examples_backpropped": 1.0,
                                     "examples_seen": 1.0})
    assert not c.reached and c.time_s == 4.0


def test_default_target_is_factor_times_median_final_traditional_error():
    runs = [make_run("traditional", final_val=v, run_id=str(v)) for v in (0.01, 0.02, 0.04)]
    runs.append(make_run("sb", final_val=0.5))
    targets, note = workload_targets(runs, 1.4, ())
    assert note == "" and len(targets) == 1
    assert targets[0].value == pytest.approx(0.028)
    absolute, _ = workload_targets(runs, 1.4, (0.05, 0.03))
    assert [t.value for t in absolute] == [0.05, 0.03] and absolute[1].index == 1
    none, note = workload_targets([make_run("sb")], 1.4, ())
    assert none == [] and "Traditional" in note


def test_factor_target_with_absolute_ones_comes_first_and_is_not_repeated():
    runs = [make_run("traditional", final_val=v, run_id=str(v)) for v in (0.01, 0.02, 0.04)]
    both, note = workload_targets(runs, 1.4, (0.05, 0.028), factor_with_absolute=True)
    assert note == ""
    assert [t.value for t in both] == pytest.approx([0.028, 0.05])  # 0.028 only once
    assert [t.index for t in both][0] == 0 and both[0].rule.startswith("1.4 x")
    assert both[1].rule == "absolute"
    # No Traditional run: the absolute targets still stand, without the factor one.
    alone, note = workload_targets([make_run("sb")], 1.4, (0.05,), factor_with_absolute=True)
    assert [t.value for t in alone] == [0.05] and note == ""


def test_classify_outcomes():
    assert classify("FINISHED", {}) == R.OUTCOME_OK
    assert classify("FAILED", {R.TAG_FAILURE_KIND: "diverged"}) == R.OUTCOME_DIVERGED
    assert classify("FAILED", {R.TAG_FAILURE_KIND: "error"}) == R.OUTCOME_ERROR
    assert classify("KILLED", {R.TAG_FAILURE_KIND: "interrupted"}) == R.OUTCOME_INTERRUPTED
    assert classify("KILLED", {R.TAG_PRUNED: "true"}) == R.OUTCOME_PRUNED
    assert classify("RUNNING", {}) == R.OUTCOME_RUNNING


def test_configuration_ignores_seed_machine_and_fields_the_method_ignores():
    params = {"method": "traditional", "dataset": "mnist1d", "model": "cnn", "seed": "3",
              "beta": "1.0", "staleness": "2", "lr": "0.1", "device": "cuda",
              "data_dir": "/x", "label_noise": "0.1", "epochs": "10"}
    workload, config = split_params("traditional", params)
    assert workload == {"dataset": "mnist1d", "model": "cnn", "label_noise": "0.1",
                        "epochs": "10"}
    assert config == {"lr": "0.1"}
    _, sb_config = split_params("sb", params)
    assert sb_config == {"lr": "0.1", "beta": "1.0"}
    _, stale_config = split_params("stale_sb", params)
    assert stale_config == {"lr": "0.1", "beta": "1.0", "staleness": "2"}


def test_grouping_labels_and_baseline_matching():
    def p(method, seed, **kw):
        return {"method": method, "dataset": "d", "model": "m", "seed": str(seed),
                "batch_size": "128", "beta": "3", **{k: str(v) for k, v in kw.items()}}
    runs = [make_run("traditional", params=p("traditional", s, batch_size=bs, beta=b),
                     run_id=f"t{s}{bs}{b}")
            for s in range(2) for bs in (64, 128) for b in (1, 3)]
    runs += [make_run("sb", params=p("sb", s, batch_size=64, beta=b), run_id=f"s{s}{b}")
             for s in range(2) for b in (1, 3)]
    (wl,) = group_runs(runs)
    labels = [c.label for c in wl.configs]
    # Traditional ignores beta: two configurations (batch sizes), not four
    assert labels == ["Traditional batch_size=128", "Traditional batch_size=64",
                      "SB batch_size=64 beta=1", "SB batch_size=64 beta=3"]
    assert all(len(c.runs) == (4 if c.method == "traditional" else 2) for c in wl.configs)
    sb = wl.by_method("sb")[0]
    base, mismatch = match_baseline(sb, wl.by_method("traditional"))
    assert base.config["batch_size"] == "64" and mismatch == []


def test_method_fields_mirror_the_selection_registry():
    pytest.importorskip("torch")
    from sbbench.selection import METHOD_FIELDS

    assert R.METHOD_FIELDS == METHOD_FIELDS


def test_pitfall_warnings_small_eval_sets_and_eval_frequency():
    from sbbench.analysis.api import pitfall_warnings

    def p(seed, **kw):
        return {"method": "traditional", "dataset": "d", "model": "m", "seed": str(seed),
                **{k: str(v) for k, v in kw.items()}}
    runs = [make_run("traditional", params=p(0, val_size=1000, eval_every_examples=100),
                     run_id="a"),
            make_run("traditional", params=p(0, val_size=1000, eval_every_examples=500),
                     run_id="b")]
    warnings = pitfall_warnings(group_runs(runs))
    assert any("val_size=1000" in w for w in warnings)
    assert any("eval_every_examples" in w for w in warnings)
