"""The bench's precision rule on synthetic per-repeat values (no training): the interval's
coverage, the stop rule, the "cannot resolve" line and the above-bound warning."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from sbbench.bench import bound, measure, precision
from sbbench.bench.precision import (BUDGET, MAX_REPEATS, RESOLVED, RepeatPlan, bound_warning,
                                     resolution_lines, stop_reason, t_interval)
from sbbench.bench.runner import CONTROLLED, LABELS, format_table, paired_values
from sbbench.selection import SelectionSettings


def test_t_interval_on_known_values():
    interval = t_interval([1.0, 2.0, 3.0])
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)  # sd 1
    assert interval.estimate == 2.0 and interval.median == 2.0 and interval.n_repeats == 3
    assert interval.half_width == pytest.approx(half)
    assert (interval.ci_low, interval.ci_high) == pytest.approx((2 - half, 2 + half))
    one = t_interval([0.9])
    assert one.half_width == math.inf and not one.resolved()
    assert one.as_dict()["half_width"] is None  # strict JSON: no Infinity
    with pytest.raises(ValueError):
        t_interval([])


@pytest.mark.parametrize("n", [5, 12, 30])
def test_coverage_on_2000_simulated_sets_of_normal_noise(n):
    rng = np.random.default_rng(n)
    truth, sd = 0.93, 0.04
    covered = 0
    for _ in range(2000):
        interval = t_interval(truth + sd * rng.standard_normal(n))
        covered += interval.ci_low <= truth <= interval.ci_high
    assert 0.93 <= covered / 2000 <= 0.97


def test_coverage_of_the_whole_adaptive_procedure():
    """Stopping once the interval is narrow favours runs that look quiet by chance: the whole
    procedure (at least 5 repeats, stop under +-0.03, at most 40) still covers about 95%."""
    rng = np.random.default_rng(11)
    truth, sd, plan = 0.93, 0.04, RepeatPlan(min_repeats=5, max_repeats=40)
    covered, stops = 0, []
    for _ in range(2000):
        draws = truth + sd * rng.standard_normal(plan.max_repeats)
        for n in range(1, plan.max_repeats + 1):
            interval = t_interval(draws[:n])
            if stop_reason({"efficiency_sb": interval}, n, 0.0, plan):
                break
        covered += interval.ci_low <= truth <= interval.ci_high
        stops.append(n)
    assert 0.90 <= covered / 2000 <= 0.97
    assert 5 < np.median(stops) < 40


def test_repeats_needed_is_the_first_count_under_the_target():
    interval = t_interval([0.90, 0.95, 0.99, 0.86, 0.93])
    n = interval.repeats_needed(0.03)
    half = lambda k: stats.t.ppf(0.975, k - 1) * interval.sd / math.sqrt(k)  # noqa: E731
    assert half(n) < 0.03 <= half(n - 1)
    assert t_interval([0.9]).repeats_needed() is None


def _controlled(sb_sd: float, share_sd: float, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    unit = rng.standard_normal(n)
    unit = (unit - unit.mean()) / unit.std(ddof=1)  # exactly this sd
    return {"efficiency_sb": t_interval(0.93 + sb_sd * unit),
            "selection_share_of_sb_epoch": t_interval(0.02 + share_sd * unit)}


def test_stop_rule_stops_once_every_half_width_is_under_the_target():
    plan = RepeatPlan(min_repeats=5, max_repeats=40, budget_s=1000)
    # sd 0.03: t(n-1) x 0.03 / sqrt(n) < 0.03 from n = 7 on (2.447 / sqrt(7) = 0.92).
    reasons = {n: stop_reason(_controlled(0.03, 0.03, n), n, 10.0 * n, plan)
               for n in range(5, 12)}
    assert reasons == {5: None, 6: None, 7: RESOLVED, 8: RESOLVED, 9: RESOLVED, 10: RESOLVED,
                       11: RESOLVED}
    # One quantity resolved is not enough: the share's wider spread keeps it running.
    assert stop_reason(_controlled(0.01, 0.08, 10), 10, 100.0, plan) is None
    # Never before the minimum, however narrow.
    assert stop_reason(_controlled(0.0001, 0.0001, 3), 3, 30.0, plan) is None


def test_stop_rule_says_cannot_resolve_when_the_budget_ends_first():
    controlled = _controlled(0.01, 0.10, 12)
    by_count = RepeatPlan(min_repeats=5, max_repeats=12)
    assert stop_reason(controlled, 12, 120.0, by_count) == MAX_REPEATS
    by_time = RepeatPlan(min_repeats=5, max_repeats=40, budget_s=125)
    assert stop_reason(controlled, 12, 120.0, by_time) == BUDGET   # a 13th would end at 130 s
    assert stop_reason(controlled, 12, 110.0, by_time) is None     # ... and here at 119 s
    lines = resolution_lines(controlled, LABELS, BUDGET, 0.03, 125)
    assert lines[0].startswith("  SB's efficiency: resolved to +-3 points in 12 repeats")
    share = controlled["selection_share_of_sb_epoch"]
    assert ("this machine cannot resolve the selection share to +-3 points in 12 repeats "
            f"(half-width {share.half_width:.3f}, the 125 s budget spent; at this spread about "
            f"{share.repeats_needed()} repeats would)") in lines[1]
    assert "repeat limit reached" in resolution_lines(controlled, LABELS, MAX_REPEATS)[1]


@pytest.mark.parametrize("estimate", [0.95, 0.999, 1.0, 1.0001, 1.0049, 1.04])
def test_bound_warning_appears_exactly_when_the_estimate_exceeds_one(estimate):
    within = t_interval([estimate - 0.1, estimate, estimate + 0.1])
    beyond = t_interval([estimate - 0.001, estimate, estimate + 0.001])
    for interval in (within, beyond):
        warning = bound_warning("StaleSB", interval)
        assert (warning is not None) == (estimate > 1.0)
    if estimate > 1.0:
        assert bound_warning("StaleSB", within) == (
            f"! StaleSB efficiency {precision.above_one(estimate)} is above its bound: within noise "
            f"(95% CI {within.ci_low:.3f}-{within.ci_high:.3f})")
        beyond_noise = "r (or s) is underestimated" in bound_warning("StaleSB", beyond)
        assert beyond_noise == (beyond.ci_low > 1.0)


def _result(per_repeat: dict[str, list[float]]) -> dict:
    """A table's worth of result, with the CIs the runner adds."""
    result = bound.summarise(0.25, 0.25, 3, [2.0], [1.0], [0.8])
    result.update(bound.selection_ceiling(0.25, 0.25, [2.0], [1.0], [0.98]))
    result.update({
        "sb_phase_s_per_epoch": {k: 0.1 for k in measure.PHASE_KEYS},
        "bookkeeping": {"1024": {"s_per_batch": 4e-5, "fraction_of_step": 0.008}},
        "tracking": {"evaluations": 10, "evaluation_logging_s": 0.01, "tracking_overhead": 0.002,
                     "train_time_s": 5.0},
        "environment": {"dataset": "mnist1d", "model": "cnn1d", "batch_size": 128,
                        "device_name": "cpu", "threads": 2, "torch": "x", "repeats": 6,
                        "epochs_per_run": 1, "stale_sb_epochs_per_run": 3},
        "precision": {"controlled": list(CONTROLLED), "target_half_width": 0.03,
                      "stop_reason": MAX_REPEATS, "n_repeats": 6, "repeats_wall_s": 60.0,
                      "budget_s": None},
    })
    for name, values in per_repeat.items():
        interval = t_interval(values)
        result[name] = interval.estimate
        result[f"{name}_ci"] = interval.as_dict()
        result[f"{name}_per_repeat"] = values
    return result


