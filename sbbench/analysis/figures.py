"""Figures (seaborn on matplotlib's Agg backend), one PNG file each. Each Figure also carries
`data`: the arrays it plots, so that what a figure shows can be checked, not only that it
exists."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sbbench.analysis import record as R
from sbbench.analysis.grouping import WorkloadGroup
from sbbench.analysis.loading import parse_value

TIME_GRID_POINTS = 60
MAX_HUES = 10
DPI = 110


@dataclass(frozen=True)
class Figure:
    path: Path
    title: str
    caption: str
    section: str            # a workload label, or "" for figures across workloads
    data: dict = field(default_factory=dict, compare=False)   # what is plotted, by series


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    return plt, sns


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _hue(labels: list[str], methods: list[str]) -> list[str]:
    return labels if len(set(labels)) <= MAX_HUES else methods


X_AXES = {R.M_TRAIN_TIME: "training time (s)",
          R.M_EXAMPLES_BACKPROPPED: "examples backpropped"}


def _step_curves(wl: WorkloadGroup, x_metric: str) -> pd.DataFrame | None:
    """Every run's validation error held constant between its evaluations, on one grid of
    `x_metric` shared by the workload (a run's curve stops where the run stopped)."""
    runs = [(cg, r) for cg in wl.configs for r in cg.runs if r.has_curve]
    ends = [r.last(x_metric) for _, r in runs]
    ends = [e for e in ends if math.isfinite(e)]
    if not runs or not ends:
        return None
    grid = np.linspace(0.0, max(ends), TIME_GRID_POINTS)
    x_label = X_AXES[x_metric]
    frames = []
    labels = _hue([cg.label for cg, _ in runs], [cg.method for cg, _ in runs])
    for (cg, run), hue in zip(runs, labels):
        curve = run.curve.dropna(subset=[x_metric, R.M_VAL_ERROR]) \
            if x_metric in run.curve else pd.DataFrame()
        if curve.empty:
            continue
        xs = curve[x_metric].to_numpy()
        values = curve[R.M_VAL_ERROR].to_numpy()
        idx = np.searchsorted(xs, grid, side="right") - 1
        keep = (idx >= 0) & (grid <= xs[-1])
        frames.append(pd.DataFrame({x_label: grid[keep], "validation error": values[idx[keep]],
                                    "configuration": hue, "run": run.run_id}))
    return pd.concat(frames, ignore_index=True) if frames else None


def _median_curves(data: pd.DataFrame, x_label: str) -> dict:
    """{configuration: {x, median validation error}}: the line each configuration shows."""
    out = {}
    for hue, part in data.groupby("configuration", sort=False):
        median = part.groupby(x_label)["validation error"].median()
        out[str(hue)] = {"x": median.index.to_numpy(dtype=float),
                         "median_error": median.to_numpy(dtype=float)}
    return out


def _error_curve_figure(wl: WorkloadGroup, x_metric: str, out_dir: Path, *, seed: int,
                        n_boot: int, name: str) -> Figure | None:
    data = _step_curves(wl, x_metric)
    if data is None:
        return None
    x_label = X_AXES[x_metric]
    plt, sns = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    sns.lineplot(data=data, x=x_label, y="validation error", hue="configuration",
                 estimator="median", errorbar=("ci", 95), n_boot=n_boot, seed=seed, ax=ax)
    x_end = float(data[x_label].max())
    for target in wl.targets:
        ax.axhline(target.value, ls="--", lw=1, color="grey")
        ax.annotate(f"target {target.value:.4g}", (x_end, target.value), ha="right",
                    va="bottom", fontsize=8, color="grey")
    if (data["validation error"] > 0).all():
        ax.set_yscale("log")
    ax.set_title(f"Validation error vs {x_label}: {wl.label}", fontsize=10)
    path = _save(fig, out_dir / f"{name}__{wl.slug}.png")
    return Figure(path, f"Error vs {x_label} ({wl.label})",
                  f"Median validation error across runs against {x_label}, with a 95% "
                  "bootstrap band; a curve stops where its run stopped (diverged runs stop "
                  "early).", wl.label, _median_curves(data, x_label))


def error_vs_time(wl: WorkloadGroup, out_dir: Path, *, seed: int,
                  n_boot: int = 1000) -> Figure | None:
    """Validation error vs training-clock time, median per configuration with a 95% bootstrap
    band over runs (each run's curve held constant between evaluations)."""
    return _error_curve_figure(wl, R.M_TRAIN_TIME, out_dir, seed=seed, n_boot=n_boot,
                               name="error_vs_time")


def error_vs_examples_backpropped(wl: WorkloadGroup, out_dir: Path, *, seed: int,
                                  n_boot: int = 1000) -> Figure | None:
    """Validation error vs examples backpropped: the hardware-independent view of the same
    curves (what selection saves in backward passes, whatever the clock says)."""
    return _error_curve_figure(wl, R.M_EXAMPLES_BACKPROPPED, out_dir, seed=seed,
                               n_boot=n_boot, name="error_vs_backpropped")


def time_to_target_bars(wl: WorkloadGroup, rows: list[dict], target_index: int,
                        out_dir: Path) -> Figure | None:
    rows = [r for r in rows if r["target_index"] == target_index]
    if not rows:
        return None
    plt, sns = _plt()
    heights, lows, highs, labels, hatched = [], [], [], [], []
    for row in rows:
        heights.append(row.get("median_time_budget_s") or 0.0)
        lows.append(row.get("median_ci_low"))
        highs.append(row.get("median_ci_high"))
        labels.append(f"{row['label']}\n{row['n_reached']}/{row['n']} reached")
        hatched.append(row["median_time_censored"])
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(rows) + 2), 4.5))
    palette = sns.color_palette(n_colors=len(rows))
    sns.barplot(x=labels, y=heights, hue=labels, palette=palette, legend=False, ax=ax)
    for i, (h, lo, hi, hatch) in enumerate(zip(heights, lows, highs, hatched)):
        if lo is not None and hi is not None:
            ax.errorbar(i, h, yerr=[[max(0.0, h - lo)], [max(0.0, hi - h)]], color="black",
                        capsize=4, lw=1)
        if hatch:
            ax.patches[i].set_hatch("//")
            ax.annotate("median censored\n(budget shown)", (i, h), ha="center", va="bottom",
                        fontsize=7)
    target = rows[0]["target_error"]
    ax.set_ylabel("median time to target (s, training clock)")
    ax.set_title(f"Time to validation error <= {target:.4g}: {wl.label}", fontsize=10)
    ax.tick_params(axis="x", labelsize=8)
    path = _save(fig, out_dir / f"time_to_target__{wl.slug}__t{target_index}.png")
    return Figure(path, f"Time to target {target:.4g} ({wl.label})",
                  "Median time to target with a 95% percentile-bootstrap CI; censored runs enter "
                  "at the workload budget, so hatched bars (median censored) are lower bounds.",
                  wl.label)


