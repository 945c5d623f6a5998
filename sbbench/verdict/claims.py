"""The paper's claims against what the studies measured: one row per claim (and per target,
per noise rate), each with its numbers and a verdict under rules.py."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sbbench.analysis import statistics as S
from sbbench.analysis.comparisons import rng_for
from sbbench.analysis.loading import parse_value
from sbbench.analysis.record import FAMILY_CONFIRMATORY, FAMILY_EXPLORATORY
from sbbench.verdict import power, rules
from sbbench.verdict import selection as SEL

FAMILY_ROBUSTNESS = "confirmatory (noise rates)"
PRIMARY, TIGHT = 0, 1
DEFAULT_SETTING = {"beta": 3, "staleness": 3}   # the paper's defaults, preferred when several
NOISE_RANGE = (0.001, 0.2)                      # the paper's 0.1% to 20% randomized labels


@dataclass(frozen=True)
class SpeedupClaim:
    key: str
    text: str
    paper: str
    method: str
    baseline: str
    factor: float


SPEEDUP_CLAIMS = (
    SpeedupClaim("sb_traditional", "SB reaches the target 1.5x faster than Traditional",
                 "1.5x (CIFAR10; 1.2x CIFAR100, 3.5x SVHN)", "sb", "traditional", 1.5),
    SpeedupClaim("stale_sb_traditional", "StaleSB reaches the target 2x faster than "
                 "Traditional", "2x (CIFAR10; 1.6x CIFAR100, 5x SVHN)", "stale_sb",
                 "traditional", 2.0),
    SpeedupClaim("sb_kath18", "SB is faster than Katharopoulos18", "1.02-1.8x", "sb", "kath18",
                 1.0),
    SpeedupClaim("stale_sb_sb", "StaleSB is faster than SB", "1.26x", "stale_sb", "sb", 1.0),
)
SB_RANDOM = SpeedupClaim("sb_random", "SB is faster than Random (the selection itself helps)",
                         "not claimed (Random is sbbench's control)", "sb", "random", 1.0)


@dataclass
class ClaimRow:
    claim: str
    paper: str
    study: str
    verdict: str
    reason: str = ""
    target: str = ""
    comparison: str = ""          # "SB vs Traditional"
    speedup: str = "-"
    p: str = "-"
    n: str = "-"
    seeds: str = "-"
    family: str = ""
    extra: dict = field(default_factory=dict)


# --- reading summary.json ----------------------------------------------------------------------

def _is_zero_noise(workload: dict) -> bool:
    value = parse_value(str(workload.get("params", {}).get("label_noise", "0")))
    return value in (None, 0, 0.0)


def noise_of(workload: dict) -> float:
    value = parse_value(str(workload.get("params", {}).get("label_noise", "0")))
    return float(value) if isinstance(value, (int, float)) else 0.0


def main_workload(summary: dict) -> dict | None:
    workloads = summary.get("workloads") or []
    clean = [w for w in workloads if _is_zero_noise(w)]
    return (clean or workloads or [None])[0]


def _default_rank(config: dict) -> int:
    """0 for the paper's default setting (beta 3, staleness 3), more the further from it."""
    rank = 0
    for key, value in DEFAULT_SETTING.items():
        if key in config and parse_value(str(config[key])) != value:
            rank += 1
    return rank


def config_row(summary: dict, workload: str, method: str, target_index: int) -> dict | None:
    rows = [r for r in summary.get("configurations", []) if r["workload"] == workload
            and r["method"] == method and r["target_index"] == target_index]
    return min(rows, key=lambda r: (_default_rank(r["config"]), r["label"])) if rows else None


def comparison_row(summary: dict, workload: str, method: str, baseline: str,
                   target_index: int) -> dict | None:
    rows = [c for c in summary.get("comparisons", []) if c["workload"] == workload
            and c["method"] == method and c["baseline"] == baseline
            and c["target_index"] == target_index]
    return min(rows, key=lambda r: (_default_rank(r["config"]), r["label"])) if rows else None


def time_sample(row: dict) -> S.TimeSample:
    runs = row["runs"]
    budget = row.get("budget_time_s")
    return S.TimeSample.of([r["time_s"] if r["time_s"] is not None else math.nan for r in runs],
                           [not r["reached"] for r in runs],
                           budget if budget is not None else math.nan)


# --- measuring ---------------------------------------------------------------------------------

