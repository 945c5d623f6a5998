"""How many seeds per arm would settle an inconclusive comparison: a power estimate from the
observed spread of log times to target (see rules.RULES_MARKDOWN)."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from sbbench.analysis.record import ALPHA, MIN_SEEDS_PER_ARM
from sbbench.verdict.rules import POWER

MAX_SEEDS = 1000                 # beyond this the estimate says "> 1000"
MW_EFFICIENCY = 3.0 / math.pi    # Mann-Whitney's asymptotic relative efficiency to the t-test


def log_times(runs: list[dict], budget: float | None) -> np.ndarray:
    """Log times to target of one arm (summary.json `runs`), the budget for runs that never
    reached the target."""
    values = []
    for run in runs:
        t = run.get("time_s")
        if not run.get("reached") and budget is not None and math.isfinite(budget):
            t = max(t or 0.0, budget)
        if t is not None and math.isfinite(t) and t > 0:
            values.append(math.log(t))
    return np.asarray(values, dtype=float)


def pooled_sd(a: np.ndarray, b: np.ndarray) -> float | None:
    parts = [x for x in (a, b) if x.size >= 2]
    if not parts:
        return None
    dof = sum(x.size - 1 for x in parts)
    var = sum(float(np.var(x, ddof=1)) * (x.size - 1) for x in parts) / dof
    return math.sqrt(var) if var > 0 else None


def min_rank_n(alpha: float) -> int:
    """The smallest n per arm at which a one-sided rank test can reach `alpha`."""
    n = MIN_SEEDS_PER_ARM
    while 1.0 / math.comb(2 * n, n) >= alpha:
        n += 1
    return n


def _n_for(delta: float, sd: float, z_alpha: float) -> float:
    z_beta = stats.norm.ppf(POWER)
    return 2.0 * ((z_alpha + z_beta) * sd / delta) ** 2 / MW_EFFICIENCY


def seeds_to_settle(speedup: float | None, factor: float, sd: float | None,
                    family_size: int = 1, alpha: float = ALPHA) -> tuple[int | None, str]:
    """(seeds per arm, how it was reckoned); (None, why) when no estimate is possible."""
    if sd is None or speedup is None or not math.isfinite(speedup) or speedup <= 0:
        return None, "no estimate (too few runs reached the target to measure a spread)"
    adjusted = alpha / max(family_size, 1)
    z_one = stats.norm.ppf(1 - adjusted)
    z_two = stats.norm.ppf(1 - alpha / 2)
    d = math.log(speedup)
    candidates = []
    if abs(d) > 1e-12:
        what = "faster" if d > 0 else "slower"
        candidates.append((_n_for(abs(d), sd, z_one), f"to show it {what}"))
    if speedup < factor:
        candidates.append((_n_for(math.log(factor) - d, sd, z_two),
                           f"for the CI to exclude {factor:g}x"))
    if not candidates:
        return None, f"no estimate (observed speedup {speedup:.2f}: no effect to detect)"
    n, why = min(candidates)
    floor = min_rank_n(adjusted)
    n_int = max(floor, math.ceil(n))
    if n_int > MAX_SEEDS:
        return MAX_SEEDS + 1, f"more than {MAX_SEEDS} {why} (spread sd(log T) = {sd:.2f})"
    return n_int, f"{why} ({POWER:.0%} power, sd(log T) = {sd:.2f})"
