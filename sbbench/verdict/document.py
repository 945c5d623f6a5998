"""docs/results.md: the verdict document, every number read from the studies' records, and its
figures copied from the analyses into a folder beside it."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from sbbench import record_names as N
from sbbench.analysis.grouping import method_name
from sbbench.verdict import rules
from sbbench.verdict.claims import ClaimRow
from sbbench.verdict.studies import STUDY_ROLES, Study

# The analysis figures each study contributes (file-name prefixes, figures/ of its analysis).
FIGURE_PICKS = {
    "mnist1d": ("tuning", "error_vs_time__", "error_vs_backpropped__", "kaplan_meier__",
                "speedup_forest__", "selection_probability__", "phases__"),
    "label_noise": ("ablation__label_noise", "selection_probability__"),
    "beta": ("ablation__beta",),
    "staleness": ("ablation__staleness",),
    "mnist1d_wide_lr": ("tuning",),
}
STUDY_PURPOSE = {
    "mnist1d": "the main comparison: the speedup claims, SB vs Random, hard examples",
    "label_noise": "robustness to randomized labels; backward passes on mislabelled examples",
    "beta": "keep rate and speedup against beta (figures)",
    "staleness": "forward passes saved and speedup against staleness (figures)",
    "mnist1d_wide_lr": "the main comparison again, the baselines' learning-rate grid widened",
}
# The paper's setting (Jiang et al. 2019, docs/methods.md), beside which the runs' own params
# are printed.
PAPER_SETTING = (
    ("dataset", "dataset", "CIFAR10, CIFAR100, SVHN (train + extra)"),
    ("model", "model", ("WideResNet-28-10 (CIFAR), WideResNet-16-8 (SVHN); ResNet-18, "
     "MobileNetV2")),
    ("training examples", "train_size", "50,000 (CIFAR), 604,388 (SVHN)"),
    ("epochs", "epochs", "about 160-200 (step schedule at epochs 60/120/160)"),
    ("time budget (s)", "time_budget_s", "none (epochs)"),
    ("learning rate", "lr", "0.1, stepped down; the same for every method"),
    ("batch size", "batch_size", "128"),
    ("momentum / weight decay", ("momentum", "weight_decay"), "0.9 / 5e-4"),
    ("evaluation examples", ("val_size", "test_size"), ("the 10,000 (CIFAR) / 26,032 (SVHN) "
     "test images")),
    ("device", "@sbbench.device", "GPU"),
    ("hardware", "@sbbench.device_name", "not stated beyond GPU"),
    ("CPU threads", "num_threads", "-"),
    ("torch", "@sbbench.torch_version", "PyTorch of 2019"),
)


def cell(value) -> str:
    text = "-" if value is None or value == "" else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def table(headers: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return out


def seconds(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if value >= 3600:
        return f"{value:,.0f} s ({value / 3600:.1f} h)"
    return f"{value:,.1f} s"


def claim_table(rows: list[ClaimRow], with_study: bool = True) -> list[str]:
    headers = ["claim", "paper", "sbbench measured: speedup [95% CI]", "p (one-sided)",
               "n per arm", "verdict", "why", "seeds per arm to settle"]
    if with_study:
        headers.insert(2, "study, target")
    out = []
    for r in rows:
        line = [r.claim, r.paper, r.speedup, r.p, r.n, f"**{r.verdict}**", r.reason, r.seeds]
        if with_study:
            line.insert(2, f"{r.study}; {r.target}" if r.target else r.study)
        out.append(line)
    return table(headers, out)


# --- figures -----------------------------------------------------------------------------------

def copy_figures(studies: dict[str, Study], figures_dir: Path) -> dict[str, list[Path]]:
    """Copy each study's chosen figures into figures_dir/<role>/ (replacing what an earlier
    verdict put there); {role: copied paths}."""
    copied: dict[str, list[Path]] = {}
    for role in STUDY_ROLES:
        target = figures_dir / role
        if target.exists():
            shutil.rmtree(target)
        study = studies.get(role)
        if study is None or study.figures_dir is None or not study.figures_dir.is_dir():
            continue
        picks = FIGURE_PICKS.get(role, ())
        files = sorted(p for p in study.figures_dir.glob("*.png")
                       if any(p.name.startswith(prefix) for prefix in picks))
        if not files:
            continue
        target.mkdir(parents=True)
        copied[role] = [Path(shutil.copy(p, target / p.name)) for p in files]
    return copied


# --- sections ----------------------------------------------------------------------------------

def studies_section(studies: dict[str, Study]) -> list[str]:
    rows = []
    for role in STUDY_ROLES:
        s = studies[role]
        if s.parent_run_id is None or not s.ran:
            rows.append([role, STUDY_PURPOSE[role], rules.NOT_RUN, s.parent_run_id, "-", "-",
                         "-", "-", "-", s.note])
            continue
        timing = s.compute("timing") if any(c.stage for c in s.children) else s.compute()
        tuning = s.compute("tuning")
        total = s.compute()
        runs = f"{total['runs']}" + (f" ({tuning['runs']} tuning, {timing['runs']} timing)"
                                     if tuning["runs"] else "")
        rows.append([role, STUDY_PURPOSE[role], "ran", f"`{s.parent_run_id}`",
                     f"`{s.analysis_run_id}`" if s.analysis_run_id else "not logged", runs,
                     seconds(s.wall_time_s), seconds(total["train_time_s"]) +
                     (f" (tuning {seconds(tuning['train_time_s'])})" if tuning["runs"] else ""),
                     seconds(total["wall_time_s"]), s.note or s.parent_status])
    return table(["study", "what it answers", "status", "sweep parent run", "analysis run",
                  "training runs", "wall time (parent run)", ("training compute (sum of "
                  "total_train_time_s)"), "sum of the runs' wall time (total_wall_time_s)",
                  "note"], rows)


def tuned_section(studies: dict[str, Study]) -> list[str]:
    rows = []
    for role in STUDY_ROLES:
        s = studies[role]
        if not s.children:
            rows.append([role, "-", rules.NOT_RUN, "-"])
            continue
        timed = [c for c in s.children if c.stage != "tuning" and c.role != "reference"]
        for method in sorted({c.method for c in timed}, key=_method_order):
            mine = [c for c in timed if c.method == method]
            values = sorted({c.tuned_values for c in mine if c.tuned_values})
            origin = sorted({c.tuned_from for c in mine if c.tuned_from})
            if not values:
                rows.append([role, method_name(method), "not tuned", "-"])
                continue
            shown = "; ".join(_tuned_text(v) for v in values)
            untuned = sum(not c.tuned_values for c in mine)
            if untuned:
                shown += f" ({untuned} of {len(mine)} runs not tuned)"
            tuning = [c for c in s.children if c.stage == "tuning" and c.method == method]
            rows.append([role, method_name(method), shown, "; ".join(origin) or "-",
                         _edge_text(values, tuning)])
    return table(["study", "method", "tuned setting (timing runs' sbbench.tuned_values)",
                  "chosen how (sbbench.tuned_from)", "at the edge of the tried values?"], rows)


def _edge_text(values: list[str], tuning: list) -> str:
    """A chosen numeric value that is the smallest or largest of three or more tried: the best
    setting may lie outside the tuning grid, and the method may be under-tuned."""
    notes = []
    for raw in values:
        try:
            chosen = json.loads(raw)
        except ValueError:
            continue
        for key, value in sorted(chosen.items()):
            tried = set()
            for run in tuning:
                try:
                    tried.add(float(run.params[key]))
                except (KeyError, TypeError, ValueError):
                    pass
            tried = sorted(tried)
            if not isinstance(value, (int, float)) or len(tried) < 3:
                continue
            if float(value) in (tried[0], tried[-1]):
                end = "largest" if float(value) == tried[-1] else "smallest"
                notes.append(f"**yes**: {key}={value} is the {end} of {len(tried)} values "
                             "tried; the best may lie outside the grid")
    if not tuning:
        return "-"
    return "; ".join(notes) or "no"


def _tuned_text(raw: str) -> str:
    try:
        values = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(values, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(values.items()))
    return str(values)


def _method_order(method: str) -> int:
    order = ["traditional", "random", "sb", "stale_sb", "kath18"]
    return order.index(method) if method in order else len(order)


def _param_values(study: Study, key) -> str:
    keys = key if isinstance(key, tuple) else (key,)
    parts = []
    for k in keys:
        runs = [c for c in study.children if c.stage != "tuning"]
        if k.startswith("@"):
            found = sorted({c.tags.get(k[1:], "") for c in runs} - {""})
        else:
            found = sorted({_shown(c.params.get(k, "")) for c in runs} - {""},
                           key=lambda v: (len(v), v))
        parts.append(", ".join(found) if found else "-")
    return " / ".join(parts)


def _shown(value: str) -> str:
    return "the default" if value == "None" else value


def workload_line(studies: dict[str, Study]) -> str:
    """'mnist1d / cnn1d on cpu (host ...)': what the timed runs of every study ran."""
    runs = [c for s in studies.values() for c in s.children if c.stage != "tuning"]
    if not runs:
        return "no study has run yet"

    def values(get) -> str:
        found = sorted({get(c) for c in runs} - {"", None})
        return ", ".join(found) if found else "unknown"

    device = values(lambda c: c.tags.get(N.TAG_DEVICE))
    hardware = values(lambda c: c.tags.get(N.TAG_DEVICE_NAME))
    if hardware not in ("unknown", device):
        device += f" ({hardware})"
    return (f"dataset {values(lambda c: c.params.get('dataset'))}, model "
            f"{values(lambda c: c.params.get('model'))}, device {device}, "
            f"{values(lambda c: _shown(c.params.get('num_threads', '')))} thread(s), "
            f"{values(lambda c: c.params.get('epochs'))} epochs")


def setting_section(studies: dict[str, Study]) -> list[str]:
    ran = [r for r in STUDY_ROLES if studies[r].children]
    headers = ["aspect", "paper"] + [f"{r} (this repo's runs)" for r in ran]
    rows = []
    for label, key, paper in PAPER_SETTING:
        rows.append([label, paper] + [_param_values(studies[r], key) for r in ran])
    seeds = []
    for r in ran:
        s = studies[r]
        counts = {}
        for c in s.children:
            if c.stage != "tuning" and c.role != "reference":
                counts[c.method] = counts.get(c.method, 0) + 1
        seeds.append(", ".join(f"{method_name(m)} {n}" for m, n in
                               sorted(counts.items(), key=lambda kv: _method_order(kv[0]))))
    rows.append(["timed runs per method", "not stated (one run per curve in the figures)"]
                + seeds)
    return table(headers, rows)


def run_ids_section(studies: dict[str, Study]) -> list[str]:
    out = []
    for role in STUDY_ROLES:
        s = studies[role]
        if s.parent_run_id is None:
            continue
        out += ["<details>", (f"<summary>{role}: sweep parent run {s.parent_run_id}, analysis "
                f"run {s.analysis_run_id or 'not logged'}, {len(s.children)} training runs"
                "</summary>"), ""]
        rows = []
        arms: dict[str, list[str]] = {}
        for conf in (s.summary or {}).get("configurations", []):
            if conf["target_index"] != 0:
                continue
            arms[f"{conf['workload']} / {conf['label']}"] = [r["run_id"] for r in conf["runs"]]
        for arm, ids in arms.items():
            rows.append([arm, "timed (compared)", len(ids), " ".join(f"`{i}`" for i in ids)])
        compared = {i for ids in arms.values() for i in ids}
        others: dict[tuple[str, str], list[str]] = {}
        for c in s.children:
            if c.run_id in compared:
                continue
            what = ("reference" if c.role == "reference" else c.stage or "not compared") + \
                f" ({c.status.lower()})"
            others.setdefault((method_name(c.method), what), []).append(c.run_id)
        for (method, what), ids in sorted(others.items()):
            rows.append([method, what, len(ids), " ".join(f"`{i}`" for i in ids)])
        out += table(["arm", "role", "runs", "MLflow run ids"], rows)
        out += ["", "</details>", ""]
    return out or ["No study has run yet."]


def reproduce_section(studies: dict[str, Study], command: str, uri_flag: str,
                      resamples: int, seed: int) -> list[str]:
    out = ["This whole document (every table and figure below):", "", "```bash", command, "```",
           "", ("The analysis behind each study's rows (its full report, with the per-target "
           "tables, phases, Pareto front and every figure):"), "", "```bash"]
    for role in STUDY_ROLES:
        s = studies[role]
        if s.parent_run_id and s.ran:
            out.append(f"sbbench analyze --parent-run {s.parent_run_id}{uri_flag} "
                       f"--resamples {resamples} --seed {seed} --out sbbench-out/{role}")
        else:
            out.append(f"# {role}: not run yet (sbbench sweep --study studies/{role}.yaml)")
    out += ["```"]
    return out


def source_line(study: Study, command: str) -> str:
    """Where a table's numbers come from and the commands that reproduce it."""
    if study.parent_run_id is None or not study.ran:
        return f"_Source: study {study.role}, {rules.NOT_RUN}._"
    return (f"_Source: study {study.role} (sweep parent run `{study.parent_run_id}`, analysis "
            f"run `{study.analysis_run_id or 'not logged'}`); reproduce: `{command}` (its "
            f"analysis alone: `sbbench analyze --parent-run {study.parent_run_id}`)._")


