"""summary.json (strict JSON: no NaN or Infinity literals) and the printed fixed-width table."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from sbbench.analysis import record as R

REQUIRED_COMPARISON_KEYS = (
    "workload", "method", "config", "baseline", "target_error", "n", "n_baseline",
    "success_rate", "median_time_s", "speedup", "ci_low", "ci_high", "p_value", "p_holm",
    "family", "underpowered", "prob_improvement", "final_error_diff")
UNDERPOWERED = "n too small"


def json_safe(value: Any) -> Any:
    """Plain JSON types; non-finite floats become None (their meaning is kept in flags such as
    `median_time_censored`, `ci_is_bound`, `underpowered`)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, str):
        return value
    return str(value)


def write_summary(summary: dict, path: Path) -> Path:
    text = json.dumps(json_safe(summary), indent=2, sort_keys=False, allow_nan=False)
    path.write_text(text + "\n")
    return path


# --- formatting --------------------------------------------------------------------------------

def fmt_num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}g}"


def fmt_time(value: float | None, censored: bool = False) -> str:
    if censored:
        return "inf (censored)"
    if value is None:
        return "-"
    return f"{value:.3g}"


def fmt_speedup(row: dict | None) -> str:
    if row is None:
        return "-"
    s = row.get("speedup")
    if s is None or not math.isfinite(s):
        return "-"
    mark = {"upper": "<=", "lower": ">=", "unknown": "~"}.get(row.get("bound_direction") or "",
                                                            "")
    text = f"{mark}{s:.2f}"
    if row.get("ci_low") is not None and row.get("ci_high") is not None:
        text += f" [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"
    if row.get("ci_method", "BCa") not in ("BCa",) and row.get("ci_low") is not None:
        text += "p"   # percentile fallback (BCa degenerate)
    return text


def _p_text(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "-"
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def fmt_p(row: dict | None) -> str:
    """The p-value a reader may read: hidden when underpowered; Holm-adjusted (starred when
    significant) in the confirmatory family; raw and marked 'expl' otherwise."""
    if row is None:
        return "-"
    if row.get("underpowered"):
        return UNDERPOWERED
    if row.get("family") == R.FAMILY_EXPLORATORY:
        return f"{_p_text(row.get('p_value'))} expl"
    p = row.get("p_holm")
    if p is None:
        return "-"
    return _p_text(p) + ("*" if row.get("significant") else "")


def fmt_raw_p(row: dict, key: str) -> str:
    """A secondary p-value, hidden exactly as fmt_p hides the primary one."""
    return UNDERPOWERED if row.get("underpowered") else fmt_num(row.get(key))


def fmt_diff(row: dict | None) -> str:
    if row is None or row.get("final_error_diff") is None:
        return "-"
    text = f"{row['final_error_diff']:+.4f}"
    lo, hi = row.get("final_error_diff_ci_low"), row.get("final_error_diff_ci_high")
    if lo is not None and hi is not None:
        text += f" [{lo:+.4f}, {hi:+.4f}]"
    return text


def fixed_width(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return "\n".join(lines)


def workload_table(workload: str, target: dict, config_rows: list[dict],
                   comparisons: list[dict]) -> str:
    """The printed table of one workload and one target."""
    rows_cfg = [r for r in config_rows
                if r["workload"] == workload and r["target_index"] == target["index"]]
    comps = [c for c in comparisons
             if c["workload"] == workload and c["target_index"] == target["index"]]
    by = {(c["label"], c["baseline"]): c for c in comps}
    has_kath = any(c["baseline"] == R.KATH18 for c in comps)
    headers = ["configuration", "n", "success [95% CI]", "median T (s)",
               "speedup vs Traditional [95% CI]"]
    if has_kath:
        headers.append("vs Katharopoulos18 [95% CI]")
    headers += ["p: Holm / expl raw (vs Trad" + (" / K18)" if has_kath else ")"),
                "final test err diff vs Trad [95% CI]"]
    table, notes, underpowered = [], [], []
    for row in rows_cfg:
        trad = by.get((row["label"], R.TRADITIONAL))
        kath = by.get((row["label"], R.KATH18))
        success = "-" if row["success_rate"] is None else (
            f"{row['n_reached']}/{row['n']} [{row['success_ci_low']:.2f}, "
            f"{row['success_ci_high']:.2f}]")
        n_text = str(row["n"])
        extra = []
        if row["n_diverged"]:
            extra.append(f"{row['n_diverged']}div")
        if row["n_pruned"]:
            extra.append(f"{row['n_pruned']}pr")
        if extra:
            n_text += " (" + ",".join(extra) + ")"
        line = [row["label"], n_text, success,
                fmt_time(row["median_time_s"], row["median_time_censored"]), fmt_speedup(trad)]
        if has_kath:
            line.append(fmt_speedup(kath))
        p_text = fmt_p(trad)
        if has_kath:
            p_text += " / " + fmt_p(kath)
        line += [p_text, fmt_diff(trad)]
        table.append(line)
        for comp in (trad, kath):
            if comp is None:
                continue
            name = "Traditional" if comp["baseline"] == R.TRADITIONAL else "Katharopoulos18"
            if comp.get("underpowered"):
                underpowered.append(f"{row['label']} vs {name} ({comp['n']} vs "
                                    f"{comp['n_baseline']} runs, min attainable p = "
                                    f"{comp['min_attainable_p']:.3g})")
            elif comp.get("underpowered_after_holm") and comp.get("p_holm") is not None:
                notes.append(f"! {row['label']} vs {name}: with {comp['holm_family_size']} "
                             f"comparisons Holm cannot go below alpha at n={comp['n']} vs "
                             f"{comp['n_baseline']}")
            if comp.get("baseline_mismatch"):
                notes.append(f"  {row['label']} vs {name} ({comp['baseline_label']}): "
                             f"baseline differs in {', '.join(comp['baseline_mismatch'])}")
        if row["n_crossed_before_divergence"]:
            notes.append(f"  {row['label']}: {row['n_crossed_before_divergence']} diverged run(s) "
                         "had crossed the target before diverging (counted as not reached)")
    if underpowered:
        # one footnote for all of them: a line per row would bury the table
        notes.insert(0, f"! {UNDERPOWERED} (fewer than {R.MIN_SEEDS_PER_ARM} runs in an arm, or "
                     f"no one-sided rank test can reach alpha {R.ALPHA}): p-values not shown "
                     "for " + "; ".join(underpowered))
    title = (f"== {workload} | target val error <= {target['value']:.4g} ({target['rule']}) ==")
    if target.get("source"):
        title += f"\n   target set from {target['source']}"
    legend = ("speedup = median(T_baseline)/median(T_method); <= / >= : bound (censored runs "
              "at the workload budget); p suffix: percentile CI; * significant after Holm over "
              f"the confirmatory family (alpha {R.ALPHA}); expl: exploratory comparison, raw "
              "one-sided p (not adjusted, never significant); div/pr: diverged/pruned runs "
              "counted as censored")
    parts = [title, fixed_width(headers, table)]
    if notes:
        parts.append("\n".join(notes))
    parts.append(legend)
    return "\n".join(parts)


def full_table(workloads: list[dict], config_rows: list[dict], comparisons: list[dict]) -> str:
    blocks = []
    for wl in workloads:
        if not wl["targets"]:
            blocks.append(f"== {wl['label']} | {wl['target_note']} ==")
            continue
        for target in wl["targets"]:
            blocks.append(workload_table(wl["label"], target, config_rows, comparisons))
    return "\n\n".join(blocks)