@pytest.mark.parametrize("stale_shift", [-0.05, 0.0, 0.002, 0.08])
def test_table_prints_cis_and_warns_exactly_for_estimates_above_the_bound(stale_shift):
    noise = [-0.02, 0.01, 0.0, 0.02, -0.01, 0.0]
    per_repeat = {"efficiency_sb": [0.93 + e for e in noise],
                  "efficiency_stale_sb": [1.0 + stale_shift + e for e in noise],
                  "efficiency_free_selection": [0.96 + 3 * e for e in noise],
                  "selection_share_of_sb_epoch": [0.02 + 5 * e for e in noise]}
    table = format_table(_result(per_repeat))
    stale = t_interval(per_repeat["efficiency_stale_sb"])
    assert f"{stale.ci_low:.3f}-{stale.ci_high:.3f}" in table
    warnings = [line for line in table.splitlines() if line.startswith("!")]
    if stale.estimate > 1.0:
        assert len(warnings) == 1 and warnings[0].startswith(
            f"! StaleSB efficiency {stale.estimate:.3f} is above its bound")
    else:
        assert warnings == []
    assert "SB's efficiency: resolved to +-3 points in 6 repeats" in table
    assert "this machine cannot resolve the selection share to +-3 points in 6 repeats" in table
    assert "95% CI" in table and "mean of the repeats' 1 - free / SB" in table