def kaplan_meier(wl: WorkloadGroup, rows: list[dict], target_index: int,
                 out_dir: Path) -> Figure | None:
    rows = [r for r in rows if r["target_index"] == target_index]
    if not rows:
        return None
    plt, sns = _plt()
    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    shown = {}
    for row, color in zip(rows, sns.color_palette(n_colors=len(rows))):
        km = row["kaplan_meier"]
        t = np.array([0.0] + list(km["time_s"]))
        p = np.array([0.0] + list(km["probability"]))
        ax.step(t, p, where="post", color=color, label=f"{row['label']} (n={row['n']})")
        low, high = _band(km)
        if low is not None:
            ax.fill_between(t, np.r_[0.0, low], np.r_[0.0, high], step="post", color=color,
                            alpha=0.2, lw=0)
        censored = [r["time_s"] for r in row["runs"] if not r["reached"]]
        if censored and km["time_s"]:
            at = np.interp(censored, km["time_s"], km["probability"], left=0.0)
            ax.plot(censored, at, "|", color=color, ms=10)
        shown[row["label"]] = {"time_s": t[1:], "probability": p[1:], "ci_low": low,
                               "ci_high": high, "censored_at": censored}
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("P(reached target by t)")
    ax.set_title(f"Kaplan-Meier, target {rows[0]['target_error']:.4g}: {wl.label}", fontsize=10)
    ax.legend(fontsize=8)
    path = _save(fig, out_dir / f"kaplan_meier__{wl.slug}__t{target_index}.png")
    return Figure(path, f"Kaplan-Meier curves, target {rows[0]['target_error']:.4g} "
                  f"({wl.label})", "Fraction of runs that reached the target by each training "
                  "time (scipy.stats.ecdf on right-censored data) with its 95% pointwise "
                  "confidence band (shaded); ticks mark censored runs.", wl.label, shown)


