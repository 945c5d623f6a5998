"""The analysis in a glance, for the MLflow UI: headline metrics of the analysis run (sortable and
chartable in the experiment table) and the Markdown note shown on a sweep's parent run."""

from __future__ import annotations

import math
import re

NOTE_TAG = "mlflow.note.content"  # MLflow shows this tag as the run's description


def _key_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def speedup_metric_key(comparison: dict, several_workloads: bool) -> str:
    prefix = f"{_key_part(comparison['workload'])}." if several_workloads else ""
    return (f"{prefix}speedup.{_key_part(comparison['method'])}_vs_"
            f"{_key_part(comparison['baseline'])}.t{comparison['target_index']}")


def headline_metrics(summary: dict) -> dict[str, float]:
    """`speedup.<method>_vs_<baseline>.t<target>` (and `.ci_low`, `.ci_high`), prefixed with the
    workload when the analysis covers several; only finite values (MLflow stores numbers)."""
    several = len({c["workload"] for c in summary.get("comparisons", [])}) > 1
    metrics = {}
    for comparison in summary.get("comparisons", []):
        key = speedup_metric_key(comparison, several)
        for suffix, field in (("", "speedup"), (".ci_low", "ci_low"), (".ci_high", "ci_high")):
            value = comparison.get(field)
            if isinstance(value, (int, float)) and math.isfinite(value):
                metrics[key + suffix] = float(value)
    return metrics


def _speedup_text(comparison: dict) -> str:
    value = comparison.get("speedup")
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "-"
    bound = {"upper": "<=", "lower": ">="}.get(comparison.get("bound_direction") or "", "")
    low, high = comparison.get("ci_low"), comparison.get("ci_high")
    interval = f" [{low:.2f}, {high:.2f}]" if isinstance(low, (int, float)) and \
        isinstance(high, (int, float)) else ""
    return f"{bound}{value:.2f}{interval}"


def _p_text(comparison: dict) -> str:
    if comparison.get("underpowered"):
        return "n too small"
    key = "p_holm" if comparison.get("family") == "confirmatory" else "p_value"
    value = comparison.get(key)
    if not isinstance(value, (int, float)):
        return "-"
    star = " *" if comparison.get("significant") else ""
    return f"{value:.3g}{star}" + ("" if key == "p_holm" else " (exploratory)")


def parent_note(summary: dict, study: str, analysis_run_id: str | None,
                experiment_id: str | None) -> str:
    """Markdown for a sweep's parent run: the verdict table per workload and target, the
    targets and where they came from, n per arm, and where the full report is."""
    lines = [f"## sbbench sweep `{study}`", ""]
    tuned = {m: t["settings"] for m, t in (summary.get("tuned_settings") or {}).items()}
    if any(tuned.values()):
        lines += ["Each method timed at its own tuned setting (chosen on seeds never timed): " +
                  ", ".join(f"{m} " + ("; ".join(" ".join(f"{k}={v}" for k, v in
                                                          sorted(s.items())) for s in settings)
                                       or "not tuned") for m, settings in tuned.items()), ""]
    for workload in summary.get("workloads", []):
        lines.append(f"### {workload['label']}")
        for target in workload.get("targets", []):
            lines.append(f"- target {target['index']}: validation error <= "
                         f"{target['value']:.4g} ({target['rule']}" +
                         (f"; from {target['source']})" if target.get("source") else ")"))
        lines += ["", "| method | vs | target | n | median time to target (s) | "
                      "speedup [95% CI] | p (Holm) | family |",
                  "|---|---|---|---|---|---|---|---|"]
        for comparison in summary.get("comparisons", []):
            if comparison["workload"] != workload["label"]:
                continue
            median = comparison.get("median_time_s")
            median_text = f"{median:.3g}" if isinstance(median, (int, float)) and \
                math.isfinite(median) else "not reached"
            lines.append(f"| {comparison['label']} | {comparison['baseline_label']} | "
                         f"t{comparison['target_index']} | {comparison['n']} vs "
                         f"{comparison['n_baseline']} | {median_text} | "
                         f"{_speedup_text(comparison)} | {_p_text(comparison)} | "
                         f"{comparison.get('family', '-')} |")
        lines.append("")
    lines.append("Speedup = median time to target of the baseline / of the method; "
                 "* significant after Holm over the confirmatory family.")
    if analysis_run_id:
        link = (f"#/experiments/{experiment_id}/runs/{analysis_run_id}" if experiment_id
                else analysis_run_id)
        lines.append(f"Full report: the artifacts of the [analysis run]({link}) "
                     "(`report.html`, `report.md`, `summary.json`, `figures/`).")
    return "\n".join(lines)
