"""Time to target: targets per workload and the first crossing of each run (AlgoPerf rule).

T = training-clock time of the first evaluation whose VALIDATION error is at or below the
target; the same crossing is recorded in examples backpropped and examples seen. A run that
never crosses is right-censored at its budget (its last train_time_s). A diverged run is
censored too and never counts as reaching the target, even when it crossed before the loss
blew up (that is recorded as `crossed_before_divergence`); since it could never have reached it
later, it is censored at the workload's budget (the longest training clock among the workload's
runs), so it stays 'at risk' in the Kaplan-Meier curve to the end instead of leaving early. A
pruned trial is censored at its own last evaluation: it might have crossed later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sbbench.analysis import record as R
from sbbench.analysis.loading import RunRecord


@dataclass(frozen=True)
class Target:
    index: int          # 0, 1, ... in the order asked for; 0 is the primary target
    value: float        # validation error
    rule: str           # how it was obtained, in words
    source: str = ""    # which runs set it, in words (empty for absolute targets)


# Said plainly wherever a factor target comes from the seeds it then times: the target is then
# chosen on the same seeds that are timed (docs/analysis.md, targets).
TIMED_SEEDS_SOURCE = ("the timed Traditional seeds themselves (no reference runs): the target "
                      "is not independent of the times it grades")


@dataclass(frozen=True)
class TargetSource:
    """Where a workload's factor targets come from: reference runs (never timed) when there are
    any, else the timed Traditional runs."""
    runs: list[RunRecord]
    description: str
    is_reference: bool

    @classmethod
    def choose(cls, timed_runs: list[RunRecord], reference_runs: list[RunRecord],
               reference_label: str) -> "TargetSource":
        usable = finished_traditional(reference_runs)
        if usable:
            return cls(usable, f"reference runs ({reference_label}; n={len(usable)}), not "
                       "timed", True)
        return cls(finished_traditional(timed_runs), TIMED_SEEDS_SOURCE, False)


def finished_traditional(runs: list[RunRecord]) -> list[RunRecord]:
    return [r for r in runs if r.method == R.TRADITIONAL and r.outcome == R.OUTCOME_OK
            and math.isfinite(r.final_val_error)]


@dataclass(frozen=True)
class Crossing:
    reached: bool
    time_s: float                   # crossing time, or the censoring time
    examples_backpropped: float     # at the crossing, or at censoring
    examples_seen: float
    outcome: str
    crossed_before_divergence: bool = False

    @property
    def time_or_inf(self) -> float:
        return self.time_s if self.reached else math.inf

    @property
    def censored(self) -> bool:
        return not self.reached


def workload_targets(runs: list[RunRecord], factors: float | tuple[float, ...],
                     absolute: tuple[float, ...], factor_with_absolute: bool = False,
                     source: TargetSource | None = None) -> tuple[list[Target], str]:
    """Targets of one workload and a note (empty when fine).

    One target per factor (the first is the primary one), each factor x the median final
    validation error of the Traditional runs of `source` (default: the timed runs themselves).
    Absolute targets replace the factor rule unless `factor_with_absolute`: then the factor
    targets come first and the absolute ones follow (report two or three targets: conclusions
    often flip with the threshold, docs/analysis.md)."""
    factors = (factors,) if isinstance(factors, (int, float)) else tuple(factors)
    absolute_targets = [float(v) for v in absolute]
    if absolute_targets and not factor_with_absolute:
        return [Target(i, v, "absolute") for i, v in enumerate(absolute_targets)], ""
    source = source or TargetSource.choose(runs, [], "")
    finals = [r.final_val_error for r in source.runs]
    if not finals:
        note = ("no finished Traditional run: no default target (give absolute targets "
                "with --target-error)")
        return [Target(i, v, "absolute") for i, v in enumerate(absolute_targets)], \
            note if not absolute_targets else ""
    median = float(np.median(finals))
    values = [(f * median, f"{f:g} x median final validation error of Traditional "
               f"({median:.4g}, n={len(finals)})", source.description) for f in factors]
    values += [(v, "absolute", "") for v in absolute_targets]
    targets: list[Target] = []
    for value, rule, where in values:
        if not any(math.isclose(value, t.value) for t in targets):
            targets.append(Target(len(targets), value, rule, where))
    return targets, ""


def first_crossing(curve: pd.DataFrame, target: float) -> int | None:
    """Row index (position) of the first evaluation with val_error <= target, else None."""
    if curve is None or len(curve) == 0:
        return None
    hits = np.flatnonzero(curve[R.M_VAL_ERROR].to_numpy(dtype=float) <= target)
    return int(hits[0]) if hits.size else None


def _at(curve: pd.DataFrame, row: int, metric: str) -> float:
    if metric not in curve:
        return math.nan
    return float(curve[metric].iloc[row])


def _last(curve: pd.DataFrame, metric: str) -> float:
    if curve is None or metric not in curve or not curve[metric].notna().any():
        return math.nan
    return float(curve[metric].dropna().iloc[-1])


def time_to_target(run: RunRecord, target: float,
                   workload_budget: dict[str, float] | None = None) -> Crossing:
    """The run's crossing of `target`, or its right-censoring.

    workload_budget: {'time_s', 'examples_backpropped', 'examples_seen'}: where a diverged run is
    censored (default: its own last values).
    """
    curve = run.curve
    row = first_crossing(curve, target)
    if row is not None and run.outcome != R.OUTCOME_DIVERGED:
        steps = curve["step"].to_numpy()
        seen = _at(curve, row, R.M_EXAMPLES_SEEN)
        return Crossing(True, _at(curve, row, R.M_TRAIN_TIME),
                        _at(curve, row, R.M_EXAMPLES_BACKPROPPED),
                        seen if math.isfinite(seen) else float(steps[row]), run.outcome)
    own = {"time_s": _last(curve, R.M_TRAIN_TIME),
           "examples_backpropped": _last(curve, R.M_EXAMPLES_BACKPROPPED),
           "examples_seen": _last(curve, R.M_EXAMPLES_SEEN)}
    if run.outcome == R.OUTCOME_DIVERGED and workload_budget:
        own = {k: _nanmax(own[k], workload_budget.get(k, math.nan)) for k in own}
    return Crossing(False, own["time_s"], own["examples_backpropped"], own["examples_seen"],
                    run.outcome, crossed_before_divergence=row is not None)


def _nanmax(a: float, b: float) -> float:
    values = [v for v in (a, b) if math.isfinite(v)]
    return max(values) if values else math.nan


def workload_budget(runs: list[RunRecord]) -> dict[str, float]:
    """The longest budget among a workload's runs (where diverged runs are censored)."""
    out = {}
    for key, metric in (("time_s", R.M_TRAIN_TIME),
                        ("examples_backpropped", R.M_EXAMPLES_BACKPROPPED),
                        ("examples_seen", R.M_EXAMPLES_SEEN)):
        values = [_last(r.curve, metric) for r in runs]
        values = [v for v in values if math.isfinite(v)]
        out[key] = max(values) if values else math.nan
    return out
