"""Cost and quality: phase breakdown against the theoretical bound (docs/methods.md), the Pareto
front of (final test error, training time), the share of backward passes spent on noisy examples,
and the per-class / per-loss selection rates.

Estimating r (cost of a no-grad forward / cost of a training step) from a run's own phases:
    r ~ (time_forward_select_s / selection_forwards)
        / ((time_forward_train_s + time_backward_s + time_other_s) / examples_backpropped)
i.e. seconds per example of the selection forward over seconds per example of everything else
on the training clock. "other" holds the optimizer step but also data movement and the
selection bookkeeping, so r is slightly low and the bound slightly optimistic. With s = keep
rate = examples_backpropped / examples_seen and f = selection_forwards / examples_seen (1 for
SB, ~1/n for StaleSB, 0 for Random), one epoch costs r*f + s of a Traditional epoch, so the best
per-epoch speedup is 1 / (r*f + s). The nominal forms are the cases f = 1 (SB: 1/(r+s)) and
f = 1/n (StaleSB: 1/(r/n+s)); both are reported. The measured per-epoch speedup is Traditional's
training-clock seconds per example seen over the method's, and efficiency = measured / bound.
Priming epochs (s = 1, f = 0) are included in the measured s and f, as in the measured time.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sbbench.analysis import record as R
from sbbench.analysis.grouping import ConfigGroup, WorkloadGroup, match_baseline
from sbbench.analysis.loading import RunRecord, parse_value

MAX_PER_EXAMPLE_RUNS = 20  # per configuration: per-example tables are downloaded, keep it bounded
LOSS_BINS = 10


def _final(run: RunRecord, metric: str, total: str | None = None) -> float:
    return run.final_count(metric, total)


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else None


def run_costs(run: RunRecord) -> dict:
    seen = _final(run, R.M_EXAMPLES_SEEN, R.M_TOTAL_SEEN)
    backpropped = _final(run, R.M_EXAMPLES_BACKPROPPED, R.M_TOTAL_BACKPROPPED)
    forwards = _final(run, R.M_SELECTION_FORWARDS, R.M_TOTAL_SELECTION_FORWARDS)
    phases = {p: run.metrics.get(p, math.nan) for p in R.PHASES}
    total = run.last(R.M_TRAIN_TIME)
    train_part = phases["time_forward_train_s"] + phases["time_backward_s"] + \
        phases["time_other_s"]
    r = math.nan
    if forwards and forwards > 0 and backpropped and backpropped > 0 and train_part > 0:
        r = (phases["time_forward_select_s"] / forwards) / (train_part / backpropped)
    return {"train_time_s": total, "examples_seen": seen, "examples_backpropped": backpropped,
            "selection_forwards": forwards, **phases, "r": r,
            "s": backpropped / seen if seen else math.nan,
            "f": (forwards or 0.0) / seen if seen else math.nan,
            "seconds_per_example_seen": total / seen if seen else math.nan}


def phase_table(wl: WorkloadGroup) -> list[dict]:
    """Per configuration: mean final cumulative phase times, r, s, f, bound and efficiency."""
    rows = []
    per_config = {cg.key: [run_costs(r) for r in cg.kept_ok] for cg in wl.configs}
    for cg in wl.configs:
        costs = per_config[cg.key]
        if not costs:
            continue
        row = {"workload": wl.label, "method": cg.method, "label": cg.label,
               "config": dict(cg.config), "n": len(costs)}
        for key in (*R.PHASES, "train_time_s", "examples_seen", "examples_backpropped",
                    "selection_forwards", "s", "f", "seconds_per_example_seen"):
            row[key] = _mean([c[key] for c in costs])
        r_values = [c["r"] for c in costs if math.isfinite(c["r"])]
        row["r"] = float(np.median(r_values)) if r_values else None
        row.update(_bounds(cg, row))
        base, _ = match_baseline(cg, wl.by_method(R.TRADITIONAL))
        measured = None
        if base is not None and cg.method != R.TRADITIONAL:
            base_spe = _mean([c["seconds_per_example_seen"] for c in per_config[base.key]])
            if base_spe and row["seconds_per_example_seen"]:
                measured = base_spe / row["seconds_per_example_seen"]
        row["measured_epoch_speedup"] = measured
        bound = row.get("bound_epoch_speedup")
        row["efficiency"] = measured / bound if measured and bound else None
        rows.append(row)
    return rows


def _bounds(cg: ConfigGroup, row: dict) -> dict:
    r, s, f = row.get("r"), row.get("s"), row.get("f")
    out = {"bound_epoch_speedup": None, "bound_nominal": None, "bound_formula": None}
    if cg.method == R.TRADITIONAL or s is None or not s > 0:
        return out
    if f is not None and f > 0 and r is None:
        return out
    r_eff = (r or 0.0) * (f or 0.0)
    out["bound_epoch_speedup"] = 1.0 / (r_eff + s)
    if cg.method == "sb" and r is not None:
        out["bound_nominal"], out["bound_formula"] = 1.0 / (r + s), "1/(r+s)"
    elif cg.method == "stale_sb" and r is not None:
        n = parse_value(cg.config.get("staleness", "1")) or 1
        out["bound_nominal"], out["bound_formula"] = 1.0 / (r / n + s), f"1/(r/{n}+s)"
    elif cg.method == "random":
        out["bound_nominal"], out["bound_formula"] = 1.0 / s, "1/s"
    return out


def pareto(wl: WorkloadGroup) -> list[dict]:
    """(median final test error, median total training time) per configuration, and whether it
    is on the Pareto front (no other configuration is at least as good in both and better in
    one)."""
    points = []
    for cg in wl.configs:
        finals = [r.final_test_error for r in cg.kept_ok]
        times = [r.budget_time_s for r in cg.kept_ok]
        finals = [v for v in finals if math.isfinite(v)]
        times = [v for v in times if math.isfinite(v)]
        if not finals or not times:
            continue
        points.append({"workload": wl.label, "method": cg.method, "label": cg.label,
                       "config": dict(cg.config), "n": len(finals),
                       "final_test_error": float(np.median(finals)),
                       "train_time_s": float(np.median(times))})
    for p in points:
        p["on_front"] = not any(
            q is not p and q["final_test_error"] <= p["final_test_error"]
            and q["train_time_s"] <= p["train_time_s"]
            and (q["final_test_error"] < p["final_test_error"]
                 or q["train_time_s"] < p["train_time_s"]) for q in points)
    return points


def per_example_summary(table: pd.DataFrame, examples_seen: float) -> dict:
    """One run's noisy share, per-class and per-loss-decile selection rates."""
    n = len(table)
    epochs = examples_seen / n if n and examples_seen and math.isfinite(examples_seen) else math.nan
    tb = table["times_backpropped"].to_numpy(dtype=float)
    noisy = _is_noisy(table)
    total = tb.sum()
    out = {"share_backward_noisy": float(tb[noisy].sum() / total) if total > 0 else None,
           "share_data_noisy": float(noisy.mean()) if n else None, "epochs": epochs,
           "per_class": {}, "per_loss_decile": []}
    if math.isfinite(epochs) and epochs > 0:
        grouped = table.groupby("label")["times_backpropped"].agg(["sum", "size"])
        out["per_class"] = {str(label): float(row["sum"] / (row["size"] * epochs))
                            for label, row in grouped.iterrows()}
        losses = pd.to_numeric(table["last_loss"], errors="coerce")
        if losses.notna().sum() >= LOSS_BINS:
            bins = pd.qcut(losses.rank(method="first"), LOSS_BINS, labels=False)
            rates = table.assign(bin=bins).groupby("bin")["times_backpropped"].mean() / epochs
            out["per_loss_decile"] = [float(v) for v in rates.to_numpy()]
    return out


