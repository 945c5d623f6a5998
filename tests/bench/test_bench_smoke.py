"""The bench's measuring code runs end to end on a tiny workload (correctness, not speed)."""

import json
import math

import pytest

from sbbench.bench.runner import BenchPlan, format_table, run_bench
from sbbench.config import RunConfig


def test_run_bench_on_a_tiny_workload(tiny):
    config = RunConfig.from_dict(tiny)
    # Adaptive and short: 2-3 repeats of one-epoch runs (StaleSB: 3 epochs).
    plan = BenchPlan(epochs=3, repeats=2, step_repeats=2, tracking_pairs=2, max_repeats=3,
                     short_epochs=1)
    result = run_bench(config, plan, log=lambda m: None)
    for key in ("r", "keep_rate", "speedup_sb", "bound_sb", "efficiency_sb", "speedup_stale_sb",
                "bound_stale_sb", "efficiency_stale_sb", "bookkeeping_fraction"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    # A difference of two timings: finite, of either sign on a noisy machine.
    assert math.isfinite(result["tracking_overhead"])
    assert len(result["tracking"]["clock_inflation_per_pair"]) == 2
    assert 0 < result["keep_rate"] < 1
    assert result["bound_stale_sb"] > result["bound_sb"]
    assert result["tracking"]["evaluations"] >= 1
    n = result["precision"]["n_repeats"]
    assert n in (2, 3) and result["environment"]["repeats"] == n
    assert result["precision"]["stop_reason"] in ("resolved", "max_repeats")
    assert n == 3 or result["precision"]["stop_reason"] == "resolved"
    assert len(result["efficiency_sb_per_repeat"]) == n
    for name in ("efficiency_sb", "efficiency_stale_sb", "efficiency_free_selection",
                 "selection_share_of_sb_epoch"):
        ci = result[f"{name}_ci"]
        assert ci["n_repeats"] == n and ci["estimate"] == result[name]
        assert ci["ci_low"] <= result[name] <= ci["ci_high"]
        assert ci["half_width"] == pytest.approx((ci["ci_high"] - ci["ci_low"]) / 2)
    assert result["efficiency_sb_of_medians"] > 0
    json.dumps(result, allow_nan=False)  # strict JSON
    assert set(result["phase_s_per_epoch"]) == {"traditional", "sb", "stale_sb",
                                                "free_selection"}
    # The free-selection control: its own run per repeat, against SB's bound.
    assert len(result["efficiency_free_selection_per_repeat"]) == n
    assert math.isfinite(result["efficiency_free_selection"])
    assert result["efficiency_free_selection"] > 0
    assert -1 < result["selection_share_of_sb_epoch"] < 1
    assert result["phase_s_per_epoch"]["traditional"]["time_forward_select_s"] == 0
    assert result["bookkeeping_in_loop"]["s_per_batch"] > 0
    table = format_table(result)
    assert "in the loop" in table and "SB, free sel." in table
    assert "95% CI" in table and "precision (95% CIs to +-3 points" in table
