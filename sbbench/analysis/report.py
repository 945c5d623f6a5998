"""Reports: one document model rendered twice, as Markdown (figures as relative PNG files) and as
a self-contained HTML page (figures embedded as base64 PNG)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

from sbbench.analysis import record as R
from sbbench.analysis.figures import Figure
from sbbench.analysis.summary import fmt_diff, fmt_num, fmt_p, fmt_raw_p, fmt_speedup


@dataclass
class Document:
    title: str
    blocks: list[tuple] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("h", level, text))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("p", text))

    def bullets(self, items: list[str]) -> None:
        if items:
            self.blocks.append(("ul", items))

    def pre(self, text: str) -> None:
        self.blocks.append(("pre", text))

    def table(self, headers: list[str], rows: list[list[str]]) -> None:
        if rows:
            self.blocks.append(("table", headers, rows))

    def figure(self, fig: Figure | None) -> None:
        if fig is not None:
            self.blocks.append(("img", fig))


def render_markdown(doc: Document, out_dir: Path) -> str:
    lines = [f"# {doc.title}", ""]
    for block in doc.blocks:
        kind = block[0]
        if kind == "h":
            lines += ["#" * block[1] + " " + block[2], ""]
        elif kind == "p":
            lines += [block[1], ""]
        elif kind == "ul":
            lines += [f"- {item}" for item in block[1]] + [""]
        elif kind == "pre":
            lines += ["```", block[1], "```", ""]
        elif kind == "table":
            headers, rows = block[1], block[2]
            esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
            lines.append("| " + " | ".join(esc(h) for h in headers) + " |")
            lines.append("|" + "|".join("---" for _ in headers) + "|")
            lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
            lines.append("")
        elif kind == "img":
            fig: Figure = block[1]
            rel = fig.path.relative_to(out_dir).as_posix()
            lines += [f"![{fig.title}]({rel})", "", f"*{fig.caption}*", ""]
    return "\n".join(lines)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;
margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.85em}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f0f0f0}
pre{background:#f7f7f7;padding:0.8em;overflow-x:auto;font-size:0.8em}
figure{margin:1em 0}
figcaption{font-size:0.85em;color:#555}
img{max-width:100%}
"""