@dataclass
class Measured:
    row: dict                  # comparison keys (speedup, ci_low, ci_high, n, ...)
    p_faster: float | None     # raw one-sided p, method faster
    p_slower: float | None     # raw one-sided p, method slower
    sd_log: float | None       # pooled spread of log times
    method_runs: list[dict]
    baseline_runs: list[dict]


def measure(summary: dict, workload: str, method: str, baseline: str, target_index: int, *,
            seed: int, resamples: int) -> Measured | None:
    """The comparison of `method` against `baseline`: the analysis' own row when it made one
    (vs Traditional, vs Katharopoulos18), else computed here with the same statistics."""
    m_row = config_row(summary, workload, method, target_index)
    b_row = config_row(summary, workload, baseline, target_index)
    if m_row is None or b_row is None:
        return None
    m_sample, b_sample = time_sample(m_row), time_sample(b_row)
    rng = rng_for(seed, "verdict", workload, method, baseline, target_index)
    row = comparison_row(summary, workload, method, baseline, target_index)
    if row is None:
        row = S.compare_times(m_sample, b_sample, n_resamples=resamples, rng=rng)
        row.update(label=m_row["label"], baseline_label=b_row["label"])
    p_slower, _ = S.mann_whitney_less(b_sample.with_inf, m_sample.with_inf, rng)
    sd = power.pooled_sd(power.log_times(m_row["runs"], m_row.get("budget_time_s")),
                         power.log_times(b_row["runs"], b_row.get("budget_time_s")))
    return Measured(row, rules.usable_p(row.get("p_value")), rules.usable_p(p_slower), sd,
                    m_row["runs"], b_row["runs"])


# --- formatting --------------------------------------------------------------------------------

def speedup_text(row: dict) -> str:
    value = row.get("speedup")
    if value is None or not math.isfinite(value):
        return "-"
    mark = {"upper": "<=", "lower": ">=", "unknown": "~"}.get(row.get("bound_direction") or "", "")
    text = f"{mark}{value:.2f}x"
    if row.get("ci_low") is not None and row.get("ci_high") is not None:
        text += f" [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"
    return text


def p_text(p: float | None, adjusted: bool) -> str:
    if p is None:
        return "-"
    text = f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"
    return text + (" (Holm)" if adjusted else " (raw, exploratory)")


def _censored_median(value) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def _seeds(measured: Measured, factor: float, family_size: int) -> tuple[str, int | None]:
    row = measured.row
    if _censored_median(row.get("median_time_s")) or \
            _censored_median(row.get("median_time_baseline_s")):
        return ("no estimate: the median run of an arm never reached the target (more seeds "
                "will not change that; a longer budget may)"), None
    n, why = power.seeds_to_settle(measured.row.get("speedup"), factor, measured.sd_log,
                                   family_size)
    if n is None:
        return why, None
    shown = f"> {power.MAX_SEEDS}" if n > power.MAX_SEEDS else f"~{n}"
    return f"{shown} per arm ({why})", n


def _label(method: str) -> str:
    from sbbench.analysis.grouping import method_name

    return method_name(method)


def speedup_row(claim: SpeedupClaim, study: str, measured: Measured | None, target: str,
                p_faster: float | None, p_slower: float | None, adjusted: bool,
                family: str, family_size: int) -> ClaimRow:
    comparison = f"{_label(claim.method)} vs {_label(claim.baseline)}"
    if measured is None:
        return ClaimRow(claim.text, claim.paper, study, rules.NOT_MEASURED,
                        f"the study has no {comparison} runs", target, comparison,
                        family=family)
    row = measured.row
    decision = rules.speedup_verdict(row, claim.factor, p_faster, p_slower)
    seeds, n_needed = ("-", None)
    if decision.verdict == rules.INCONCLUSIVE:
        seeds, n_needed = _seeds(measured, claim.factor, family_size)
    verdict = decision.verdict + (" (exploratory)" if family == FAMILY_EXPLORATORY else "")
    return ClaimRow(claim.text, claim.paper, study, verdict, decision.reason, target,
                    comparison, speedup_text(row), p_text(p_faster, adjusted),
                    f"{row.get('n')} vs {row.get('n_baseline')}", seeds, family,
                    {"speedup": row.get("speedup"), "ci_low": row.get("ci_low"),
                     "ci_high": row.get("ci_high"), "p_faster": p_faster,
                     "p_slower": p_slower, "seeds_needed": n_needed,
                     "verdict": decision.verdict})


def _target_text(workload: dict, index: int) -> str:
    for target in workload.get("targets", []):
        if target["index"] == index:
            return f"t{index + 1}: val error <= {target['value']:.4g} ({target['rule']})"
    return f"t{index + 1}: none"


