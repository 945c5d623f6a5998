"""Figures (seaborn on matplotlib's Agg backend), one PNG file each."""

from __future__ import annotations

import math
from dataclasses import dataclass
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


def error_vs_time(wl: WorkloadGroup, out_dir: Path, *, seed: int,
                  n_boot: int = 1000) -> Figure | None:
    """Validation error vs training-clock time, median per configuration with a 95% bootstrap
    band over runs (each run's curve held constant between evaluations)."""
    runs = [(cg, r) for cg in wl.configs for r in cg.runs if r.has_curve]
    if not runs:
        return None
    t_max = max(r.budget_time_s for _, r in runs if math.isfinite(r.budget_time_s))
    grid = np.linspace(0.0, t_max, TIME_GRID_POINTS)
    frames = []
    labels = _hue([cg.label for cg, _ in runs], [cg.method for cg, _ in runs])
    for (cg, run), hue in zip(runs, labels):
        curve = run.curve.dropna(subset=[R.M_TRAIN_TIME, R.M_VAL_ERROR])
        if curve.empty:
            continue
        times = curve[R.M_TRAIN_TIME].to_numpy()
        values = curve[R.M_VAL_ERROR].to_numpy()
        idx = np.searchsorted(times, grid, side="right") - 1
        keep = (idx >= 0) & (grid <= times[-1])
        frames.append(pd.DataFrame({"training time (s)": grid[keep],
                                    "validation error": values[idx[keep]],
                                    "configuration": hue, "run": run.run_id}))
    if not frames:
        return None
    data = pd.concat(frames, ignore_index=True)
    plt, sns = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    sns.lineplot(data=data, x="training time (s)", y="validation error", hue="configuration",
                 estimator="median", errorbar=("ci", 95), n_boot=n_boot, seed=seed, ax=ax)
    for target in wl.targets:
        ax.axhline(target.value, ls="--", lw=1, color="grey")
        ax.annotate(f"target {target.value:.4g}", (grid[-1], target.value), ha="right",
                    va="bottom", fontsize=8, color="grey")
    if (data["validation error"] > 0).all():
        ax.set_yscale("log")
    ax.set_title(f"Validation error vs training time: {wl.label}", fontsize=10)
    path = _save(fig, out_dir / f"error_vs_time__{wl.slug}.png")
    return Figure(path, f"Error vs training time ({wl.label})",
                  "Median validation error across runs with a 95% bootstrap band; a curve "
                  "stops where its run stopped (diverged runs stop early).", wl.label)


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
    for row, color in zip(rows, sns.color_palette(n_colors=len(rows))):
        km = row["kaplan_meier"]
        t = [0.0] + list(km["time_s"])
        p = [0.0] + list(km["probability"])
        ax.step(t, p, where="post", color=color, label=f"{row['label']} (n={row['n']})")
        censored = [r["time_s"] for r in row["runs"] if not r["reached"]]
        if censored and km["time_s"]:
            at = np.interp(censored, km["time_s"], km["probability"], left=0.0)
            ax.plot(censored, at, "|", color=color, ms=10)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("P(reached target by t)")
    ax.set_title(f"Kaplan-Meier, target {rows[0]['target_error']:.4g}: {wl.label}", fontsize=10)
    ax.legend(fontsize=8)
    path = _save(fig, out_dir / f"kaplan_meier__{wl.slug}__t{target_index}.png")
    return Figure(path, f"Kaplan-Meier curves, target {rows[0]['target_error']:.4g} "
                  f"({wl.label})", "Fraction of runs that reached the target by each training "
                  "time (scipy.stats.ecdf on right-censored data); ticks mark censored runs.",
                  wl.label)


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
                            "data share noisy": sel.get("share_data_noisy")})
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
                              f"Speedup vs Traditional (95% CI), final test error difference "
                              f"and keep rate against {axis}; mean over configurations sharing "
                              f"a value.", ""))
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