def render_html(doc: Document) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>{e(doc.title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{e(doc.title)}</h1>"]
    for block in doc.blocks:
        kind = block[0]
        if kind == "h":
            parts.append(f"<h{block[1]}>{e(block[2])}</h{block[1]}>")
        elif kind == "p":
            parts.append(f"<p>{e(block[1])}</p>")
        elif kind == "ul":
            parts.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "pre":
            parts.append(f"<pre>{e(block[1])}</pre>")
        elif kind == "table":
            head = "".join(f"<th>{e(str(h))}</th>" for h in block[1])
            body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>"
                           for row in block[2])
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "img":
            fig: Figure = block[1]
            data = base64.b64encode(fig.path.read_bytes()).decode("ascii")
            parts.append(f"<figure><img alt=\"{e(fig.title)}\" "
                         f"src=\"data:image/png;base64,{data}\">"
                         f"<figcaption>{e(fig.title)}: {e(fig.caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


# --- the content -------------------------------------------------------------------------------

PROTOCOL_NOTES = [
    "Time to target T: training-clock time of the first evaluation whose VALIDATION error is at "
    "or below the target (AlgoPerf); final quality is graded on the TEST set.",
    "A run that never reaches the target is right-censored at its budget (its last training-clock "
    "time), kept, and ranked slower than every run that finished. Diverged runs (NaN/inf loss) "
    "count as never reaching the target and are censored at the workload's longest budget; "
    "pruned sweep trials are censored at their last evaluation. Crashed, interrupted and "
    "unfinished runs are excluded and listed.",
    "Speedup = median(T_baseline) / median(T_method), 95% BCa bootstrap CI (seeded; percentile "
    "when BCa degenerates). With censoring the workload's longest budget stands in for infinity "
    "in the bootstrap and the interval is a bound ('<=' upper, '>=' lower).",
    "P(improvement) = P(T_method < T_baseline) + 1/2 P(tie), from the Mann-Whitney U statistic. "
    "Test: one-sided Mann-Whitney U (censored = +inf; exact without ties, exact permutation "
    "with ties, else tie-corrected normal). Secondary: one-sided log-rank and Welch's t on log "
    "times (no censoring only).",
    "Families: the confirmatory comparisons (declared with --confirmatory; by default each "
    "method against Traditional at the primary target, the first one, on its workload) are "
    "Holm-Bonferroni adjusted among themselves; every other comparison is exploratory: its raw "
    "p is shown, marked 'expl', and never called significant.",
    f"With fewer than {R.MIN_SEEDS_PER_ARM} runs in an arm, or when 1 / C(n_m + n_b, n_m) >= "
    "alpha = 0.05 (no one-sided rank test can reject), the comparison is flagged 'n too small' "
    "and none of its p-values is shown.",
    "Targets: one per factor x the median final validation error of Traditional (the first is "
    "primary), set from reference runs that are not timed (--target-from, or runs tagged "
    f"{R.TAG_ROLE}={R.ROLE_REFERENCE}) when there are any; otherwise from the timed "
    "Traditional seeds themselves, and the report says so.",
    "Final test error difference = mean(method) - mean(baseline) over finished runs (diverged "
    "and pruned runs have no final error: they are counted in n but not in this mean), BCa CI.",
    "Phase bound: r = (forward-select s / selection forward) / ((forward-train + backward + "
    "other) s / example backpropped), s = keep rate, f = selection forwards / example seen; "
    "bound per-epoch speedup 1/(r*f+s) (nominally 1/(r+s) for SB, 1/(r/n+s) for StaleSB).",
]


def comparison_rows(comparisons: list[dict], workload: str) -> list[list[str]]:
    rows = []
    for c in comparisons:
        if c["workload"] != workload:
            continue
        rows.append([
            f"{c['target_error']:.4g}", c["label"], c["baseline_label"], c["family"],
            f"{c['n']} vs {c['n_baseline']}", fmt_speedup(c), c.get("ci_method", ""),
            fmt_num(c["prob_improvement"], 2), fmt_raw_p(c, "p_value"), fmt_p(c),
            fmt_raw_p(c, "p_logrank"), fmt_raw_p(c, "p_welch_log"),
            fmt_num(c.get("speedup_examples_backpropped")), fmt_diff(c)])
    return rows


COMPARISON_HEADERS = ["target", "configuration", "baseline", "family", "n", "speedup [95% CI]",
                      "CI", "P(improve)", "p (MWU)", "p: Holm / expl raw", "p log-rank",
                      "p Welch log", "speedup (examples backpropped)",
                      "final test err diff [95% CI]"]


def build_document(summary: dict, table_text: str, figures: list[Figure]) -> Document:
    doc = Document("sbbench analysis")
    src = summary["source"]
    doc.paragraph(f"Generated {summary['generated_at']} from {src['tracking_uri']}, experiment "
                  f"{src['experiment']}" + (f", parent run {src['parent_run_id']}"
                                            if src.get("parent_run_id") else "")
                  + (f", study {src['study']}" if src.get("study") else "") + ".")
    counts = summary["runs"]
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(counts["by_outcome"].items()))
    doc.paragraph(f"{counts['kept']} runs analysed (censored ones included), "
                  f"{counts['excluded']} excluded, {counts['ignored']} non-training runs "
                  f"ignored; outcomes: {outcomes}. Bootstrap: "
                  f"{summary['options']['bootstrap_resamples']} resamples, seed "
                  f"{summary['options']['seed']}.")
    doc.paragraph(f"Target source: {summary['target_source']['text']}.")
    doc.paragraph("Confirmatory family (Holm-adjusted, at the primary target): "
                  f"{', '.join(summary['confirmatory_family']) or 'none'} "
                  f"({summary['holm_family_size']} comparisons); every other comparison is "
                  "exploratory.")
    doc.heading("Protocol")
    doc.bullets(PROTOCOL_NOTES)
    if summary["warnings"]:
        doc.heading("Warnings")
        doc.bullets(summary["warnings"])
    doc.heading("Summary tables")
    doc.pre(table_text)

    by_section: dict[str, list[Figure]] = {}
    for fig in figures:
        by_section.setdefault(fig.section, []).append(fig)

    for wl in summary["workloads"]:
        label = wl["label"]
        doc.heading(f"Workload {label}")
        doc.paragraph("Params: " + ", ".join(f"{k}={v}" for k, v in sorted(wl["params"].items())))
        if wl["targets"]:
            doc.bullets([f"target #{t['index'] + 1}{' (primary)' if t['index'] == 0 else ''}: "
                         f"validation error <= {t['value']:.4g} ({t['rule']})"
                         + (f", set from {t['source']}" if t["source"] else "")
                         for t in wl["targets"]])
        else:
            doc.paragraph(wl["target_note"])
        doc.heading("Comparisons", 3)
        doc.table(COMPARISON_HEADERS, comparison_rows(summary["comparisons"], label))
        doc.heading("Configurations", 3)
        doc.table(["target", "configuration", "n", "reached", "diverged", "pruned",
                   "median T (s)", "IQM T (s)", "median examples backpropped",
                   "final test err (mean)", "params"],
                  [[f"{r['target_error']:.4g}", r["label"], str(r["n"]), str(r["n_reached"]),
                    str(r["n_diverged"]), str(r["n_pruned"]),
                    "inf (censored)" if r["median_time_censored"] else fmt_num(r["median_time_s"]),
                    fmt_num(r["iqm_time_s"]), fmt_num(r["median_examples_backpropped_to_target"]),
                    fmt_num(r["final_test_error_mean"], 4),
                    ", ".join(f"{k}={v}" for k, v in sorted(r["config"].items()))]
                   for r in summary["configurations"] if r["workload"] == label])
        doc.heading("Phases and the theoretical bound", 3)
        doc.table(["configuration", "n", "forward select (s)", "forward train (s)",
                   "backward (s)", "other (s)", "total (s)", "r", "keep rate s", "f",
                   "measured epoch speedup", "bound 1/(r*f+s)", "nominal bound", "efficiency"],
                  [[p["label"], str(p["n"]), *[fmt_num(p[k]) for k in R.PHASES],
                    fmt_num(p["train_time_s"]), fmt_num(p["r"]), fmt_num(p["s"]),
                    fmt_num(p["f"]), fmt_num(p["measured_epoch_speedup"]),
                    fmt_num(p["bound_epoch_speedup"]),
                    (f"{fmt_num(p['bound_nominal'])} = {p['bound_formula']}"
                     if p["bound_nominal"] else "-"), fmt_num(p["efficiency"])]
                   for p in summary["phases"] if p["workload"] == label])
        doc.heading("Pareto front (final test error, training time)", 3)
        doc.table(["configuration", "n", "median final test error", "median training time (s)",
                   "Pareto-optimal"],
                  [[p["label"], str(p["n"]), fmt_num(p["final_test_error"], 4),
                    fmt_num(p["train_time_s"]), "yes" if p["on_front"] else ""]
                   for p in summary["pareto"] if p["workload"] == label])
        selection = [s for s in summary["selection"] if s["workload"] == label]
        if selection:
            doc.heading("What gets selected", 3)
            doc.table(["configuration", "runs", "backward share on noisy", "data share noisy",
                       "enrichment", "selection rate per class",
                       "selection rate per final-loss decile (low to high)"],
                      [[s["label"], str(s["n_runs"]), fmt_num(s["share_backward_noisy"]),
                        fmt_num(s["share_data_noisy"]), fmt_num(s["noisy_enrichment"]),
                        ", ".join(f"{k}:{fmt_num(v, 2)}"
                                  for k, v in s["per_class_selection_rate"].items()),
                        ", ".join(fmt_num(v, 2) for v in s["per_loss_decile_selection_rate"])]
                       for s in selection])
        for fig in by_section.get(label, []):
            doc.figure(fig)

    doc.heading("Across workloads")
    if summary["geometric_means"]:
        doc.table(["configuration", "baseline", "target #", "workloads", "geometric mean speedup",
                   "bound?"],
                  [[g["label"], g["baseline"], str(g["target_index"] + 1),
                    str(g["n_workloads"]), fmt_num(g["geomean_speedup"]),
                    "yes" if g["any_bound"] else ""] for g in summary["geometric_means"]])
    for fig in by_section.get("", []):
        doc.figure(fig)
    if summary["excluded_runs"]:
        doc.heading("Excluded runs")
        doc.table(["run", "name", "method", "outcome", "status", "reason"],
                  [[r["run_id"], r["run_name"], r["method"], r["outcome"], r["status"],
                    r["reason"]] for r in summary["excluded_runs"]])
    if summary["censored_runs"]:
        doc.heading("Censored runs kept in the analysis (diverged, pruned)")
        doc.table(["run", "name", "configuration", "outcome", "reason"],
                  [[r["run_id"], r["run_name"], r["label"], r["outcome"], r["reason"]]
                   for r in summary["censored_runs"]])
    return doc


def write_reports(summary: dict, table_text: str, figures: list[Figure],
                  out_dir: Path) -> dict[str, Path]:
    doc = build_document(summary, table_text, figures)
    md = out_dir / "report.md"
    md.write_text(render_markdown(doc, out_dir))
    page = out_dir / "report.html"
    page.write_text(render_html(doc))
    return {"markdown": md, "html": page}