def selection_probability(table: pd.DataFrame) -> dict:
    """P(backpropped | scored) = times backpropped / times scored per example, averaged by
    final-loss percentile bin (LOSS_BINS equal bins, lowest loss first) and over noisy and clean
    examples. Examples never scored (Traditional, priming only) have no probability."""
    scored = pd.to_numeric(table.get("times_scored"), errors="coerce") \
        if "times_scored" in table else pd.Series(np.nan, index=table.index)
    keep = scored > 0
    out = {"by_loss_percentile": [], "noisy": None, "clean": None}
    if not keep.any():
        return out
    probability = table.loc[keep, "times_backpropped"].astype(float) / scored[keep]
    noisy = _is_noisy(table)[keep.to_numpy()]
    if noisy.any():
        out["noisy"] = float(probability[noisy].mean())
    if (~noisy).any():
        out["clean"] = float(probability[~noisy].mean())
    losses = pd.to_numeric(table.loc[keep, "last_loss"], errors="coerce")
    if losses.notna().sum() >= LOSS_BINS:
        bins = pd.qcut(losses.rank(method="first"), LOSS_BINS, labels=False)
        out["by_loss_percentile"] = [float(v) for v in probability.groupby(bins).mean()]
    return out


def _is_noisy(table: pd.DataFrame) -> np.ndarray:
    return table["is_noisy"].astype(str).str.lower().isin(["true", "1"]).to_numpy()