def _band(km: dict) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The confidence band as arrays (bounds scipy could not compute are clipped to [0, 1]),
    or (None, None) when there is none."""
    low, high = km.get("ci_low") or [], km.get("ci_high") or []
    if not low or all(v is None for v in low + high):
        return None, None
    return _filled(low, 0.0), _filled(high, 1.0)


def _filled(values: list, fill: float) -> np.ndarray:
    return np.array([fill if v is None else v for v in values], dtype=float)


def speedup_forest(wl: WorkloadGroup, comparisons: list[dict],
                   out_dir: Path) -> Figure | None:
    """Forest plot: each comparison's speedup with its 95% CI, grouped by target; hollow
    markers for underpowered comparisons, a bold label for the confirmatory ones."""
    rows = [c for c in comparisons if c.get("speedup") is not None
            and math.isfinite(c["speedup"])]
    if not rows:
        return None
    rows = sorted(rows, key=lambda c: (c["target_index"], c["baseline"], c["label"]))
    plt, _ = _plt()
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(7.5, 1.0 + 0.35 * len(rows)))
    shown = []
    for y, c in enumerate(rows):
        lo, hi = c.get("ci_low"), c.get("ci_high")
        if lo is not None and hi is not None:
            ax.plot([lo, hi], [y, y], color="black", lw=1.2)
        ax.plot(c["speedup"], y, "o", color="black",
                markerfacecolor="white" if c["underpowered"] else "black")
        shown.append({"label": c["label"], "baseline": c["baseline"],
                      "target_index": c["target_index"], "speedup": c["speedup"],
                      "ci_low": lo, "ci_high": hi, "family": c.get("family"),
                      "underpowered": c["underpowered"]})
    ax.set_yticks(range(len(rows)))
    labels = ax.set_yticklabels([f"{c['label']} vs {c['baseline_label']} @ t{c['target_index'] + 1}"
                                 f"{' (n too small)' if c['underpowered'] else ''}"
                                 for c in rows], fontsize=7)
    for text, c in zip(labels, rows):
        if c.get("family") == R.FAMILY_CONFIRMATORY:
            text.set_fontweight("bold")
    ax.invert_yaxis()
    ax.axvline(1.0, color="grey", ls="--", lw=1)
    ax.set_xscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:g}")   # 0.6, not 6 x 10^-1
    ax.xaxis.set_major_formatter(plain)

    def sparse(value, _):  # minor ticks at 2 and 5 x 10^k only: all eight collide
        mantissa = value / 10 ** math.floor(math.log10(value)) if value > 0 else 0
        return f"{value:g}" if round(mantissa) in (2, 5) else ""

    ax.xaxis.set_minor_formatter(FuncFormatter(sparse))
    ax.tick_params(axis="x", which="both", labelsize=7)
    ax.set_xlabel("speedup (median T baseline / median T method) [95% CI]", fontsize=8)
    ax.set_title(f"Speedups: {wl.label}", fontsize=10)
    path = _save(fig, out_dir / f"speedup_forest__{wl.slug}.png")
    return Figure(path, f"Speedups with 95% CIs ({wl.label})",
                  "Each comparison's speedup and its bootstrap CI per target (t1 primary); bold: "
                  "confirmatory family; hollow: n too small to test.", wl.label,
                  {"rows": shown})


def selection_probability(wl: WorkloadGroup, selection_rows: list[dict],
                          out_dir: Path) -> Figure | None:
    """Selection probability (times backpropped / times scored) against the example's final-
    loss percentile, and for noisy vs clean examples, per configuration with per-example
    tables. None when no run of the workload left one."""
    rows = [s for s in selection_rows
            if s.get("selection_probability_by_loss_percentile")
            or s.get("selection_probability_noisy") is not None]
    if not rows:
        return None
    plt, sns = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.0, 4.0))
    shown = {}
    palette = sns.color_palette(n_colors=len(rows))
    for i, (row, color) in enumerate(zip(rows, palette)):
        curve = row["selection_probability_by_loss_percentile"]
        centres = (np.arange(len(curve)) + 0.5) * 100.0 / max(len(curve), 1)
        if curve:
            left.plot(centres, curve, "o-", color=color, label=row["label"])
        groups = {"clean": row.get("selection_probability_clean"),
                  "noisy": row.get("selection_probability_noisy")}
        width = 0.8 / len(rows)
        for j, (name, value) in enumerate(groups.items()):
            if value is not None:
                right.bar(j + (i - (len(rows) - 1) / 2) * width, value, width, color=color)
        shown[row["label"]] = {"loss_percentile": centres, "probability": np.array(curve),
                               **groups}
    left.set_xlabel("final-loss percentile of the example")
    left.set_ylabel("P(backpropped | scored)")
    left.legend(fontsize=7)
    right.set_xticks([0, 1])
    right.set_xticklabels(["clean", "noisy label"])
    right.set_ylabel("mean P(backpropped | scored)")
    fig.suptitle(f"What gets selected: {wl.label}", fontsize=10)
    path = _save(fig, out_dir / f"selection_probability__{wl.slug}.png")
    return Figure(path, f"Selection probability ({wl.label})",
                  "Times backpropped / times scored per example (per_example.csv.gz), averaged "
                  "over examples in each final-loss percentile bin (left) and over clean and "
                  "mislabelled examples (right), then over runs.", wl.label, shown)


def phase_bars(wl: WorkloadGroup, rows: list[dict], out_dir: Path) -> Figure | None:
    if not rows:
        return None
    plt, sns = _plt()
    data = pd.DataFrame([{R.PHASE_LABELS[p]: (row[p] or 0.0) for p in R.PHASES}
                         for row in rows], index=[row["label"] for row in rows])
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(rows) + 3), 4.5))
    data.plot(kind="bar", stacked=True, ax=ax, color=sns.color_palette(n_colors=len(R.PHASES)),
              width=0.7)
    for i, row in enumerate(rows):
        text = []
        if row.get("measured_epoch_speedup"):
            text.append(f"x{row['measured_epoch_speedup']:.2f}")
        if row.get("bound_epoch_speedup"):
            text.append(f"bound x{row['bound_epoch_speedup']:.2f}")
        if text:
            ax.annotate("\n".join(text), (i, data.iloc[i].sum()), ha="center", va="bottom",
                        fontsize=7)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_ylabel("mean cumulative seconds (training clock)")
    ax.set_title(f"Phase breakdown: {wl.label}", fontsize=10)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    path = _save(fig, out_dir / f"phases__{wl.slug}.png")
    return Figure(path, f"Phase breakdown ({wl.label})",
                  "Mean final cumulative phase times of the finished runs; above each bar the "
                  "measured per-epoch speedup over Traditional and the bound 1/(r*f+s).",
                  wl.label)


def pareto_scatter(wl: WorkloadGroup, points: list[dict], out_dir: Path) -> Figure | None:
    if not points:
        return None
    plt, sns = _plt()
    data = pd.DataFrame(points)
    data["Pareto front"] = data["on_front"].map({True: "on front", False: "dominated"})
    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    sns.scatterplot(data=data, x="train_time_s", y="final_test_error", hue="method",
                    style="Pareto front", style_order=["on front", "dominated"], s=70, ax=ax)
    front = data[data["on_front"]].sort_values("train_time_s")
    ax.plot(front["train_time_s"], front["final_test_error"], color="black", lw=1, ls=":")
    if len(data) <= 15:
        for _, p in data.iterrows():
            ax.annotate(p["label"], (p["train_time_s"], p["final_test_error"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("median total training time (s)")
    ax.set_ylabel("median final test error")
    ax.set_title(f"Pareto front: {wl.label}", fontsize=10)
    path = _save(fig, out_dir / f"pareto__{wl.slug}.png")
    return Figure(path, f"Pareto front ({wl.label})",
                  "Each configuration's median final test error against its median training "
                  "time; the dotted line joins the Pareto-optimal configurations.", wl.label)


def ablation_panels(comparisons: list[dict], phase_rows: list[dict], selection_rows: list[dict],
                    out_dir: Path) -> list[Figure]:
    """One figure per swept axis (beta, staleness, batch_size, label_noise): speedup vs
    Traditional, final test error difference and keep rate against the axis, per method."""
    base = [c for c in comparisons if c["baseline"] == R.TRADITIONAL and c["target_index"] == 0]
    keep = {(r["workload"], r["label"]): r for r in phase_rows}
    noise = {(r["workload"], r["label"]): r for r in selection_rows}
    figures = []
    for axis in R.ABLATION_AXES:
        records = []
        for c in base:
            raw = c["config"].get(axis, c["workload_params"].get(axis))
            if raw is None and axis == "staleness" and c["method"] == "sb":
                raw = "1"   # plain SB is StaleSB with n = 1
            value = parse_value(raw) if raw is not None else None
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            k = keep.get((c["workload"], c["label"]), {})
            sel = noise.get((c["workload"], c["label"]), {})
            records.append({axis: value, "method": c["method"], "speedup": c["speedup"],
                            "ci_low": c["ci_low"], "ci_high": c["ci_high"],
                            "final error diff": c["final_error_diff"],
                            "keep rate": k.get("s"),
                            "selection forwards / example seen": k.get("f"),
                            "backward share on noisy": sel.get("share_backward_noisy"),
                            "data share noisy": sel.get("share_data_noisy"),
                            "underpowered": bool(c.get("underpowered", False))})
        data = pd.DataFrame(records)
        if data.empty or data[axis].nunique() < 2:
            continue
        panels = ["speedup", "final error diff", "keep rate"]
        if axis == "staleness":
            panels.append("selection forwards / example seen")
        if axis == "label_noise":
            panels.append("backward share on noisy")
        plt, sns = _plt()
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.0))
        for ax, panel in zip(axes, panels):
            sub = data.dropna(subset=[panel])
            if sub.empty:
                ax.set_visible(False)
                continue
            sns.lineplot(data=sub, x=axis, y=panel, hue="method", marker="o", errorbar=None,
                         estimator="mean", ax=ax)
            if panel == "speedup":
                ok = sub.dropna(subset=["ci_low", "ci_high"])
                ax.errorbar(ok[axis], ok["speedup"],
                            yerr=[(ok["speedup"] - ok["ci_low"]).clip(lower=0),
                                  (ok["ci_high"] - ok["speedup"]).clip(lower=0)],
                            fmt="none", ecolor="grey", capsize=3, lw=1)
                ax.axhline(1.0, color="grey", lw=1, ls="--")
                small = sub[sub["underpowered"]]
                if not small.empty:   # flagged here too, as in every table
                    ax.plot(small[axis], small["speedup"], "o", mfc="white", mec="black",
                            label="n too small")
                    ax.legend(fontsize=7)
            if panel == "final error diff":
                ax.axhline(0.0, color="grey", lw=1, ls="--")
            if panel == "backward share on noisy":
                shares = sub.dropna(subset=["data share noisy"])
                ax.plot(shares[axis], shares["data share noisy"], "kx--", lw=1,
                        label="data share")
                ax.legend(fontsize=7)
            if data[axis].min() > 0 and data[axis].max() / data[axis].min() >= 8:
                ax.set_xscale("log")
        fig.suptitle(f"Ablation: {axis} (vs Traditional, first target)", fontsize=11)
        path = _save(fig, out_dir / f"ablation__{axis}.png")
        figures.append(Figure(path, f"Ablation over {axis}",
                              f"Speedup vs Traditional (95% CI; hollow: n too small to test), "
                              f"final test error difference and keep rate against {axis}; mean "
                              f"over configurations sharing a value.", "",
                              {"points": records}))
    return figures


def performance_profile_plot(profiles: list[dict], target_index: int,
                             out_dir: Path) -> Figure | None:
    rows = [p for p in profiles if p["target_index"] == target_index]
    if not rows:
        return None
    plt, sns = _plt()
    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    for row in rows:
        ax.step(row["tau"], row["rho"], where="post",
                label=f"{row['label']} ({row['n_workloads']} workloads)")
    ax.set_xlim(1.0, rows[0]["r_max"])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("tau (time to target / fastest)")
    ax.set_ylabel("fraction of workloads")
    ax.set_title(f"Performance profiles (target #{target_index + 1}, r_max = "
                 f"{rows[0]['r_max']:g})", fontsize=10)
    ax.legend(fontsize=7)
    path = _save(fig, out_dir / f"performance_profile__t{target_index}.png")
    return Figure(path, f"Performance profiles (target #{target_index + 1})",
                  "Fraction of workloads where a configuration's median time to target is within "
                  "tau of the fastest configuration's.", "")


def tuning_curves(tuning_runs, tuned: dict[str, dict], fig_dir: Path) -> Figure | None:
    """A two-stage study's tuning stage: final validation error against each tuned value, one
    line per method configuration (every tuning seed a dot, the mean a line), the value each
    method was timed at ringed."""
    import json
    import math

    from sbbench.analysis.grouping import method_name

    fields = sorted({k for run in tuning_runs for k in json.loads(
        run.tags.get(R.TAG_TUNED_VALUES, "{}"))} | {k for t in tuned.values()
                                                    for s in t["settings"] for k in s})
    numeric = [f for f in fields if all(_is_float(run.params.get(f)) for run in tuning_runs)]
    if not tuning_runs or not numeric:
        return None
    key = numeric[0]
    series: dict[str, list[tuple[float, float]]] = {}
    for run in tuning_runs:
        label = method_name(run.method) + "".join(
            f" {k}={float(run.config[k]):g}" for k in sorted(run.config)
            if k in ("beta", "staleness") and _is_float(run.config[k]))
        value = run.metrics.get(R.M_FINAL_VAL)
        error = float(value) if value is not None and run.outcome == R.OUTCOME_OK else math.nan
        series.setdefault(label, []).append((float(run.params[key]), error))
    plt, sns = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = dict(zip(sorted(series), sns.color_palette("tab10", len(series))))
    data = {}
    for label, points in sorted(series.items()):
        xs = sorted({x for x, _ in points})
        means = [float(np.nanmean([e for x2, e in points if x2 == x])) for x in xs]
        ax.scatter([x for x, _ in points], [e for _, e in points], color=colors[label], s=14,
                   alpha=0.6)
        ax.plot(xs, means, marker="o", color=colors[label], label=label)
        method = next(r.method for r in tuning_runs if label.startswith(method_name(r.method)))
        chosen = [s.get(key) for s in tuned.get(method, {}).get("settings", [])]
        for x, mean in zip(xs, means):
            if x in chosen:
                ax.scatter([x], [mean], s=160, facecolors="none", edgecolors=colors[label],
                           linewidths=2)
        data[label] = {"x": xs, "mean_final_val_error": means, "chosen": chosen}
    ax.set_xscale("log")
    tried = sorted({x for points in series.values() for x, _ in points})
    ax.set_xticks(tried, [f"{x:g}" for x in tried])
    ax.minorticks_off()
    ax.set_xlabel(key)
    ax.set_ylabel("final validation error (tuning seeds)")
    ax.set_title("Tuning stage: each method's error against its " + key)
    ax.legend(fontsize=8)
    path = _save(fig, fig_dir / "tuning.png")
    return Figure(path, "Tuning stage", "Final validation error of every tuning run (dots) and "
                  "their mean (line) against the tuned value; the ringed point is the value "
                  "each method was timed at. Tuning seeds are never timed.", "", data)


def _is_float(text) -> bool:
    try:
        float(text)
        return True
    except (TypeError, ValueError):
        return False
