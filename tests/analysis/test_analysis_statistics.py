"""The statistics functions on synthetic samples with known truths (no MLflow)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sbbench.analysis import statistics as S
from sbbench.analysis.summary import json_safe


def test_holm_matches_hand_computed_example():
    # sorted: 0.005*4 = 0.02; 0.01*3 = 0.03; 0.03*2 = 0.06; 0.04*1 = 0.04 -> max(0.06, 0.04)
    assert S.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_skips_missing():
    adjusted = S.holm([0.5, None, math.nan, 0.4])
    assert adjusted[1] is None and adjusted[2] is None
    assert adjusted[3] == pytest.approx(0.8)
    assert adjusted[0] == pytest.approx(0.8)   # monotone: max(0.8, 0.5 * 1)
    assert S.holm([0.9, 0.8]) == [1.0, 1.0]


def test_min_attainable_p_and_underpowered_flag():
    assert S.min_attainable_p(3, 3) == pytest.approx(1 / 20)
    assert S.min_attainable_p(5, 5) == pytest.approx(1 / 252)
    rng = np.random.default_rng(0)
    fast = S.TimeSample.of([1.0, 1.1, 1.2], [False] * 3)
    slow = S.TimeSample.of([2.0, 2.1, 2.2], [False] * 3)
    out = S.compare_times(fast, slow, n_resamples=199, rng=rng)
    assert out["underpowered"] is True
    assert out["p_value"] == pytest.approx(0.05)      # the best a 3 vs 3 test can do
    assert out["min_attainable_p"] == pytest.approx(0.05)
    big = S.compare_times(S.TimeSample.of(np.linspace(1, 1.5, 6), [False] * 6),
                          S.TimeSample.of(np.linspace(2, 2.5, 6), [False] * 6),
                          n_resamples=199, rng=rng)
    assert big["underpowered"] is False and big["p_value"] < 0.01


def test_known_speedup_of_two_is_recovered():
    rng = np.random.default_rng(1)
    base_times = rng.lognormal(np.log(10.0), 0.15, 10)
    method_times = rng.lognormal(np.log(5.0), 0.15, 10)
    out = S.compare_times(S.TimeSample.of(method_times, [False] * 10),
                          S.TimeSample.of(base_times, [False] * 10),
                          n_resamples=9999, rng=np.random.default_rng(2))
    assert out["ci_method"] == "BCa"
    assert out["ci_low"] < 2.0 < out["ci_high"]
    assert out["ci_low"] > 1.0
    assert out["p_value"] < 0.001 and out["test_method"].endswith("exact")
    assert out["prob_improvement"] > 0.95
    assert out["p_logrank"] < 0.01 and out["p_welch_log"] < 0.01
    assert out["ci_is_bound"] is False and out["bound_direction"] is None


def test_bootstrap_is_seeded():
    sample_m = S.TimeSample.of([1.0, 1.3, 0.9, 1.2, 1.1], [False] * 5)
    sample_b = S.TimeSample.of([2.0, 2.6, 1.8, 2.4, 2.2], [False] * 5)
    a = S.compare_times(sample_m, sample_b, n_resamples=999, rng=np.random.default_rng(7))
    b = S.compare_times(sample_m, sample_b, n_resamples=999, rng=np.random.default_rng(7))
    assert (a["ci_low"], a["ci_high"]) == (b["ci_low"], b["ci_high"])


def test_aa_false_positive_rate_is_at_most_alpha_plus_margin():
    """Identical distributions: a single one-sided comparison rejects at p < 0.05 in at most
    alpha + 3 standard errors of 200 draws (the exact test is conservative)."""
    rng = np.random.default_rng(12345)
    draws, rejections, censored_draws = 200, 0, 0
    for _ in range(draws):
        t_m = rng.lognormal(np.log(10.0), 0.3, 6)
        t_b = rng.lognormal(np.log(10.0), 0.3, 6)
        budget = 14.0  # some runs never reach the target: censored, ties at +inf
        m = S.TimeSample.of(np.minimum(t_m, budget), t_m > budget, budget)
        b = S.TimeSample.of(np.minimum(t_b, budget), t_b > budget, budget)
        censored_draws += bool(m.censored.any() or b.censored.any())
        out = S.compare_times(m, b, n_resamples=99, rng=rng)
        rejections += out["p_value"] < 0.05
    margin = 3 * math.sqrt(0.05 * 0.95 / draws)
    assert rejections / draws <= 0.05 + margin
    assert censored_draws > 20  # the permutation (ties) path was exercised too


def test_censored_runs_rank_last_and_make_the_interval_a_bound():
    budget = 20.0
    method = S.TimeSample.of([5.0, 6.0, 20.0, 20.0, 7.0], [False, False, True, True, False],
                             budget)
    base = S.TimeSample.of([10.0, 11.0, 12.0, 13.0, 14.0], [False] * 5, budget)
    assert S.median_time(method) == 7.0
    out = S.compare_times(method, base, n_resamples=999, rng=np.random.default_rng(0))
    assert out["ci_is_bound"] is True and out["bound_direction"] == "upper"
    assert out["test_method"].endswith("permutation (exact enumeration, ties)") or \
        out["test_method"].endswith("exact")
    # P(T_m < T_b): 3 fast runs beat all 5, 2 censored runs lose to all 5
    assert out["prob_improvement"] == pytest.approx(15 / 25)
    never = S.TimeSample.of([20.0] * 5, [True] * 5, budget)
    out = S.compare_times(never, base, n_resamples=999, rng=np.random.default_rng(0))
    assert math.isinf(out["median_time_s"])
    assert out["speedup"] == pytest.approx(12.0 / 20.0)   # budget substituted: an upper bound
    assert out["prob_improvement"] == 0.0 and out["p_value"] > 0.5


def test_median_is_inf_once_half_the_runs_are_censored():
    assert math.isinf(S.median_time(S.TimeSample.of([1, 2, 9, 9], [False, False, True, True])))
    assert S.median_time(S.TimeSample.of([1, 2, 3, 9], [False, False, False, True])) == 2.5
    assert S.iqm(S.TimeSample.of([1, 2, 3, 9], [False, False, False, True])) is None
    assert S.iqm(S.TimeSample.of([1, 2, 3, 4], [False] * 4)) == pytest.approx(2.5)


def test_mann_whitney_method_choice():
    rng = np.random.default_rng(0)
    p, name = S.mann_whitney_less(np.array([1.0, 2, 3]), np.array([4.0, 5, 6]), rng)
    assert name == "exact" and p == pytest.approx(0.05)
    p, name = S.mann_whitney_less(np.array([1.0, 2, np.inf]), np.array([4.0, np.inf, np.inf]),
                                  rng)
    assert name.startswith("permutation")
    p, name = S.mann_whitney_less(np.r_[np.arange(30.0), [np.inf] * 5],
                                  np.r_[np.arange(30.0) + 0.5, [np.inf] * 5], rng)
    assert name.startswith("asymptotic")


def test_logrank_direction_faster_method_gets_small_p():
    fast = S.TimeSample.of([1, 2, 3, 4, 5], [False] * 5)
    slow = S.TimeSample.of([6, 7, 8, 9, 10], [False, False, False, True, True])
    assert S.logrank_p(fast, slow) < 0.05
    assert S.logrank_p(slow, fast) > 0.5


def test_bca_degenerate_falls_back_to_percentile():
    low, high, method = S.bootstrap_ci((np.array([2.0] * 5), np.array([1.0] * 5)),
                                       lambda b, m, axis=-1: np.median(b, axis=axis)
                                       / np.median(m, axis=axis),
                                       n_resamples=199, rng=np.random.default_rng(0))
    assert method.startswith("percentile") and "BCa degenerate" in method
    assert low == high == 2.0


def test_success_rate_and_kaplan_meier():
    s = S.success_rate(0, 6)
    assert s["success_rate"] == 0 and s["success_ci_low"] == 0 and 0 < s["success_ci_high"] < 1
    km = S.kaplan_meier(S.TimeSample.of([1.0, 2.0, 5.0, 5.0], [False, False, True, True]))
    assert km["probability"][-1] == pytest.approx(0.5)
    none = S.kaplan_meier(S.TimeSample.of([5.0, 5.0], [True, True]))
    assert max(none["probability"]) == 0.0


def test_mean_difference_and_json_safety():
    out = S.mean_difference(np.array([0.10, 0.11, 0.12, np.nan]), np.array([0.10, 0.10, 0.11]),
                            n_resamples=499, rng=np.random.default_rng(0))
    assert out["diff"] == pytest.approx(0.11 - 0.31 / 3)
    assert out["n"] == 3
    text = json.dumps(json_safe({"a": math.inf, "b": [math.nan, np.float64(1.5)],
                                 "c": np.int64(3), "d": np.bool_(True)}), allow_nan=False)
    assert json.loads(text) == {"a": None, "b": [None, 1.5], "c": 3, "d": True}


def test_geometric_mean_and_profile():
    assert S.geometric_mean([2.0, 8.0]) == pytest.approx(4.0)
    assert S.geometric_mean([None, math.nan]) is None
    assert S.performance_profile([1.0, 2.0, math.inf], np.array([1.0, 2.0, 4.0])) == \
        pytest.approx([1 / 3, 2 / 3, 2 / 3])


def test_speedup_is_a_ratio_of_medians_not_of_means():
    """Planted: two slow outliers in the method's arm move its mean ~18x and its median not at
    all. Ratio of medians = 2.0 / 1.05 = 1.905; ratio of means = 2.0 / 19.3 = 0.10."""
    method = np.array([0.9, 1.0, 1.0, 1.05, 1.1, 60.0, 70.0])
    base = np.array([1.8, 1.9, 2.0, 2.0, 2.1, 2.1, 2.2])
    out = S.compare_times(S.TimeSample.of(method, [False] * 7),
                          S.TimeSample.of(base, [False] * 7),
                          n_resamples=999, rng=np.random.default_rng(0))
    assert out["speedup"] == pytest.approx(2.0 / 1.05)
    assert abs(out["speedup"] - base.mean() / method.mean()) > 1.5
    assert out["speedup_note"] == "ratio of medians"
    assert out["ci_low"] <= out["speedup"] <= out["ci_high"]
    assert out["ci_high"] < 2.5
