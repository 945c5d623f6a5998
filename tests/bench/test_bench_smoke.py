"""The bench's measuring code runs end to end on a tiny workload (correctness, not speed)."""

from sbbench.bench import measure
from sbbench.bench.runner import BenchPlan, run_bench
from sbbench.config import RunConfig


def test_run_bench_on_a_tiny_workload(tiny):
    config = RunConfig.from_dict(tiny)
    result = run_bench(config, BenchPlan(epochs=3, repeats=1, step_repeats=2), log=lambda m: None)
    for key in ("r", "keep_rate", "speedup_sb", "bound_sb", "efficiency_sb", "speedup_stale_sb",
                "bound_stale_sb", "efficiency_stale_sb", "bookkeeping_fraction",
                "tracking_overhead"):
        assert result[key] == result[key] and result[key] > 0, key  # finite, positive
    assert 0 < result["keep_rate"] < 1
    assert result["bound_stale_sb"] > result["bound_sb"]
    assert result["tracking"]["evaluations"] >= 1
