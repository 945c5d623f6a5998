"""The verdict rules: how a measured comparison becomes reproduced / not reproduced /
inconclusive. Pure functions on the analysis' comparison rows (summary.json) and p-values;
`RULES_MARKDOWN` is the text printed in docs/results.md, written from the same constants."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sbbench.analysis.record import ALPHA, MIN_SEEDS_PER_ARM

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
NOT_RUN = "not run yet"
NOT_MEASURED = "not measured"    # the study ran but holds no runs for this comparison

POWER = 0.8                      # the power a seed estimate aims for


@dataclass(frozen=True)
class Decision:
    verdict: str
    reason: str


def usable_p(p: float | None) -> float | None:
    return p if isinstance(p, (int, float)) and math.isfinite(p) else None


def speedup_verdict(row: dict, factor: float, p_faster: float | None,
                    p_slower: float | None, alpha: float = ALPHA) -> Decision:
    """The verdict on 'the method is `factor` x faster to the target than the baseline'.

    row: a comparison (summary.json keys speedup, ci_low, ci_high, bound_direction, n,
    n_baseline, underpowered); p_faster / p_slower: the one-sided p-values (already adjusted
    for the family) that the method is faster / slower.
    """
    if row.get("underpowered"):
        return Decision(INCONCLUSIVE, f"n too small ({row.get('n')} vs {row.get('n_baseline')} "
                        f"runs: {row.get('underpowered_reason') or 'cannot reach alpha'})")
    bound = row.get("bound_direction")
    high = row.get("ci_high")
    # An interval that is a lower bound (censored baseline) cannot show the speedup is small.
    high_readable = high is not None and bound not in ("lower", "unknown")
    p_faster, p_slower = usable_p(p_faster), usable_p(p_slower)
    if p_slower is not None and p_slower < alpha:
        return Decision(NOT_REPRODUCED, f"significantly slower (p = {p_slower:.2g})")
    if high_readable and high < factor:
        return Decision(NOT_REPRODUCED, f"95% CI upper end {high:.2f} < claimed {factor:g}x")
    if p_faster is not None and p_faster < alpha:
        if factor <= 1.0:
            return Decision(REPRODUCED, f"significantly faster (p = {p_faster:.2g})")
        # an upper-bound interval (censored method runs) cannot show the claim is reachable
        if high is not None and high >= factor and bound not in ("upper", "unknown"):
            return Decision(REPRODUCED, f"significantly faster (p = {p_faster:.2g}) and the "
                            f"95% CI reaches {factor:g}x")
    return Decision(INCONCLUSIVE, "neither significantly faster with the claim inside the CI "
                    "nor excluded")


def all_of(decisions: list[Decision]) -> Decision:
    """A claim made of several comparisons (robustness at every noise rate): reproduced when
    every one is, not reproduced when any one is, inconclusive otherwise."""
    if not decisions:
        return Decision(NOT_MEASURED, "no comparison")
    verdicts = [d.verdict for d in decisions]
    if any(v == NOT_REPRODUCED for v in verdicts):
        return Decision(NOT_REPRODUCED, f"{verdicts.count(NOT_REPRODUCED)} of {len(verdicts)} "
                        "not reproduced")
    if all(v == REPRODUCED for v in verdicts):
        return Decision(REPRODUCED, f"all {len(verdicts)} reproduced")
    return Decision(INCONCLUSIVE, f"{verdicts.count(REPRODUCED)} of {len(verdicts)} reproduced, "
                    "none refuted")


def share_verdict(p_more: float | None, p_less: float | None, n: int, n_control: int,
                  alpha: float = ALPHA) -> Decision:
    """'SB spends its backward passes on hard examples': SB's per-run share of backward passes
    on the highest-loss quartile against the control's (Random; or uniform 25%)."""
    if n < MIN_SEEDS_PER_ARM or (n_control and n_control < MIN_SEEDS_PER_ARM):
        return Decision(INCONCLUSIVE, f"n too small ({n} vs {n_control or 'uniform'} runs; "
                        f"at least {MIN_SEEDS_PER_ARM} per arm)")
    p_more, p_less = usable_p(p_more), usable_p(p_less)
    if p_more is not None and p_more < alpha:
        return Decision(REPRODUCED, f"share significantly above the control (p = {p_more:.2g})")
    if p_less is not None and p_less < alpha:
        return Decision(NOT_REPRODUCED, f"share significantly below the control "
                        f"(p = {p_less:.2g})")
    return Decision(INCONCLUSIVE, "share not significantly different from the control")


