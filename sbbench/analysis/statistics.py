"""Statistics on samples of times to target (pure functions: numpy/scipy in, numbers out).

Conventions
- A sample is the event time of every run of one configuration plus a censored mask; the event
  time of a censored run is its censoring time (its budget).
- Point summaries treat censored runs as +inf (median T is inf once half the runs are censored).
- Bootstrap intervals substitute the budget (the workload's longest) for +inf and are then only
  bounds (`ci_is_bound`):
  censoring in the method's arm makes the speedup an upper bound, in the baseline's arm a lower
  bound.
- One-sided Mann-Whitney U with alternative 'less' (method times stochastically smaller),
  censored runs as +inf (ties among them count 1/2). The smallest p-value a one-sided rank test
  can reach is 1 / C(n_m + n_b, n_m); when that is not below alpha, or either arm has fewer
  than MIN_SEEDS_PER_ARM runs, the comparison is flagged `underpowered` and the reports print
  the limit instead of the p-values.
- scipy.stats.logrank: an 'event' is reaching the target. 'greater' means the first sample's
  event (hazard) rate is greater, i.e. the method reaches the target sooner; that is the
  one-sided alternative used here (not 'less', which reads like 'shorter times' but means the
  opposite).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import stats

from sbbench.analysis.record import ALPHA, MIN_SEEDS_PER_ARM

# Beyond this many distinct splits the permutation test falls back to the normal approximation.
MAX_EXACT_PERMUTATIONS = 50_000  # C(18, 9) = 48,620 splits take ~0.4 s


@dataclass(frozen=True)
class TimeSample:
    """Times to target of the runs of one configuration (event time = censoring time when
    censored). `budget`: what stands in for +inf in bootstrap intervals, the workload's longest
    budget, so that a censored run counts as slower than every run that finished (a run pruned
    early must not look fast); nan: each run's own censoring time."""
    times: np.ndarray
    censored: np.ndarray
    budget: float = math.nan

    @classmethod
    def of(cls, times: Sequence[float], censored: Sequence[bool],
           budget: float = math.nan) -> "TimeSample":
        return cls(np.asarray(times, dtype=float), np.asarray(censored, dtype=bool),
                   float(budget))

    @property
    def n(self) -> int:
        return int(self.times.size)

    @property
    def n_reached(self) -> int:
        return int((~self.censored).sum())

    @property
    def with_inf(self) -> np.ndarray:
        return np.where(self.censored, np.inf, self.times)

    @property
    def with_budget(self) -> np.ndarray:
        if not math.isfinite(self.budget):
            return self.times.copy()
        return np.where(self.censored, np.fmax(self.times, self.budget), self.times)


# --- one configuration -------------------------------------------------------------------------

def success_rate(k: int, n: int, confidence: float = 0.95) -> dict:
    if n == 0:
        return {"success_rate": None, "success_ci_low": None, "success_ci_high": None}
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence)
    return {"success_rate": k / n, "success_ci_low": float(ci.low),
            "success_ci_high": float(ci.high)}


def median_time(sample: TimeSample) -> float:
    """Median with censored runs as +inf: inf once at least half the runs are censored."""
    if sample.n == 0:
        return math.nan
    return float(np.median(sample.with_inf))


def iqm(sample: TimeSample) -> float | None:
    """Interquartile mean, only when no run is censored (else None)."""
    if sample.n == 0 or sample.censored.any():
        return None
    return float(stats.trim_mean(sample.times, 0.25))


def kaplan_meier(sample: TimeSample) -> dict:
    """Kaplan-Meier estimate of P(reached target by t), with its 95% pointwise CI."""
    if sample.n == 0:
        return {"time_s": [], "probability": [], "ci_low": [], "ci_high": []}
    data = stats.CensoredData.right_censored(sample.times, sample.censored)
    result = stats.ecdf(data)
    cdf = result.cdf
    low = high = [None] * len(cdf.quantiles)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ci = cdf.confidence_interval(0.95)
            low = [_finite_or_none(v) for v in ci.low.evaluate(cdf.quantiles)]
            high = [_finite_or_none(v) for v in ci.high.evaluate(cdf.quantiles)]
        except (ValueError, RuntimeError, ZeroDivisionError):
            pass
    return {"time_s": [float(v) for v in cdf.quantiles],
            "probability": [float(v) for v in cdf.probabilities],
            "ci_low": low, "ci_high": high}


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


# --- bootstrap ---------------------------------------------------------------------------------