# --- the claims --------------------------------------------------------------------------------

def not_run_rows(texts: list[tuple[str, str]], study: str, note: str) -> list[ClaimRow]:
    return [ClaimRow(text, paper, study, rules.NOT_RUN, note) for text, paper in texts]


def speedup_claims(summary: dict | None, study: str, *, seed: int, resamples: int,
                   target_index: int = PRIMARY, note: str = "") -> list[ClaimRow]:
    """The four speedup claims at one target; at the primary target they are the
    confirmatory family (Holm over the four), at another one exploratory."""
    if summary is None or not summary.get("comparisons"):
        return not_run_rows([(c.text, c.paper) for c in SPEEDUP_CLAIMS], study,
                            note or "study not run yet")
    workload = main_workload(summary)
    measured = [measure(summary, workload["label"], c.method, c.baseline, target_index,
                        seed=seed, resamples=resamples) for c in SPEEDUP_CLAIMS]
    confirmatory = target_index == PRIMARY
    faster = [m.p_faster if m else None for m in measured]
    slower = [m.p_slower if m else None for m in measured]
    size = sum(p is not None for p in faster)
    if confirmatory:
        faster, slower = S.holm(faster), S.holm(slower)
    family = FAMILY_CONFIRMATORY if confirmatory else FAMILY_EXPLORATORY
    target = _target_text(workload, target_index)
    return [speedup_row(c, study, m, target, pf, ps, confirmatory, family,
                        size if confirmatory else 1)
            for c, m, pf, ps in zip(SPEEDUP_CLAIMS, measured, faster, slower)]


def random_rows(summary: dict | None, study: str, *, seed: int, resamples: int,
                note: str = "") -> list[ClaimRow]:
    """SB against Random at every target: does the selection itself help? (exploratory)"""
    if summary is None or not summary.get("comparisons"):
        return not_run_rows([(SB_RANDOM.text, SB_RANDOM.paper)], study,
                            note or "study not run yet")
    workload = main_workload(summary)
    rows = []
    for target in workload.get("targets", []):
        m = measure(summary, workload["label"], "sb", "random", target["index"], seed=seed,
                    resamples=resamples)
        rows.append(speedup_row(SB_RANDOM, study, m, _target_text(workload, target["index"]),
                                m.p_faster if m else None, m.p_slower if m else None, False,
                                FAMILY_EXPLORATORY, 1))
    return rows


ROBUST_TEXT = "SB stays faster than Traditional with 0.1-20% randomized labels"
ROBUST_PAPER = "robust at 0.1%, 10%, 20% randomized labels"


def robustness_rows(summary: dict | None, study: str, *, seed: int, resamples: int,
                    note: str = "") -> tuple[ClaimRow, list[ClaimRow]]:
    """(the claim's row, one row per noise rate) at the primary target; Holm over the rates."""
    if summary is None or not summary.get("comparisons"):
        return not_run_rows([(ROBUST_TEXT, ROBUST_PAPER)], study,
                            note or "study not run yet")[0], []
    workloads = sorted(summary.get("workloads", []), key=noise_of)
    in_range = [w for w in workloads if NOISE_RANGE[0] - 1e-12 <= noise_of(w)
                <= NOISE_RANGE[1] + 1e-12]
    measured = [measure(summary, w["label"], "sb", "traditional", PRIMARY, seed=seed,
                        resamples=resamples) for w in workloads]
    in_family = [w in in_range for w in workloads]
    faster = S.holm([m.p_faster if (m and f) else None for m, f in zip(measured, in_family)])
    slower = S.holm([m.p_slower if (m and f) else None for m, f in zip(measured, in_family)])
    size = sum(p is not None for p in faster)
    rows = []
    for w, m, f, pf, ps in zip(workloads, measured, in_family, faster, slower):
        rate = noise_of(w)
        if not f:   # 0% noise (or out of the claim's range): shown, not part of the family
            pf, ps = (m.p_faster, m.p_slower) if m else (None, None)
        text = f"SB faster than Traditional at {rate:.1%} randomized labels"
        row = speedup_row(SpeedupClaim("robust", text, "-", "sb", "traditional", 1.0), study,
                          m, _target_text(w, PRIMARY), pf, ps, f,
                          FAMILY_ROBUSTNESS if f else FAMILY_EXPLORATORY, size if f else 1)
        row.extra["label_noise"] = rate
        row.extra["final_error_diff"] = m.row.get("final_error_diff") if m else None
        rows.append(row)
    decisions = [rules.Decision(r.extra["verdict"], r.reason) for r, f in zip(rows, in_family)
                 if f and "verdict" in r.extra]
    if not decisions:
        overall = rules.Decision(rules.NOT_MEASURED, "no SB vs Traditional comparison at a "
                                 "noise rate between 0.1% and 20%")
    else:
        overall = rules.all_of(decisions)
    rates = ", ".join(f"{noise_of(w):.1%}" for w in in_range)
    head = ClaimRow(ROBUST_TEXT, ROBUST_PAPER, study, overall.verdict,
                    f"{overall.reason} (rates {rates or 'none'})", _target_text(
                        workloads[0], PRIMARY) if workloads else "", "SB vs Traditional",
                    family=FAMILY_ROBUSTNESS, n=f"{len(decisions)} noise rates")
    return head, rows


