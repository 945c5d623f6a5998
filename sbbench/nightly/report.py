"""A night's report: the printed table, nightly.md, nightly.json and the trend figures."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from sbbench.nightly import gate as G

SCHEMA = "sbbench.nightly/1"


def _num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.4g}"


def _band(row: dict) -> str:
    """The accepted side of the alarm edge (interval limit AND minimum change combined)."""
    edge = row.get("alarm_edge")
    if edge is None:
        return "-"
    sign = ">=" if row["direction"] == G.HIGHER else "<="
    if row.get("rule") == G.RULE_SHORT:
        return f"{sign} {_num(edge)} (short)"
    return f"{sign} {_num(edge)}"


def _verdict_text(row: dict) -> str:
    text = row["verdict"]
    if row.get("too_noisy"):
        text += f" (history too noisy: CV {row['history_cv']:.1%})"
    confirm = row.get("confirmation")
    if confirm:
        text += f" ({confirm})"
    return text


def table_rows(report: dict) -> list[list[str]]:
    rows = []
    for row in report["metrics"]:
        change = row.get("worsening")
        change_text = "-" if change is None or not math.isfinite(change) else \
            f"{-change:+.1%}" if row["direction"] == G.HIGHER else f"{change:+.1%}"
        rows.append([row["metric"], _num(row["tonight"]), _num(row.get("history_median")),
                     _band(row), change_text, _verdict_text(row)])
    return rows


HEADERS = ["metric", "tonight", "history median", "band", "change", "verdict"]


def fixed_width(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)] if rows else \
        [len(h) for h in headers]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def text_report(report: dict) -> str:
    parts = [f"nightly {report['suite']} ({report['fingerprint']}): {report['headline']}"]
    history = report["history"]
    parts.append(f"history: {history['note']}")
    if report["metrics"]:
        parts.append(fixed_width(HEADERS, table_rows(report)))
    bad = [i for i in report["invariants"] if not i["ok"]]
    parts.append(f"invariants: {len(report['invariants']) - len(bad)} of "
                 f"{len(report['invariants'])} hold" + "".join(f"\n  FAILED {i['name']}: "
                                                               f"{i['detail']}" for i in bad))
    for problem in report["problems"]:
        parts.append(f"could not measure: {problem}")
    for regression in report["regressions"]:
        parts.append(f"REGRESSION {regression}")
    changes = report.get("changes_since_last_good")
    if changes is not None:
        parts.append("changed since the last good night: " + (", ".join(changes) or "nothing"))
    for warning in report["warnings"]:
        parts.append(f"warning: {warning}")
    parts.append(f"exit {report['exit_code']} ({report['verdict']})")
    return "\n".join(parts)


def markdown_report(report: dict, figures: list[Path]) -> str:
    lines = [f"# Nightly {report['suite']}: {report['verdict']}", "",
             f"{report['headline']}", "",
             f"- night run: `{report['run_id']}`, started {report['started']}, "
             f"{report.get('wall_s', 0):.0f} s",
             f"- suite: `{report['suite_path']}` (digest `{report['suite_digest']}`)",
             f"- fingerprint `{report['fingerprint']}`: " + ", ".join(
                 f"{k} {v}" for k, v in report["fingerprint_detail"].items()
                 if k != "suite_digest"),
             f"- history: {report['history']['note']}",
             f"- gate: {report['gate_rule']}",
             f"- false alarms: at per-metric level {report['level']:g}, the interval alone "
             f"would alarm on {report['family_false_alarm']:.1%} of pure-noise nights over "
             f"{len(report['metrics'])} metrics (1 - level^M); the minimum change and the "
             "confirmation re-run bring it lower",
             f"- exit code: {report['exit_code']}", ""]
    if report["metrics"]:
        rows = table_rows(report)
        lines += ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
    if report["regressions"]:
        lines += ["## Regressions", ""] + [f"- {r}" for r in report["regressions"]] + [""]
    lines += ["## Invariants", ""]
    lines += [f"- {'ok' if i['ok'] else '**FAILED**'} `{i['name']}`: {i['detail']}"
              for i in report["invariants"]] or ["- (none checked)"]
    lines.append("")
    if report["problems"]:
        lines += ["## Could not measure", ""] + [f"- {p}" for p in report["problems"]] + [""]
    if report.get("changes_since_last_good") is not None:
        lines += ["## Changed since the last good night", ""]
        lines += [f"- {c}" for c in report["changes_since_last_good"]] or ["- nothing"]
        lines.append("")
    if report["warnings"]:
        lines += ["## Warnings", ""] + [f"- {w}" for w in report["warnings"]] + [""]
    evidence = [r for r in report["metrics"] if r["verdict"] in (G.REGRESSION,)
                or r.get("confirmation")]
    if evidence:
        lines += ["## Evidence", ""] + [f"- `{r['metric']}`: {r['evidence']}"
                                         + (f"; {r['confirmation_evidence']}"
                                            if r.get("confirmation_evidence") else "")
                                         for r in evidence] + [""]
    if figures:
        lines += ["## Trends", ""] + [f"![{f.stem}](figures/{f.name})" for f in figures]
    return "\n".join(lines) + "\n"


def write_json(report: dict, path: Path) -> Path:
    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    path.write_text(json.dumps(clean(report), indent=2, sort_keys=True))
    return path


def trend_figures(report: dict, series: dict[str, list[tuple[str, float]]],
                  out_dir: Path) -> list[Path]:
    """One figure per metric kind: each configuration's value over the history nights, the
    accepted band (the prediction interval around the history), tonight's point marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    by_kind: dict[str, list[dict]] = {}
    for row in report["metrics"]:
        by_kind.setdefault(row["metric"].split("/", 1)[0], []).append(row)
    paths = []
    for kind, rows in by_kind.items():
        cols = min(3, len(rows))
        nrows = math.ceil(len(rows) / cols)
        fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 2.8 * nrows), squeeze=False)
        for ax, row in zip(axes.flat, rows):
            points = series.get(row["metric"], [])
            xs = list(range(len(points)))
            ax.plot(xs, [v for _, v in points], "o-", color="0.45", ms=3, lw=1,
                    label="earlier nights")
            limit, mean = row.get("band_limit"), row.get("history_mean")
            if limit is not None and mean is not None:
                ax.axhspan(min(limit, 2 * mean - limit), max(limit, 2 * mean - limit),
                           color="tab:blue", alpha=0.12,
                           label=f"{report['level']:g} prediction interval")
            if row.get("history_median") is not None:
                ax.axhline(row["history_median"], color="tab:blue", lw=0.8, ls="--",
                           label="history median")
            edge = row.get("alarm_edge")
            if edge is not None:
                ax.axhline(edge, color="tab:red", lw=1, ls=":",
                           label="alarm edge (interval AND min. change)")
            if points and row.get("tonight") is not None:
                values = [v for _, v in points] + [row["tonight"]] + \
                    ([edge] if edge is not None else [])
                span = max(values) - min(values) or abs(max(values)) * 0.05 or 1.0
                ax.set_ylim(min(values) - 0.15 * span, max(values) + 0.15 * span)
            if row.get("tonight") is not None:
                color = "tab:red" if row["verdict"] == G.REGRESSION else "tab:green"
                ax.plot([len(points)], [row["tonight"]], "*", ms=12, color=color,
                        label=f"tonight ({row['verdict']})")
            ticks = xs + [len(points)]
            labels = [d for d, _ in points] + ["tonight"]
            step = max(1, len(ticks) // 6)
            ax.set_xticks(ticks[::step])
            ax.set_xticklabels(labels[::step], rotation=30, ha="right", fontsize=7)
            ax.set_title(row["metric"], fontsize=9)
            ax.tick_params(axis="y", labelsize=7)
        for ax in list(axes.flat)[len(rows):]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=6, loc="best")
        fig.suptitle(f"{report['suite']}: {kind} (higher is better)" if rows[0]["direction"] ==
                     G.HIGHER else f"{report['suite']}: {kind} (lower is better)", fontsize=10)
        fig.tight_layout()
        path = out_dir / f"trend_{kind}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
