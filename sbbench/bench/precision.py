"""How precisely `sbbench bench` knows its headline numbers, and how many repeats it runs.

Every headline quantity (SB's, StaleSB's and the free-selection control's efficiency, and the
share of an SB epoch that SB's selection takes) has one value per repeat, computed inside the
repeat from runs that ran back to back (paired): a slow stretch of the machine moves both sides
of the pair. The repeats are independent draws of that paired value.

Point estimate: the **mean** of the per-repeat values, with a **Student t 95% interval**
(mean +- t(0.975, n - 1) x sd / sqrt(n)). Why the mean and not the median:
- the t-interval is exact for normal noise at any n, and its half-width shrinks as 1 / sqrt(n),
  which is what a stop rule can plan on. The distribution-free interval for a median (order
  statistics, the sign test) jumps between order statistics: its coverage is 96-99% rather
  than 95%, and it is about 25% wider under normal noise, so it needs about 1.6 times the
  repeats for the same half-width;
- a slow outlier moves the mean, but it also widens the t-interval: the rule then runs more
  repeats, or says the machine cannot resolve the number, instead of hiding the noise. The
  median of the repeats is reported beside the mean.

Stop rule (`stop_reason`): run at least `min_repeats`; stop as soon as every controlled
quantity's half-width is under the target; otherwise stop at `max_repeats`, or before a repeat
that would overrun the time budget, and say plainly which quantity the machine could not
resolve. Stopping on the half-width makes the final interval a little optimistic (a run that
happens to look quiet stops early); the tests measure the whole procedure's coverage on
simulated repeats.

Pure functions only: `runner.py` feeds them measured values, the tests synthetic ones.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Mapping, Sequence

from scipy import stats

LEVEL = 0.95
TARGET_HALF_WIDTH = 0.03  # 3 points of efficiency, or of the selection share
ESTIMATOR = "mean of the paired per-repeat values"
INTERVAL = "Student t 95% interval on the per-repeat values"

RESOLVED = "resolved"
MAX_REPEATS = "max_repeats"
BUDGET = "budget"


@dataclass(frozen=True)
class Interval:
    estimate: float     # mean of the per-repeat values
    ci_low: float
    ci_high: float
    half_width: float   # inf below two repeats
    n_repeats: int
    median: float
    sd: float           # sample standard deviation of the per-repeat values

    def resolved(self, target: float = TARGET_HALF_WIDTH) -> bool:
        return self.half_width < target

    def repeats_needed(self, target: float = TARGET_HALF_WIDTH) -> int | None:
        """Repeats for a half-width under `target` at this spread (None below two repeats)."""
        if self.n_repeats < 2:
            return None
        n = max(2, math.ceil((stats.norm.ppf(0.5 + LEVEL / 2) * self.sd / target) ** 2))
        while stats.t.ppf(0.5 + LEVEL / 2, n - 1) * self.sd / math.sqrt(n) >= target:
            n += 1  # the normal quantile is below t's: a few steps up at most
        return n

    def as_dict(self) -> dict:
        def finite(x: float) -> float | None:
            return x if math.isfinite(x) else None  # strict JSON has no Infinity

        return {"estimate": self.estimate, "ci_low": finite(self.ci_low),
                "ci_high": finite(self.ci_high), "half_width": finite(self.half_width),
                "n_repeats": self.n_repeats, "median": self.median, "sd": finite(self.sd),
                "level": LEVEL}


def t_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """The mean of `values` and its Student t interval (infinitely wide below two values)."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        raise ValueError("t_interval of no values")
    mean = statistics.fmean(values)
    median = statistics.median(values)
    if n < 2:
        return Interval(mean, -math.inf, math.inf, math.inf, n, median, math.nan)
    sd = statistics.stdev(values)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, half, n, median, sd)


def intervals(per_repeat: Mapping[str, Sequence[float]]) -> dict[str, Interval]:
    return {name: t_interval(values) for name, values in per_repeat.items()}


@dataclass(frozen=True)
class RepeatPlan:
    min_repeats: int
    max_repeats: int
    budget_s: float | None = None       # wall-clock seconds for the timed repeats
    target_half_width: float = TARGET_HALF_WIDTH

    def __post_init__(self):
        if not 1 <= self.min_repeats <= self.max_repeats:
            raise ValueError(f"min_repeats={self.min_repeats}, max_repeats={self.max_repeats}; "
                             "allowed: 1 <= min_repeats <= max_repeats")


def stop_reason(controlled: Mapping[str, Interval], n_repeats: int, elapsed_s: float,
                plan: RepeatPlan) -> str | None:
    """Why to stop after `n_repeats` repeats that took `elapsed_s` seconds, or None to run
    another. RESOLVED once every controlled half-width is under the target; MAX_REPEATS or
    BUDGET (the next repeat, at the mean repeat time so far, would overrun it) otherwise."""
    if n_repeats < plan.min_repeats:
        return None
    if all(interval.resolved(plan.target_half_width) for interval in controlled.values()):
        return RESOLVED
    if n_repeats >= plan.max_repeats:
        return MAX_REPEATS
    if plan.budget_s is not None and elapsed_s + elapsed_s / n_repeats > plan.budget_s:
        return BUDGET
    return None


def resolution_lines(controlled: Mapping[str, Interval], labels: Mapping[str, str],
                     reason: str | None, target: float = TARGET_HALF_WIDTH,
                     budget_s: float | None = None) -> list[str]:
    """One line per controlled quantity: resolved, or plainly what this machine cannot do."""
    points = f"+-{target * 100:g} points"
    ended = {MAX_REPEATS: "the repeat limit reached",
             BUDGET: f"the {budget_s:g} s budget spent" if budget_s else "the time budget spent"}
    lines = []
    for name, interval in controlled.items():
        label = labels.get(name, name)
        n = interval.n_repeats
        if interval.resolved(target):
            lines.append(f"  {label}: resolved to {points} in {n} repeats "
                         f"(half-width {interval.half_width:.3f})")
            continue
        needed = interval.repeats_needed(target)
        tail = f"; at this spread about {needed} repeats would" if needed else ""
        why = f", {ended[reason]}" if reason in ended else ""
        lines.append(f"  this machine cannot resolve {label} to {points} in {n} repeats "
                     f"(half-width {interval.half_width:.3f}{why}{tail})")
    return lines


def bound_warning(label: str, interval: Interval) -> str | None:
    """A warning line when an efficiency's point estimate is above its bound (1.0), else None.

    Within noise when the interval still reaches 1; beyond it, the bound itself is too low
    for that run (its r or s underestimated): no implementation beats its bound."""
    if not interval.estimate > 1.0:
        return None
    ci = f"95% CI {interval.ci_low:.3f}-{interval.ci_high:.3f}"
    estimate = above_one(interval.estimate)
    if interval.ci_low <= 1.0:
        return f"! {label} efficiency {estimate} is above its bound: within noise ({ci})"
    return (f"! {label} efficiency {estimate} is above its bound beyond noise ({ci}): the "
            "bound's r (or s) is underestimated for this run")


def above_one(value: float) -> str:
    """A value above 1 printed so that it reads above 1 (1.0001 is not "1.000")."""
    for digits in range(3, 10):
        text = f"{value:.{digits}f}"
        if float(text) > 1.0 or value <= 1.0:
            return text
    return repr(value)