def selection_stats(wl: WorkloadGroup, client) -> list[dict]:
    """Per non-Traditional configuration: noisy share vs data share, per-class and per-loss-decile
    selection rates (times backpropped / times seen), from the runs' per_example.csv.gz."""
    from sbbench.analysis.loading import load_per_example

    rows = []
    for cg in wl.configs:
        if cg.method == R.TRADITIONAL:
            continue
        summaries = []
        for run in cg.kept_ok[:MAX_PER_EXAMPLE_RUNS]:
            table = load_per_example(client, run.run_id) if client is not None else None
            if table is None or "times_backpropped" not in table:
                continue
            summaries.append({**per_example_summary(
                table, _final(run, R.M_EXAMPLES_SEEN, R.M_TOTAL_SEEN)),
                "selection_probability": selection_probability(table)})
        if not summaries:
            continue
        classes = sorted({c for s in summaries for c in s["per_class"]}, key=_class_key)
        deciles = [s["per_loss_decile"] for s in summaries if s["per_loss_decile"]]
        share_b = _mean([s["share_backward_noisy"] for s in summaries])
        share_d = _mean([s["share_data_noisy"] for s in summaries])
        rows.append({
            "workload": wl.label, "method": cg.method, "label": cg.label,
            "config": dict(cg.config), "n_runs": len(summaries),
            "label_noise": parse_value(wl.workload.get("label_noise", "0")),
            "share_backward_noisy": share_b, "share_data_noisy": share_d,
            "noisy_enrichment": share_b / share_d if share_b is not None and share_d else None,
            "per_class_selection_rate": {c: _mean([s["per_class"].get(c) for s in summaries])
                                         for c in classes},
            "per_loss_decile_selection_rate": [float(v) for v in np.mean(deciles, axis=0)]
            if deciles and len({len(d) for d in deciles}) == 1 else [],
            **_mean_selection_probability([s["selection_probability"] for s in summaries]),
        })
    return rows


def _mean_selection_probability(per_run: list[dict]) -> dict:
    """The runs' selection probabilities averaged (by loss percentile bin, noisy, clean)."""
    curves = [p["by_loss_percentile"] for p in per_run if p["by_loss_percentile"]]
    same_length = curves and len({len(c) for c in curves}) == 1
    return {"selection_probability_by_loss_percentile":
            [float(v) for v in np.mean(curves, axis=0)] if same_length else [],
            "loss_percentile_bins": LOSS_BINS,
            "selection_probability_noisy": _mean([p["noisy"] for p in per_run]),
            "selection_probability_clean": _mean([p["clean"] for p in per_run])}


def _class_key(label: str):
    value = parse_value(label)
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(label))