def test_a_speedup_above_its_bound_is_flagged_even_when_the_paired_mean_is_not():
    noise = [-0.02, 0.01, 0.0, 0.02, -0.01, 0.0]
    result = _result({"efficiency_sb": [0.99 + e for e in noise],
                      "efficiency_stale_sb": [0.9 + e for e in noise],
                      "efficiency_free_selection": [0.9 + e for e in noise],
                      "selection_share_of_sb_epoch": [0.02 + e for e in noise]})
    result["efficiency_sb_of_medians"] = 1.01
    result["efficiency_stale_sb_of_medians"] = 0.9
    warnings = [line for line in format_table(result).splitlines() if line.startswith("!")]
    assert warnings == [f"! SB speedup {result['speedup_sb']:.3f} (median epoch times) is above "
                        f"its bound {result['bound_sb']:.3f}: within noise (paired efficiency "
                        f"0.990, 95% CI {result['efficiency_sb_ci']['ci_low']:.3f}-"
                        f"{result['efficiency_sb_ci']['ci_high']:.3f})"]


def test_rotated_order_puts_every_method_in_every_position():
    methods = ("traditional", "sb", "stale_sb", "free_selection")
    orders = [measure.rotated_order(methods, k) for k in range(4)]
    assert orders[0] == methods
    for position in range(4):
        assert {order[position] for order in orders} == set(methods)
    assert measure.rotated_order(methods, 5) == orders[1]


def _fake_training(calls: list, keep_rate: float = 0.24, slow_sb_every: int = 0):
    """Stands in for `train_untracked`: per-epoch times from a fixed model of each method."""
    epoch_s = {"traditional": 2.0, "sb": 1.0, "stale_sb": 0.7}

    def train(config, data=None, method_factory=None):
        method = config.method if method_factory is None else "free_selection"
        control_rate = (method_factory(SelectionSettings(batch_size=8, num_train=8)).keep_rate
                        if method_factory else None)
        calls.append((method, config.epochs, config.seed, control_rate))
        per_epoch = epoch_s.get(method, 0.98)
        total = per_epoch * config.epochs
        phases = {k: 0.0 for k in measure.PHASE_KEYS}
        phases["time_forward_select_s"] = 0.5 * config.epochs if method != "traditional" else 0
        return SimpleNamespace(final={"total_train_time_s": total,
                                      "overall_keep_rate": keep_rate},
                               curve=[phases])
    return train


def test_measure_epoch_times_runs_rounds_until_stop_says_so(monkeypatch, tiny):
    from sbbench.config import RunConfig

    calls = []
    monkeypatch.setattr(measure, "train_untracked", _fake_training(calls))
    seen = []

    def stop(times, elapsed_s):
        seen.append(times.repeats)
        return RESOLVED if times.repeats == 6 else None

    config = RunConfig.from_dict(tiny)
    times = measure.measure_epoch_times(config, data=None, epochs=1, repeats=2,
                                        progress=lambda m: None, stop=stop, max_repeats=10,
                                        stale_epochs=3)
    assert seen == [1, 2, 3, 4, 5, 6] and times.repeats == 6 and times.stop_reason == RESOLVED
    assert len(times.traditional_s) == len(times.free_selection_s) == len(times.keep_rates) == 6
    assert times.orders[1] == ("sb", "stale_sb", "free_selection", "traditional")
    timed = calls[4:]                                   # after one warm-up run of each method
    assert {(m, e) for m, e, _, _ in timed} == {("traditional", 1.0), ("sb", 1.0),
                                                ("stale_sb", 3.0), ("free_selection", 1.0)}
    assert times.stale_sb_s == pytest.approx([0.7] * 6)  # per epoch, from 3-epoch runs
    # The control runs at SB's measured keep rate, also before SB's first timed run.
    assert all(rate == 0.24 for m, _, _, rate in timed if m == "free_selection")
    assert [s for m, _, s, _ in timed if m == "sb"] == [config.seed + k for k in range(6)]
    # Without `stop`: exactly `repeats`, as before.
    fixed = measure.measure_epoch_times(config, None, 1, 3, progress=lambda m: None,
                                        warmup=False)
    assert fixed.repeats == 3 and fixed.stop_reason is None
    values = paired_values(fixed, staleness=3)
    assert values["efficiency_sb"] == pytest.approx([2.0 / 1.0 * (0.25 + 0.24)] * 3)
    assert values["selection_share_of_sb_epoch"] == pytest.approx([0.02] * 3)
