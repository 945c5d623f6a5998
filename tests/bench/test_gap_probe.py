"""The gap probe: its penalty formula on synthetic timings, and a run on the tiny workload."""

import math

import pytest

from sbbench.bench.gap_probe import busy_wait, format_gap_table, measure_gap_penalty, \
    predicted_sb_step_excess_s, step_penalty
from sbbench.config import RunConfig


def phases(forward_us, backward_us, other_us):
    return {"time_forward_train_s": forward_us * 1e-6, "time_backward_s": backward_us * 1e-6,
            "time_other_s": other_us * 1e-6}


def test_penalty_counts_the_training_step_only_and_per_second_of_pause():
    baseline = phases(2000, 3000, 400)
    # After 6 ms pauses: forward +300 us, backward +300 us; "other" holds the pause itself.
    paused = phases(2300, 3300, 6400)
    penalty = step_penalty(baseline, paused, pause_s=0.006)
    assert penalty["step_s"] == pytest.approx(5600e-6)
    assert penalty["extra_s"] == pytest.approx(600e-6)
    assert penalty["extra_fraction"] == pytest.approx(0.12)
    assert penalty["extra_per_pause_s"] == pytest.approx(0.1)  # 100 us per ms of pause
    assert step_penalty(baseline, baseline, 0.0)["extra_per_pause_s"] == 0.0
    faster = step_penalty(baseline, phases(1900, 3000, 500), 0.002)
    assert faster["extra_s"] == pytest.approx(-100e-6)  # noise can read negative; kept as is


def test_busy_wait_holds_for_the_pause():
    import time
    start = time.perf_counter()
    busy_wait(0.003)
    assert time.perf_counter() - start >= 0.003


def test_gap_probe_runs_on_the_tiny_workload(tiny):
    config = RunConfig.from_dict(tiny)
    from sbbench.bench.measure import load_bench_data
    rows = measure_gap_penalty(config, load_bench_data(config), repeats=1, pauses_ms=(0, 1),
                               forwards=2, progress=lambda m: None)
    assert [row["before_each_step"] for row in rows] == ["pause 0 ms", "pause 1 ms",
                                                        "2 no-grad forwards"]
    assert rows[0]["extra_s"] == 0 and rows[0]["extra_per_pause_s"] == 0
    # The pause is on the clock, outside the step's phases: "other" grows by about 1 ms.
    assert rows[1]["time_other_s"] - rows[0]["time_other_s"] > 0.0008
    assert all(math.isfinite(row["step_s"]) and row["step_s"] > 0 for row in rows)
    table = format_gap_table(rows)
    assert "pause 1 ms" in table and "2 no-grad forwards" in table


def test_prediction_scales_the_forwards_row_by_sb_steps():
    rows = [{"extra_s": 0.0}, {"extra_s": 500e-6}, {"extra_s": 300e-6}]  # last: forwards row
    # 391 Traditional steps per epoch, s = 0.25: ~97.75 SB steps, +300 us each.
    assert predicted_sb_step_excess_s(rows, 0.25, 391) == pytest.approx(0.25 * 391 * 300e-6)