def figures_section(copied: dict[str, list[Path]], doc_dir: Path,
                    studies: dict[str, Study]) -> list[str]:
    out = []
    for role in STUDY_ROLES:
        paths = copied.get(role, [])
        if not paths:
            out += [f"**{role}**: {rules.NOT_RUN if not studies[role].ran else 'no figures'}.",
                    ""]
            continue
        out += [f"**{role}** (from analysis run {studies[role].analysis_run_id or '-'}):", ""]
        for path in paths:
            rel = path.relative_to(doc_dir).as_posix()
            out += [f"![{path.stem}]({rel})", ""]
    return out


def noisy_section(rows: list[dict]) -> list[str]:
    if not rows:
        return [f"Label-noise study: {rules.NOT_RUN}."]

    def pct(v):
        return "-" if v is None else f"{v:.1%}"

    body = [[f"{r['label_noise']:.1%}", f"{pct(r['sb'])} (n={r['n_sb']})",
             f"{pct(r['random'])} (n={r['n_random']})", pct(r["data"]),
             "-" if not r["sb"] or not r["data"] else f"{r['sb'] / r['data']:.2f}x",
             "-" if r["p_sb_more"] is None else f"{r['p_sb_more']:.2g} (raw, exploratory)"]
            for r in rows]
    return table(["randomized labels", "SB: share of backprops on mislabelled",
                  "Random: same share", "mislabelled share of the data",
                  "SB enrichment (share / data share)", "p (SB share > Random's)"], body)
