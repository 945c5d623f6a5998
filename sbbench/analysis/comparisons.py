"""Comparisons: per-configuration time-to-target statistics, every non-baseline configuration vs
Traditional and vs Katharopoulos18, Holm-Bonferroni across the confirmatory family (the
comparisons a study declared; the rest are exploratory), geometric means of speedups across
workloads and performance profiles."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from sbbench.analysis import record as R
from sbbench.analysis import statistics as S
from sbbench.analysis.grouping import ConfigGroup, WorkloadGroup, match_baseline, signature
from sbbench.analysis.time_to_target import Crossing, Target, time_to_target, workload_budget

PROFILE_R_MAX = 4.0
PROFILE_TAUS = np.round(np.linspace(1.0, PROFILE_R_MAX, 61), 4)


@dataclass
class Outcomes:
    """The crossings of one configuration for one target."""
    config: ConfigGroup
    target: Target
    crossings: list[Crossing]
    budget: dict[str, float]   # the workload's longest budget (time_s, examples_*)

    def sample(self, what: str = "time_s") -> S.TimeSample:
        return S.TimeSample.of([getattr(c, what) for c in self.crossings],
                               [c.censored for c in self.crossings],
                               self.budget.get(what, math.nan))


def crossings_for(wl: WorkloadGroup, target: Target) -> dict[str, Outcomes]:
    budget = workload_budget(wl.runs)
    return {cg.key: Outcomes(cg, target, [time_to_target(r, target.value, budget)
                                          for r in cg.runs], budget)
            for cg in wl.configs}


def _median_or_none(values: np.ndarray) -> float | None:
    if values.size == 0:
        return None
    value = float(np.median(values))
    return value if math.isfinite(value) else None


def config_stats(wl: WorkloadGroup, oc: Outcomes, *, n_resamples: int,
                 rng: np.random.Generator) -> dict:
    cg, target = oc.config, oc.target
    sample = oc.sample()
    k = sample.n_reached
    median = S.median_time(sample)
    seen = np.array([c.examples_seen if c.reached else np.inf for c in oc.crossings])
    backpropped = np.array([c.examples_backpropped if c.reached else np.inf
                            for c in oc.crossings])
    finals = np.array([r.final_test_error for r in cg.runs], dtype=float)
    finals = finals[np.isfinite(finals)]
    stats = {
        "workload": wl.label, "workload_params": dict(wl.workload), "method": cg.method,
        "label": cg.label, "config": dict(cg.config), "target_index": target.index,
        "target_error": target.value, "target_rule": target.rule,
        "n": sample.n, "n_reached": k, "n_diverged": cg.count(R.OUTCOME_DIVERGED),
        "n_pruned": cg.count(R.OUTCOME_PRUNED),
        "n_crossed_before_divergence": sum(c.crossed_before_divergence for c in oc.crossings),
        **S.success_rate(k, sample.n),
        "median_time_s": median if math.isfinite(median) else None,
        "median_time_censored": bool(math.isinf(median)),
        "median_time_budget_s": _median_or_none(sample.with_budget),
        "budget_time_s": oc.budget.get("time_s"),
        "iqm_time_s": S.iqm(sample),
        **S.median_ci(sample, n_resamples=min(n_resamples, 1999), rng=rng),
        "median_examples_backpropped_to_target": _median_or_none(backpropped),
        "median_examples_seen_to_target": _median_or_none(seen),
        "final_test_error_mean": float(finals.mean()) if finals.size else None,
        "final_test_error_median": float(np.median(finals)) if finals.size else None,
        "n_final": int(finals.size),
        "kaplan_meier": S.kaplan_meier(sample),
        "runs": [{"run_id": r.run_id, "seed": r.seed, "outcome": c.outcome,
                  "reached": c.reached, "time_s": c.time_s,
                  "examples_backpropped": c.examples_backpropped,
                  "examples_seen": c.examples_seen,
                  "crossed_before_divergence": c.crossed_before_divergence,
                  "final_test_error": r.final_test_error}
                 for r, c in zip(cg.runs, oc.crossings)],
    }
    return stats


def compare(wl: WorkloadGroup, method: Outcomes, base: Outcomes, mismatch: list[str], *,
            n_resamples: int, rng: np.random.Generator) -> dict:
    cg, bg = method.config, base.config
    times = S.compare_times(method.sample(), base.sample(), n_resamples=n_resamples, rng=rng)
    row = {"workload": wl.label, "workload_params": dict(wl.workload), "method": cg.method,
           "label": cg.label, "config": dict(cg.config), "baseline": bg.method,
           "baseline_label": bg.label, "baseline_config": dict(bg.config),
           "baseline_mismatch": mismatch, "target_index": method.target.index,
           "target_error": method.target.value, "target_rule": method.target.rule}
    row.update(times)
    k = method.sample().n_reached
    row.update(S.success_rate(k, method.sample().n))
    row["success_rate_baseline"] = base.sample().n_reached / base.sample().n \
        if base.sample().n else None
    row["median_time_censored"] = bool(math.isinf(row["median_time_s"]))
    for what in ("examples_backpropped", "examples_seen"):
        m, b = method.sample(what), base.sample(what)
        row[f"median_{what}_to_target"] = _median_or_none(m.with_inf)
        row[f"speedup_{what}"] = _ratio(np.median(b.with_budget), np.median(m.with_budget)) \
            if m.n and b.n else None
    fm = np.array([r.final_test_error for r in cg.runs], dtype=float)
    fb = np.array([r.final_test_error for r in bg.runs], dtype=float)
    diff = S.mean_difference(fm, fb, n_resamples=n_resamples, rng=rng)
    row.update(final_error_diff=diff["diff"], final_error_diff_ci_low=diff["ci_low"],
               final_error_diff_ci_high=diff["ci_high"],
               final_error_diff_ci_method=diff["ci_method"], n_final=diff["n"],
               n_final_baseline=diff["n_baseline"],
               final_error_excluded_runs=int(len(cg.runs) - diff["n"]))
    row["n_diverged"] = cg.count(R.OUTCOME_DIVERGED)
    row["n_pruned"] = cg.count(R.OUTCOME_PRUNED)
    return row


def _ratio(a: float, b: float) -> float | None:
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return None
    return float(a / b)


def rng_for(seed: int, *parts: object) -> np.random.Generator:
    """A generator seeded by the analysis seed and what it is for: each interval is reproducible
    and does not change when other configurations are added to the report."""
    return np.random.default_rng([seed, zlib.crc32(repr(parts).encode())])


def analyse_workload(wl: WorkloadGroup, *, n_resamples: int,
                     seed: int) -> tuple[list[dict], list[dict]]:
    """(per-configuration stats, comparisons) of one workload, every target."""
    configs_out, comparisons = [], []
    for target in wl.targets:
        outcomes = crossings_for(wl, target)
        for cg in wl.configs:
            configs_out.append(config_stats(wl, outcomes[cg.key], n_resamples=n_resamples,
                                            rng=rng_for(seed, wl.key, cg.key, target.index)))
        traditional, kath = wl.by_method(R.TRADITIONAL), wl.by_method(R.KATH18)
        for cg in wl.configs:
            if cg.method == R.TRADITIONAL:
                continue
            for baselines in (traditional, kath if cg.method != R.KATH18 else []):
                base, mismatch = match_baseline(cg, baselines)
                if base is None:
                    continue
                # Each method at its own tuned setting (a two-stage study) differs by design.
                tuned = tuned_fields(cg) & tuned_fields(base)
                mismatch = [m for m in mismatch if m not in tuned]
                rng = rng_for(seed, wl.key, cg.key, base.key, target.index)
                comparisons.append(compare(wl, outcomes[cg.key], outcomes[base.key], mismatch,
                                           n_resamples=n_resamples, rng=rng))
    return configs_out, comparisons


def tuned_fields(cg) -> set[str]:
    """The fields a configuration's runs were tuned on (sbbench.tuned_values), if any."""
    import json

    fields: set[str] = set()
    for run in cg.runs:
        text = run.tags.get(R.TAG_TUNED_VALUES)
        if text:
            fields |= set(json.loads(text))
    return fields