HARD_TEXT = "SB spends its backward passes on hard (high-loss) examples"
HARD_PAPER = "selection probability rises with loss"


def sb_and_random_selection(summary: dict, client, workload_label: str) -> dict[str, list]:
    """Per-run selection shares (per_example tables) of the finished SB and Random runs of a
    workload at the primary target: {"sb": [...], "random": [...]}."""
    out = {}
    for method in ("sb", "random"):
        row = config_row(summary, workload_label, method, PRIMARY)
        ids = [r["run_id"] for r in (row["runs"] if row else []) if r["outcome"] == "ok"]
        out[method] = SEL.per_run(client, ids) if ids else []
    return out


def hard_example_row(summary: dict | None, client, study: str, note: str = "") -> ClaimRow:
    """The share of SB's backward passes on the highest-loss quartile, per run, against
    Random's (or 25%)."""
    if summary is None or not summary.get("comparisons"):
        return not_run_rows([(HARD_TEXT, HARD_PAPER)], study, note or "study not run yet")[0]
    workload = main_workload(summary)
    runs = sb_and_random_selection(summary, client, workload["label"])
    sb = SEL.values(runs["sb"], "top_quartile_share")
    control = SEL.values(runs["random"], "top_quartile_share")
    if sb.size == 0:
        return ClaimRow(HARD_TEXT, HARD_PAPER, study, rules.NOT_MEASURED,
                        "no SB run left a per-example table", family=FAMILY_CONFIRMATORY)
    against = control if control.size else SEL.UNIFORM_TOP_QUARTILE
    p_more, p_less, test = SEL.one_sided_p(sb, against)
    decision = rules.share_verdict(p_more, p_less, int(sb.size), int(control.size))
    control_text = (f"Random {control.mean():.1%} (n={control.size})" if control.size
                    else "uniform 25%")
    p_shown = "-" if p_more is None else (f"{p_more:.2g}" if p_more >= 0.001 else
                                          f"{p_more:.1e}") + " (one test)"
    return ClaimRow(HARD_TEXT, HARD_PAPER, study, decision.verdict,
                    f"{decision.reason}; {test}", "whole run",
                    "SB vs " + ("Random" if control.size else "uniform"),
                    f"{sb.mean():.1%} of backprops on the top-loss quartile vs {control_text}",
                    p_shown,
                    f"{sb.size} vs {control.size or '-'}", "-", "own family (one test)",
                    {"sb_shares": sb.tolist(), "control_shares": control.tolist(),
                     "runs": runs, "verdict": decision.verdict})


def noisy_share_rows(summary: dict | None, client, study: str) -> list[dict]:
    """Per noise rate: the share of SB's and Random's backward passes on mislabelled examples
    against their share of the data (exploratory, descriptive)."""
    if summary is None or not summary.get("comparisons"):
        return []
    out = []
    for w in sorted(summary.get("workloads", []), key=noise_of):
        if noise_of(w) <= 0:
            continue
        shares = sb_and_random_selection(summary, client, w["label"])
        sb = SEL.values(shares["sb"], "noisy_share")
        rnd = SEL.values(shares["random"], "noisy_share")
        data = SEL.values(shares["sb"] + shares["random"], "noisy_data_share")
        p_more, _, test = SEL.one_sided_p(sb, rnd) if rnd.size else (None, None, "-")
        out.append({"label_noise": noise_of(w), "sb": float(sb.mean()) if sb.size else None,
                    "n_sb": int(sb.size), "random": float(rnd.mean()) if rnd.size else None,
                    "n_random": int(rnd.size),
                    "data": float(data.mean()) if data.size else None,
                    "p_sb_more": p_more, "test": test,
                    "run_ids": [r["run_id"] for r in shares["sb"] + shares["random"]]})
    return out

