"""The bench's measuring code runs end to end on a tiny workload (correctness, not speed)."""

import math

from sbbench.bench.runner import BenchPlan, format_table, run_bench
from sbbench.config import RunConfig


def test_run_bench_on_a_tiny_workload(tiny):
    config = RunConfig.from_dict(tiny)
    plan = BenchPlan(epochs=3, repeats=2, step_repeats=2, tracking_pairs=2)
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
    assert len(result["efficiency_sb_per_repeat"]) == 2
    assert set(result["phase_s_per_epoch"]) == {"traditional", "sb", "stale_sb",
                                                "free_selection"}
    # The free-selection control: its own run per repeat, against SB's bound.
    assert len(result["efficiency_free_selection_per_repeat"]) == 2
    assert math.isfinite(result["efficiency_free_selection"])
    assert result["efficiency_free_selection"] > 0
    assert -1 < result["selection_share_of_sb_epoch"] < 1
    assert result["phase_s_per_epoch"]["traditional"]["time_forward_select_s"] == 0
    assert result["bookkeeping_in_loop"]["s_per_batch"] > 0
    table = format_table(result)
    assert "in the loop" in table and "SB, free sel." in table