def bootstrap_ci(samples: tuple[np.ndarray, ...], statistic: Callable, *, n_resamples: int,
                 rng: np.random.Generator, confidence: float = 0.95) -> tuple[float | None,
                                                                            float | None, str]:
    """(low, high, method) of a seeded BCa bootstrap interval; percentile when BCa degenerates
    (all resamples equal, a sample of one, a zero acceleration denominator); (None, None,
    reason) when no interval exists."""
    if any(len(s) == 0 for s in samples):
        return None, None, "none (empty sample)"
    if all(len(s) < 2 for s in samples):
        return None, None, "none (one run per arm)"
    methods = ["BCa", "percentile"] if all(len(s) >= 2 for s in samples) else ["percentile"]
    for method in methods:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                res = stats.bootstrap(samples, statistic, n_resamples=n_resamples,
                                      vectorized=True, paired=False, method=method,
                                      confidence_level=confidence, rng=rng)
            except (ValueError, FloatingPointError, ZeroDivisionError):
                continue
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(low) and math.isfinite(high):
            if method == "BCa":
                return low, high, "BCa"
            reason = "BCa degenerate" if "BCa" in methods else "a sample of one run"
            return low, high, f"percentile ({reason})"
    return None, None, "none (bootstrap degenerate)"


def _ratio_of_medians(base: np.ndarray, method: np.ndarray, axis: int = -1) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.median(base, axis=axis) / np.median(method, axis=axis)