PRIMARY_TARGET_INDEX = 0   # the first target: the one confirmatory comparisons are made at


def default_confirmatory(methods: list[str]) -> frozenset[tuple[str, str]]:
    """Each method against Traditional (at the primary target, on its workload)."""
    return frozenset((m, R.TRADITIONAL) for m in methods if m != R.TRADITIONAL)


def family_of(row: dict, confirmatory: frozenset[tuple[str, str]]) -> str:
    declared = (row["method"], row["baseline"]) in confirmatory
    if declared and row["target_index"] == PRIMARY_TARGET_INDEX:
        return R.FAMILY_CONFIRMATORY
    return R.FAMILY_EXPLORATORY


def apply_holm(comparisons: list[dict], confirmatory: frozenset[tuple[str, str]],
               alpha: float = R.ALPHA) -> None:
    """Label each comparison's family and run Holm-Bonferroni over the confirmatory one (in
    place). Exploratory rows keep their raw p but get no adjusted p and are never significant;
    an underpowered row is never significant either (its p-value is not evidence)."""
    for row in comparisons:
        row.update(family=family_of(row, confirmatory), p_holm=None, significant=False,
                   underpowered_after_holm=False)
    family = [c for c in comparisons if c["family"] == R.FAMILY_CONFIRMATORY]
    adjusted = S.holm([c.get("p_value") for c in family])
    size = sum(p is not None for p in adjusted)
    for row in comparisons:
        row["holm_family_size"] = size
    for row, p in zip(family, adjusted):
        row["p_holm"] = p
        row["significant"] = bool(p is not None and p < alpha and not row["underpowered"])
        min_p = row.get("min_attainable_p", 1.0)
        row["underpowered_after_holm"] = bool(min_p * max(size, 1) >= alpha)


