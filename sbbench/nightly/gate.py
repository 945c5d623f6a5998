"""The nightly gate: does tonight's value of one metric regress against its history?

Pure functions, no I/O, no tracking. The rule (README, "Nightly jobs"):

- >= `min_history` (5) earlier nights: tonight regresses when it falls outside the one-sided
  prediction interval of the history (Student t, level `level`, default 0.999: mean -/+
  t_{level, n-1} * sd * sqrt(1 + 1/n) on the worse side) AND it is worse than the history median
  by at least max(tolerance (5%), cv_factor (3) x the history's coefficient of variation).
  Both are demanded: the interval alone fires on a quiet metric for a change nobody cares about,
  the relative change alone fires on a noisy one.
- 1..4 earlier nights (a short history, said so): tonight's per-run values against every run of
  those nights pooled, a one-sided exact Mann-Whitney test at `short_alpha` (where the run counts
  cannot reach that level: every run of tonight worse than every earlier run) AND a worsening
  of tonight's median against the pooled median by at least max(2 x tolerance, cv_factor x the
  CV of the pooled runs). Pooling matters: 3 runs against one night's 3 reach p = 0.05 only by
  complete separation, so on a noisy machine a halved throughput passed; against 3 nights' 9
  runs p can reach 1/220 and a few inversions are tolerated. The doubled floor stands for what a
  rank test between runs cannot see: a few nights barely show how far a whole night moves (the
  machine's state shifts all of its runs at once).
- no earlier night: tonight is the baseline.

The minimum change is capped at `max_threshold` (25%): on a noisy history 3 x CV can exceed 100%,
and a cap-less gate would then wave through even a halved throughput. Where the history is that
noisy (3 x CV above the cap, or an interval wider than the cap) the verdict says so ("history
too noisy", naming the CV): changes smaller than that cannot be told from noise, and the report
lists such metrics instead of passing them silently.

With M metrics checked at per-metric level a, the chance of at least one false alarm a night is
1 - (1 - a)^M on independent metrics (`family_false_alarm`); the relative-change floor and the
confirmation re-run (sbbench/nightly/night.py) bring it lower.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Sequence

HIGHER = "higher"   # higher is better (throughput, speedup, efficiency)
LOWER = "lower"     # lower is better (time to target, error)

REGRESSION = "regression"
OK = "ok"
BETTER = "better"
BASELINE = "baseline"
NO_DATA = "no data"

RULE_INTERVAL = "prediction interval"
RULE_SHORT = "short history"
RULE_BASELINE = "baseline"


@dataclass(frozen=True)
class GateSettings:
    level: float = 0.999          # one-sided prediction interval, per metric
    tolerance: float = 0.05       # minimum relative worsening (fraction of the history median)
    cv_factor: float = 3.0        # ... or this many coefficients of variation, if larger
    min_history: int = 5          # nights needed for the interval rule
    short_alpha: float = 0.05     # one-sided rank test level of the short-history rule
    # 1-4 nights barely show how much a night moves as a whole (machine state shifts all of its
    # runs at once, which a rank test between two nights cannot see): the floor doubles there.
    short_tolerance_factor: float = 2.0
    # The minimum change never demands more than this worsening (a fraction of the reference):
    # a halved throughput (-50%) or a doubled time (+100%) always clears it. A history whose
    # 3 x CV is larger than this is reported as too noisy to resolve smaller changes.
    max_threshold: float = 0.25

    def validate(self) -> None:
        problems = []
        if not 0.5 < self.level < 1:
            problems.append(("level", self.level, "a number in (0.5, 1), e.g. 0.999"))
        if not 0 <= self.tolerance < 1:
            problems.append(("tolerance", self.tolerance, "a fraction in [0, 1), e.g. 0.05"))
        if not self.cv_factor >= 0:
            problems.append(("cv_factor", self.cv_factor, "a number >= 0"))
        if not (isinstance(self.min_history, int) and self.min_history >= 2):
            problems.append(("min_history", self.min_history, "an integer >= 2"))
        if not self.tolerance <= self.max_threshold < 1:
            problems.append(("max_threshold", self.max_threshold,
                             f"a fraction in [tolerance ({self.tolerance:g}), 1), e.g. 0.25"))
        if not 0 < self.short_alpha < 1:
            problems.append(("short_alpha", self.short_alpha, "a number in (0, 1)"))
        if problems:
            name, value, allowed = problems[0]
            raise ValueError(f"invalid {name}={value!r}; allowed: {allowed}")


@dataclass(frozen=True)
class MetricVerdict:
    metric: str
    direction: str
    tonight: float | None
    verdict: str                    # regression | ok | better | baseline | no data
    rule: str                       # prediction interval | short history | baseline
    history_n: int = 0
    history_median: float | None = None
    history_cv: float | None = None
    band_limit: float | None = None  # edge of the accepted band on the worse side
    change: float | None = None      # (tonight - history median) / |history median|, signed
    worsening: float | None = None   # change expressed so that > 0 means worse
    threshold: float | None = None   # worsening needed (max(tolerance, cv_factor x cv))
    p_value: float | None = None     # short-history rank test
    evidence: str = ""
    history_mean: float | None = None
    # tonight alarms beyond this value (the interval limit and the minimum change combined; in
    # a short history, the minimum change from the pooled earlier runs)
    alarm_edge: float | None = None
    # the history is too noisy to resolve the tolerance: 3 x CV (or the interval) reaches past
    # the cap of the minimum change; `noise` says so in words
    too_noisy: bool = False
    noise: str = ""

    @property
    def regressed(self) -> bool:
        return self.verdict == REGRESSION

    def as_dict(self) -> dict:
        return asdict(self)


def _finite(values: Sequence[float] | None) -> list[float]:
    if values is None:
        return []
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var)


def worsening(tonight: float, reference: float, direction: str) -> float:
    """Relative change against `reference`, positive when tonight is worse."""
    if reference == 0:
        return 0.0 if tonight == reference else math.copysign(math.inf, (
            reference - tonight) if direction == HIGHER else (tonight - reference))
    change = (tonight - reference) / abs(reference)
    return -change if direction == HIGHER else change


@functools.lru_cache(maxsize=256)
def _t_quantile(level: float, dof: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(level, dof))


def prediction_limit(history: Sequence[float], level: float, direction: str) -> float:
    """The worse-side edge of the one-sided t prediction interval for one new value."""
    n = len(history)
    mean, sd = _mean_sd(history)
    half = _t_quantile(level, n - 1) * sd * math.sqrt(1 + 1 / n)
    return mean - half if direction == HIGHER else mean + half


def rank_test_p(tonight: Sequence[float], reference: Sequence[float], direction: str) -> float:
    """One-sided exact Mann-Whitney p that tonight's runs are worse than the reference's."""
    from scipy import stats

    alternative = "less" if direction == HIGHER else "greater"
    method = "exact" if len(set(tonight) | set(reference)) == len(tonight) + len(reference) \
        else "asymptotic"
    return float(stats.mannwhitneyu(tonight, reference, alternative=alternative,
                                    method=method).pvalue)


def smallest_rank_p(n_tonight: int, n_reference: int) -> float:
    """The smallest one-sided p an exact Mann-Whitney test can give with these counts."""
    return 1.0 / math.comb(n_tonight + n_reference, n_tonight)


def _fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def judge(metric: str, direction: str, tonight_samples: Sequence[float],
          history: Sequence[float], last_good_samples: Sequence[float] | None,
          settings: GateSettings = GateSettings(),
          history_runs: Sequence[float] | None = None) -> MetricVerdict:
    """The verdict on one metric. `tonight_samples`: tonight's per-run values (the night's value
    is their median); `history`: one value per earlier night (oldest first); `last_good_samples`:
    the per-run values of the latest of those nights and `history_runs` the per-run values of
    all of them (both for the short-history rule)."""
    samples = _finite(tonight_samples)
    if not samples:
        return MetricVerdict(metric, direction, None, NO_DATA, RULE_BASELINE,
                             evidence="no value tonight")
    tonight = _median(samples)
    past = _finite(history)
    if not past:
        return MetricVerdict(metric, direction, tonight, BASELINE, RULE_BASELINE,
                             evidence="first night of this series: tonight is the baseline")
    center = _median(past)
    change = (tonight - center) / abs(center) if center else 0.0
    worse = worsening(tonight, center, direction)
    if len(past) >= settings.min_history:
        mean, sd = _mean_sd(past)
        cv = sd / abs(mean) if mean else 0.0
        threshold, capped = _threshold(settings.tolerance, cv, settings)
        limit = prediction_limit(past, settings.level, direction)
        interval_width = worsening(limit, center, direction)
        outside = tonight < limit if direction == HIGHER else tonight > limit
        big = worse >= threshold
        verdict = REGRESSION if outside and big else OK
        if not outside and not big:
            # symmetric check for a notable improvement (informational, never an alarm)
            upper = 2 * mean - limit
            if (tonight > upper if direction == HIGHER else tonight < upper) and \
                    -worse >= threshold:
                verdict = BETTER
        side = "below" if direction == HIGHER else "above"
        evidence = (f"tonight {_fmt(tonight)} {'is' if outside else 'is not'} {side} the "
                    f"{settings.level:g} prediction limit {_fmt(limit)} of {len(past)} nights "
                    f"(median {_fmt(center)}, cv {cv:.1%}); worse by {worse:+.1%} vs needed "
                    f"{threshold:.1%}")
        noise = _noise_text(cv, settings, capped, interval_width)
        if noise:
            evidence += "; " + noise
        return MetricVerdict(metric, direction, tonight, verdict, RULE_INTERVAL, len(past),
                             center, cv, limit, change, worse, threshold, None, evidence,
                             history_mean=mean, alarm_edge=_edge(limit, center, threshold,
                                                                 direction),
                             too_noisy=bool(noise), noise=noise)
    # Short history: tonight's runs against every run of the earlier nights, pooled (the last
    # good night's runs alone where only they are known, its median as the last resort).
    reference = _finite(history_runs) or _finite(last_good_samples) or [past[-1]]
    pooled = bool(_finite(history_runs))
    ref_median = _median(reference)
    worse_ref = worsening(tonight, ref_median, direction)
    p = rank_test_p(samples, reference, direction)
    floor = smallest_rank_p(len(samples), len(reference))
    if floor <= settings.short_alpha:
        significant = p <= settings.short_alpha
        test_text = f"rank test p={p:.3g} (level {settings.short_alpha:g})"
    else:
        # The run counts cannot reach the level: demand complete separation instead.
        significant = p <= floor * (1 + 1e-9)
        test_text = (f"rank test p={p:.3g}; {len(samples)} vs {len(reference)} runs cannot "
                     f"reach {settings.short_alpha:g}, so every run must be worse")
    # The same minimum change as the interval rule, the spread taken over every run of the
    # short history (within- and between-night noise; a CV of 1-4 night medians is no estimate).
    spread = reference if pooled else (past if len(past) >= 2 else reference)
    cv = 0.0
    if len(spread) >= 2:
        mean, sd = _mean_sd(spread)
        cv = sd / abs(mean) if mean else 0.0
    threshold, capped = _threshold(settings.short_tolerance_factor * settings.tolerance, cv,
                                   settings)
    big = worse_ref >= threshold
    verdict = REGRESSION if significant and big else OK
    against = (f"the median of the {len(reference)} runs of {len(past)} earlier night(s)"
               if pooled else "the last good night's median")
    evidence = (f"short history ({len(past)} earlier night(s) < {settings.min_history}): "
                f"tonight {_fmt(tonight)} ({len(samples)} runs) vs {against} "
                f"{_fmt(ref_median)}, worse by "
                f"{worse_ref:+.1%} vs needed {threshold:.1%}; {test_text}")
    noise = _noise_text(cv, settings, capped, None)
    if noise:
        evidence += "; " + noise
    # The report's median and change are the ones the rule judged: against the reference runs.
    change_ref = (tonight - ref_median) / abs(ref_median) if ref_median else 0.0
    return MetricVerdict(metric, direction, tonight, verdict, RULE_SHORT, len(past), ref_median,
                         cv, None, change_ref, worse_ref, threshold, p, evidence,
                         alarm_edge=_edge(None, ref_median, threshold, direction),
                         too_noisy=bool(noise), noise=noise)


def _threshold(floor: float, cv: float, settings: GateSettings) -> tuple[float, bool]:
    """The minimum worsening: max(floor, cv_factor x cv), capped at `max_threshold` (never
    below the floor). Also whether the cap cut it."""
    wanted = max(floor, settings.cv_factor * cv)
    cap = max(settings.max_threshold, floor)
    return min(wanted, cap), wanted > cap


def _noise_text(cv: float, settings: GateSettings, capped: bool,
                interval_width: float | None) -> str:
    """'history too noisy ...' where the history cannot resolve the tolerance, else ''."""
    wide = interval_width is not None and interval_width > settings.max_threshold
    if not capped and not wide:
        return ""
    reasons = []
    if capped:
        reasons.append(f"{settings.cv_factor:g} x CV = {settings.cv_factor * cv:.0%} exceeds "
                       f"the cap {settings.max_threshold:.0%}")
    if wide:
        reasons.append(f"the {settings.level:g} prediction interval reaches "
                       f"{interval_width:.0%} worse than the median")
    resolvable = max(settings.max_threshold, interval_width if wide else 0.0)
    return (f"history too noisy: CV {cv:.1%} ({'; '.join(reasons)}); changes under "
            f"{resolvable:.0%} cannot be told from noise")


def _edge(limit: float | None, reference: float, threshold: float, direction: str) -> float:
    """Where tonight starts to alarm: beyond the interval limit AND the minimum change."""
    by_change = reference * (1 - threshold) if direction == HIGHER else \
        reference * (1 + threshold)
    if limit is None:
        return by_change
    return min(limit, by_change) if direction == HIGHER else max(limit, by_change)


def family_false_alarm(level: float, n_metrics: int) -> float:
    """Chance of at least one false alarm a night over `n_metrics` independent metrics checked at
    per-metric level `level` by the interval alone: 1 - level^M."""
    return 1.0 - level ** n_metrics


def night_alarms(verdicts: Sequence[MetricVerdict]) -> list[MetricVerdict]:
    return [v for v in verdicts if v.regressed]