def _difference_of_means(method: np.ndarray, base: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(method, axis=axis) - np.mean(base, axis=axis)


def _median(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(x, axis=axis)


def median_ci(sample: TimeSample, *, n_resamples: int, rng: np.random.Generator) -> dict:
    """Percentile bootstrap CI of the median time (budget substituted: a bound if censored)."""
    if sample.n < 2:
        return {"median_ci_low": None, "median_ci_high": None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap((sample.with_budget,), _median, n_resamples=n_resamples,
                              vectorized=True, method="percentile", rng=rng)
    return {"median_ci_low": _finite_or_none(res.confidence_interval.low),
            "median_ci_high": _finite_or_none(res.confidence_interval.high)}


# --- two samples -------------------------------------------------------------------------------

def prob_improvement(method: np.ndarray, base: np.ndarray) -> float:
    """P(T_method < T_base) + 1/2 P(tie): the Mann-Whitney U of `base` over n_m * n_b (inf ties
    with inf)."""
    m = np.asarray(method, dtype=float)[:, None]
    b = np.asarray(base, dtype=float)[None, :]
    return float(np.mean((m < b) + 0.5 * (m == b)))


def min_attainable_p(n_method: int, n_base: int) -> float:
    """Smallest one-sided p-value of a rank test for these sample sizes: 1 / C(n_m+n_b, n_m)."""
    if n_method == 0 or n_base == 0:
        return 1.0
    return 1.0 / math.comb(n_method + n_base, n_method)


def underpowered_reason(n_method: int, n_base: int, min_p: float,
                        alpha: float = ALPHA) -> str | None:
    """Why a comparison of these sizes cannot be read as evidence, or None when it can."""
    if min(n_method, n_base) < MIN_SEEDS_PER_ARM:
        return f"fewer than {MIN_SEEDS_PER_ARM} runs in an arm"
    if min_p >= alpha:
        return f"min attainable p = {min_p:.3g} >= alpha"
    return None


def mann_whitney_less(method: np.ndarray, base: np.ndarray,
                      rng: np.random.Generator) -> tuple[float, str]:
    """One-sided Mann-Whitney U (method stochastically smaller), censored runs as +inf.

    exact: no ties and n_m + n_b <= 40 (the exact U distribution); permutation: ties (censored
    runs tie at +inf) and few enough splits to enumerate them all; asymptotic (tie-corrected
    normal) otherwise.
    """
    m, b = np.asarray(method, dtype=float), np.asarray(base, dtype=float)
    if m.size == 0 or b.size == 0:
        return math.nan, "none (empty sample)"
    pooled = np.concatenate([m, b])
    ties = np.unique(pooled).size < pooled.size
    splits = math.comb(m.size + b.size, m.size)
    if np.all(pooled == pooled[0]):
        return 1.0, "none (all values equal)"
    if not ties and m.size + b.size <= 40:
        method_arg, name = "exact", "exact"
    elif splits <= MAX_EXACT_PERMUTATIONS:
        method_arg = stats.PermutationMethod(n_resamples=MAX_EXACT_PERMUTATIONS, rng=rng)
        name = "permutation (exact enumeration, ties)"
    else:
        method_arg, name = "asymptotic", "asymptotic (tie-corrected)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.mannwhitneyu(m, b, alternative="less", method=method_arg)
    return float(res.pvalue), name


def logrank_p(method: TimeSample, base: TimeSample) -> float | None:
    """One-sided log-rank p: the method reaches the target sooner (see module notes)."""
    if method.n == 0 or base.n == 0:
        return None
    if method.censored.all() and base.censored.all():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = stats.logrank(stats.CensoredData.right_censored(method.times, method.censored),
                                stats.CensoredData.right_censored(base.times, base.censored),
                                alternative="greater")
        except (ValueError, ZeroDivisionError, FloatingPointError):
            return None
    return _finite_or_none(res.pvalue)


def welch_log_p(method: TimeSample, base: TimeSample) -> float | None:
    """One-sided Welch t on log times, only when nothing is censored and each arm has 2+ runs."""
    if method.n < 2 or base.n < 2 or method.censored.any() or base.censored.any():
        return None
    if np.any(method.times <= 0) or np.any(base.times <= 0):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.ttest_ind(np.log(method.times), np.log(base.times), equal_var=False,
                              alternative="less")
    return _finite_or_none(res.pvalue)


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1); None and nan entries
    are not part of the family and stay None."""
    family = [i for i, p in enumerate(pvalues) if p is not None and math.isfinite(p)]
    m = len(family)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(family, key=lambda j: pvalues[j])):
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))
        adjusted[i] = running
    return adjusted


def compare_times(method: TimeSample, base: TimeSample, *, n_resamples: int,
                  rng: np.random.Generator, alpha: float = ALPHA) -> dict:
    """Speedup of `method` over `base` with its bootstrap CI, probability of improvement and
    the one-sided tests (see module notes)."""
    med_m, med_b = median_time(method), median_time(base)
    out: dict = {"n": method.n, "n_baseline": base.n,
                 "median_time_s": med_m, "median_time_baseline_s": med_b}
    m_sub, b_sub = method.with_budget, base.with_budget
    if method.n and base.n:
        out["speedup"] = float(_ratio_of_medians(b_sub, m_sub))
    else:
        out["speedup"] = math.nan
    censored_m, censored_b = bool(method.censored.any()), bool(base.censored.any())
    out["ci_is_bound"] = censored_m or censored_b
    out["bound_direction"] = ("upper" if censored_m and not censored_b else
                              "lower" if censored_b and not censored_m else
                              "unknown" if censored_m else None)
    if math.isfinite(med_m) and math.isfinite(med_b):
        out["speedup_note"] = "ratio of medians" + (" (budget substituted for censored runs)"
                                                    if out["ci_is_bound"] else "")
    elif math.isinf(med_m) and math.isinf(med_b):
        out["speedup_note"] = "neither median reaches the target: ratio of budgets, a bound"
    elif math.isinf(med_m):
        out["speedup_note"] = "method median never reaches the target: speedup is an upper bound"
    else:
        out["speedup_note"] = "baseline median never reaches the target: speedup is a lower bound"
    low, high, ci_method = bootstrap_ci((b_sub, m_sub), _ratio_of_medians,
                                        n_resamples=n_resamples, rng=rng)
    out.update(ci_low=low, ci_high=high, ci_method=ci_method)
    out["prob_improvement"] = prob_improvement(method.with_inf, base.with_inf) \
        if method.n and base.n else math.nan
    p, test = mann_whitney_less(method.with_inf, base.with_inf, rng)
    out.update(p_value=p, test_method=f"one-sided Mann-Whitney U, {test}")
    min_p = min_attainable_p(method.n, base.n)
    out["min_attainable_p"] = min_p
    out["underpowered_reason"] = underpowered_reason(method.n, base.n, min_p, alpha)
    out["underpowered"] = out["underpowered_reason"] is not None
    out["p_logrank"] = logrank_p(method, base)
    out["p_welch_log"] = welch_log_p(method, base)
    return out


def mean_difference(method: np.ndarray, base: np.ndarray, *, n_resamples: int,
                    rng: np.random.Generator) -> dict:
    """mean(method) - mean(base) with a BCa bootstrap CI (nan values dropped)."""
    m = np.asarray(method, dtype=float)
    b = np.asarray(base, dtype=float)
    m, b = m[np.isfinite(m)], b[np.isfinite(b)]
    if m.size == 0 or b.size == 0:
        return {"diff": None, "ci_low": None, "ci_high": None, "ci_method": "none (no data)",
                "n": int(m.size), "n_baseline": int(b.size)}
    low, high, ci_method = bootstrap_ci((m, b), _difference_of_means, n_resamples=n_resamples,
                                        rng=rng)
    return {"diff": float(m.mean() - b.mean()), "ci_low": low, "ci_high": high,
            "ci_method": ci_method, "n": int(m.size), "n_baseline": int(b.size)}


def geometric_mean(values: Sequence[float]) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    if not values:
        return None
    return float(math.exp(sum(math.log(v) for v in values) / len(values)))


def performance_profile(ratios: Sequence[float], taus: np.ndarray) -> list[float]:
    """Fraction of problems whose ratio to the best is <= tau (inf ratios never count)."""
    r = np.asarray(ratios, dtype=float)
    if r.size == 0:
        return [0.0] * len(taus)
    return [float(np.mean(r <= t)) for t in taus]