RULES_MARKDOWN = f"""\
Every verdict follows these rules; alpha = {ALPHA}.

- **Speedup claims** ("X is c x faster to the target than B"; c = 1 for "faster than"). The
  speedup is the analysis' ratio of median times to target, median(T_B) / median(T_X), with its
  95% BCa bootstrap interval; the test is the one-sided Mann-Whitney U on the times to target,
  runs that never reached the target counting as +inf.
  - **not reproduced**: X is significantly *slower* than B (the reverse one-sided test, same
    adjustment), or the interval's upper end is below c (the interval excludes the claim).
  - **reproduced**: X is significantly faster than B and, for c > 1, the interval reaches c
    (the claimed size is not excluded).
  - **inconclusive**: anything else, and always when either arm has fewer than
    {MIN_SEEDS_PER_ARM} runs or no rank test of these sizes can reach alpha. The row then says how
    many seeds per arm would settle it (below).
  - With censored runs the interval is a bound: an upper bound (the method's arm has runs that
    never reached the target) is never used to call a claim reproduced, a lower bound (the
    baseline's arm has) never to call it not reproduced.
- **Multiplicity.** The four speedup claims of the main study (SB 1.5x and StaleSB 2x vs
  Traditional, SB vs Katharopoulos18, StaleSB vs SB) at the primary target (1.4 x Traditional's
  median final validation error) are one confirmatory family: their p-values (both directions)
  are Holm-adjusted over those four. The robustness claim's comparisons (SB vs Traditional at
  each noise rate) are a second family, Holm-adjusted over the noise rates. Everything else
  (the tight 1.1 x target, SB vs Random, the per-example shares) is exploratory: raw p-values,
  and its verdicts are labelled exploratory.
- **Robustness to randomized labels**: reproduced when SB is faster than Traditional
  (the rule above with c = 1) at every noise rate from 0.1% to 20%; not reproduced when it is
  not reproduced at any of them; inconclusive otherwise.
- **Hard examples**: per SB run, the share of its backward passes spent on the quarter of the
  training examples with the highest last recorded loss (per_example.csv.gz; uniform
  selection gives 25%), against the same share in the Random runs (the control with the same
  keep rate; the 25% of uniform selection when there are no Random runs). Reproduced when
  SB's shares are significantly higher (one-sided Mann-Whitney U; a one-sided Wilcoxon
  signed-rank test against 25% without Random runs), not reproduced when significantly lower,
  inconclusive otherwise or with fewer than {MIN_SEEDS_PER_ARM} runs per arm. The last recorded
  loss is read after the selection acted on it (backpropped examples have lower losses), which
  works against the claim.
- **Seeds to settle an inconclusive comparison**: from the observed spread of log times to
  target (pooled over both arms, budget in place of censored runs), the number n of seeds per
  arm at which a one-sided test at the adjusted alpha (alpha / family size) has {POWER:.0%} power
  to detect the observed speedup (or, when the observed speedup is below the claimed c, at
  which the 95% interval is expected to exclude c), normal approximation on log times with
  Mann-Whitney's efficiency 3/pi, and never below what a rank test needs to reach that alpha.
  The smaller of the two applies. It is an estimate from the runs at hand, not a promise. No
  estimate is given when the median run of either arm never reached the target: more seeds do
  not change that, a longer budget may.
- **not run yet**: the study has no finished runs in the tracking store; the rows fill in when
  `sbbench verdict` is run again after it finishes.
"""