def geometric_means(workloads: list[WorkloadGroup], comparisons: list[dict]) -> list[dict]:
    """Geometric mean of speedups across workloads, per (configuration signature, baseline,
    target index). Speedups with censoring are bounds, and so is their mean (`any_bound`)."""
    sig_of = {(wl.label, cg.label): signature(cg) for wl in workloads for cg in wl.configs}
    groups: dict[tuple, list[dict]] = {}
    for row in comparisons:
        key = (sig_of[(row["workload"], row["label"])], row["baseline"], row["target_index"])
        groups.setdefault(key, []).append(row)
    out = []
    for (_, baseline, target_index), rows in sorted(groups.items(),
                                                    key=lambda kv: (kv[1][0]["label"], kv[0][1],
                                                                    kv[0][2])):
        out.append({"method": rows[0]["method"], "label": rows[0]["label"],
                    "config": rows[0]["config"], "baseline": baseline,
                    "target_index": target_index, "n_workloads": len(rows),
                    "workloads": [r["workload"] for r in rows],
                    "geomean_speedup": S.geometric_mean([r["speedup"] for r in rows]),
                    "any_bound": any(r["ci_is_bound"] for r in rows)})
    return out


def performance_profiles(workloads: list[WorkloadGroup], config_rows: list[dict]) -> list[dict]:
    """Performance profiles (Dolan & More; AlgoPerf) of median time to target, r_max = 4.

    Per workload and target, each configuration's ratio to the fastest median time in that
    workload; rho(tau) = fraction of the workloads where the configuration ran whose ratio is
    <= tau. A configuration whose median never reaches the target has ratio inf.
    """
    sig_of = {(wl.label, cg.label): signature(cg) for wl in workloads for cg in wl.configs}
    by_target: dict[int, dict[str, list[dict]]] = {}
    for row in config_rows:
        per_wl = by_target.setdefault(row["target_index"], {})
        per_wl.setdefault(row["workload"], []).append(row)
    out = []
    for target_index, per_wl in sorted(by_target.items()):
        ratios: dict[str, list[float]] = {}
        labels: dict[str, str] = {}
        for wl_label, rows in per_wl.items():
            times = [r["median_time_s"] if r["median_time_s"] is not None else math.inf
                     for r in rows]
            best = min(times) if times else math.inf
            for r, t in zip(rows, times):
                sig = sig_of[(wl_label, r["label"])]
                labels[sig] = r["label"]
                ratio = t / best if math.isfinite(best) and best > 0 else math.inf
                ratios.setdefault(sig, []).append(ratio)
        for sig, values in sorted(ratios.items(), key=lambda kv: labels[kv[0]]):
            out.append({"label": labels[sig], "target_index": target_index,
                        "n_workloads": len(values), "r_max": PROFILE_R_MAX,
                        "tau": [float(t) for t in PROFILE_TAUS],
                        "rho": S.performance_profile(values, PROFILE_TAUS)})
    return out
