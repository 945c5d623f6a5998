"""The bench's formulas on synthetic timings (no timing assertions)."""

import pytest

from sbbench.bench import bound
from sbbench.bench.runner import format_table


def test_bounds_match_spec_formulas():
    assert bound.bound_sb(0.25, 0.25) == pytest.approx(2.0)
    assert bound.bound_stale_sb(0.3, 0.2, 3) == pytest.approx(1 / (0.1 + 0.2))
    # n = 1 is plain SB; r = 0 leaves only the keep rate.
    assert bound.bound_stale_sb(0.3, 0.2, 1) == pytest.approx(bound.bound_sb(0.3, 0.2))
    assert bound.bound_sb(0.0, 0.25) == pytest.approx(4.0)


def test_summary_on_an_ideal_implementation_has_efficiency_one():
    r, s, n, step = 0.3, 0.25, 3, 1.0
    traditional = [step * 100] * 3
    sb = [step * 100 * (r + s)] * 3            # exactly the bound
    stale = [step * 100 * (r / n + s)] * 3
    summary = bound.summarise(r, s, n, traditional, sb, stale)
    assert summary["efficiency_sb"] == pytest.approx(1.0)
    assert summary["efficiency_stale_sb"] == pytest.approx(1.0)
    assert summary["speedup_sb"] == pytest.approx(1 / 0.55)


def test_overhead_lowers_efficiency_and_medians_resist_outliers():
    r, s = 0.25, 0.25
    traditional = [10.0, 10.0, 30.0]              # one slow repeat
    sb = [10.0 * (r + s) * 1.25] * 3              # 25% overhead on top of the bound
    summary = bound.summarise(r, s, 3, traditional, sb, sb)
    assert summary["epoch_s_traditional"] == 10.0
    assert summary["efficiency_sb"] == pytest.approx(0.8)


def test_r_from_epochs_is_forward_time_over_traditional_epoch():
    assert bound.r_from_epochs(0.5, [1.9, 2.0, 2.1]) == pytest.approx(0.25)


def test_table_lists_every_required_quantity():
    summary = bound.summarise(0.25, 0.25, 3, [2.0], [1.0], [0.8])
    summary.update({
        "sb_phase_s_per_epoch": {"time_forward_select_s": 0.5, "time_forward_train_s": 0.2,
                                 "time_backward_s": 0.2, "time_other_s": 0.1},
        "bookkeeping": {"1024": {"s_per_batch": 4e-5, "fraction_of_step": 0.008},
                        "65536": {"s_per_batch": 2e-4, "fraction_of_step": 0.04}},
        "bookkeeping_fraction": 0.008,
        "tracking": {"evaluations": 10, "evaluation_logging_s": 0.01, "tracking_overhead": 0.002,
                     "train_time_s": 5.0, "tracked_wall_s": 7.0, "untracked_wall_s": 6.0},
        "tracking_overhead": 0.002,
        "environment": {"dataset": "mnist1d", "model": "cnn1d", "batch_size": 128,
                        "device_name": "cpu", "threads": 2, "torch": "x", "repeats": 3,
                        "epochs_per_run": 3},
    })
    table = format_table(summary)
    for text in ("r = selection forward", "keep rate", "SB ", "StaleSB", "efficiency",
                 "window   1024", "window  65536", "0.80% of a training step", "forward (select)"):
        assert text in table, text


def test_paired_efficiencies_use_each_repeats_own_r_and_keep_rate():
    # Repeat 1 sits exactly on its bound; repeat 2's SB epoch is 10% over its own bound.
    traditional = [2.0, 4.0]
    forward = [0.5, 1.0]                       # r = 0.25 in both
    keep = [0.25, 0.25]
    sb = [2.0 * 0.5, 4.0 * 0.5 * 1.1]
    assert bound.paired_efficiencies(traditional, sb, forward, keep) == \
        pytest.approx([1.0, 1 / 1.1])
    stale = [2.0 * (0.25 / 3 + 0.25)] * 2
    assert bound.paired_efficiencies(traditional[:1], stale[:1], forward, keep, staleness=3) == \
        pytest.approx([1.0])


def test_excess_over_bound_compares_phase_by_phase_with_s_of_traditional():
    traditional = {"time_forward_select_s": 0.0, "time_forward_train_s": 0.8,
                   "time_backward_s": 1.2, "time_other_s": 0.2}
    sb = {"time_forward_select_s": 0.5, "time_forward_train_s": 0.21,
          "time_backward_s": 0.3, "time_other_s": 0.09}
    excess = bound.excess_over_bound(traditional, sb, keep_rate=0.25)
    assert excess["training_steps"] == pytest.approx(0.51 - 0.5)
    assert excess["other"] == pytest.approx(0.09 - 0.05)
