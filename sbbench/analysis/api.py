"""Entry points: `analyze(options)` for the CLI and the sweep, and the argparse wiring."""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from sbbench.analysis import record as R
from sbbench.urls import mask_url

MIN_RESAMPLES = 99              # below this a bootstrap interval means nothing
PROTOCOL_RESAMPLES = 9999       # the protocol's floor (docs/analysis.md)
DEFAULT_TARGET_FACTOR = 1.4     # the paper's rule: 1.4 x Traditional's final error (primary)
TIGHT_TARGET_FACTOR = 1.1       # a tight one beside it: does the conclusion hang on the target?
DEFAULT_TARGET_FACTORS = (DEFAULT_TARGET_FACTOR, TIGHT_TARGET_FACTOR)


class AnalysisInputError(ValueError):
    """A bad input to the analysis: one line naming the field, the value and what is allowed."""

    def __init__(self, field_name: str, value: Any, allowed: str):
        self.field_name = field_name
        super().__init__(f"analysis: invalid {field_name}={value!r}; {allowed}")


@dataclass(frozen=True)
class AnalyzeOptions:
    experiment: str | None = "sbbench"
    parent_run_id: str | None = None
    study: str | None = None
    # one target per factor x Traditional's median final validation error; the first is the
    # primary target (the one confirmatory comparisons are made at)
    target_factors: tuple[float, ...] = DEFAULT_TARGET_FACTORS
    # absolute targets; when non-empty they replace the factor rule, unless
    # factor_with_absolute: then the report covers the factor targets and these
    target_errors: tuple[float, ...] = ()
    factor_with_absolute: bool = False
    # a parent run id or a study name whose Traditional runs set the factor targets (reference
    # runs, never timed); None: runs tagged sbbench.role=reference, else the timed runs
    target_from: str | None = None
    # the confirmatory family as METHOD:BASELINE pairs, compared at the primary target on each
    # workload; None: every method against Traditional
    confirmatory: tuple[str, ...] | None = None
    out_dir: str = "sbbench-out/analysis"
    tracking_uri: str | None = None
    bootstrap_resamples: int = 9999
    seed: int = 0
    log_to_mlflow: bool = True


@dataclass(frozen=True)
class ReportPaths:
    """Where the outputs are: by name (`paths.html`, `paths["html"]`); iterating yields the
    paths that exist (html, markdown, summary.json, the figures folder)."""
    summary: Path
    html: Path | None = None
    markdown: Path | None = None
    figures: Path | None = None

    def __iter__(self) -> Iterator[Path]:
        return iter([p for p in (self.html, self.markdown, self.summary, self.figures)
                     if p is not None])

    def __getitem__(self, name: str) -> Path | None:
        return getattr(self, name)


@dataclass
class AnalysisResult:
    summary: dict              # what summary.json holds
    table_text: str            # the printed tables (or the one-line 'no runs' message)
    report_paths: ReportPaths
    analysis_run_id: str | None = None
    figures: list = field(default_factory=list)   # figures.Figure, with the data each one shows


# --- validation --------------------------------------------------------------------------------

def factors_with_primary(primary: float) -> tuple[float, ...]:
    """`primary` first, then the default factors that differ from it."""
    return (primary, *[f for f in DEFAULT_TARGET_FACTORS if not math.isclose(f, primary)])


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and \
        math.isfinite(value)


def validate(options: AnalyzeOptions) -> None:
    """Every check that needs no tracking store, before anything is read or written."""
    factors = options.target_factors
    if not isinstance(factors, tuple) or not factors:
        raise AnalysisInputError("target_factor", factors,
                                 "allowed: one or more numbers > 0 (e.g. 1.4 1.1)")
    for factor in factors:
        if not _is_number(factor) or factor <= 0:
            raise AnalysisInputError("target_factor", factor, "allowed: a number > 0 (e.g. 1.4)")
    if len(set(factors)) != len(factors):
        raise AnalysisInputError("target_factor", list(factors), "allowed: distinct values")
    for value in options.target_errors:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value) or not 0 <= value <= 1:
            raise AnalysisInputError("target_error", value,
                                     "allowed: validation errors between 0 and 1")
    if len(set(options.target_errors)) != len(options.target_errors):
        raise AnalysisInputError("target_error", list(options.target_errors),
                                 "allowed: distinct values")
    n = options.bootstrap_resamples
    if isinstance(n, bool) or not isinstance(n, int) or n < MIN_RESAMPLES:
        raise AnalysisInputError("resamples", n, f"allowed: an integer >= {MIN_RESAMPLES} "
                                 f"(the protocol uses >= {PROTOCOL_RESAMPLES})")
    if isinstance(options.seed, bool) or not isinstance(options.seed, int) or options.seed < 0:
        raise AnalysisInputError("seed", options.seed, "allowed: an integer >= 0")
    confirmatory_family(options)
    for name in ("experiment", "parent_run_id", "study", "target_from"):
        value = getattr(options, name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise AnalysisInputError(name, value, "allowed: a non-empty name, or leave it out")
    out = Path(options.out_dir)
    if out.exists() and not out.is_dir():
        raise AnalysisInputError("out", options.out_dir, "allowed: a directory (this is a file)")


def confirmatory_family(options: AnalyzeOptions) -> frozenset[tuple[str, str]] | None:
    """The declared (method, baseline) pairs, or None for the default family."""
    if options.confirmatory is None:
        return None
    if isinstance(options.confirmatory, str) or not options.confirmatory:
        raise AnalysisInputError("confirmatory", options.confirmatory,
                                 "allowed: one or more METHOD:BASELINE pairs, e.g. sb:traditional")
    return frozenset(parse_comparison(text) for text in options.confirmatory)


def parse_comparison(text: Any) -> tuple[str, str]:
    """'sb:traditional' -> ('sb', 'traditional'), or a one-line AnalysisInputError."""
    methods = [m for m in R.METHOD_NAMES if m != R.TRADITIONAL]
    allowed = (f"allowed: METHOD:BASELINE with METHOD one of {', '.join(methods)} and BASELINE "
               f"one of {', '.join(R.BASELINES)} (not the method itself)")
    parts = text.strip().lower().split(":") if isinstance(text, str) else []
    if len(parts) != 2 or parts[0] not in methods or parts[1] not in R.BASELINES \
            or parts[0] == parts[1]:
        raise AnalysisInputError("confirmatory", text, allowed)
    return parts[0], parts[1]


def resolve_tracking_uri(uri: str | None) -> str:
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or R.DEFAULT_TRACKING_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(Path(uri[len("sqlite:///"):]).resolve())
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        if not path.is_file():
            raise AnalysisInputError("tracking_uri", uri, f"no such database file {path}; "
                                     "allowed: the sqlite file the runs were logged to, or an "
                                     "http(s) tracking server")
    elif "://" not in uri:
        raise AnalysisInputError("tracking_uri", uri, "allowed: sqlite:///FILE.db, "
                                 "http(s)://HOST:PORT, postgresql://..., mysql://...")
    return uri


def _experiment_ids(client, options: AnalyzeOptions) -> tuple[list[str], str]:
    from mlflow.exceptions import MlflowException

    if options.parent_run_id:
        try:
            parent = client.get_run(options.parent_run_id)
        except MlflowException:
            raise AnalysisInputError("parent_run", options.parent_run_id,
                                     "no such run in the tracking store") from None
        experiment = client.get_experiment(parent.info.experiment_id)
        return [experiment.experiment_id], experiment.name
    if options.experiment is None and os.environ.get("MLFLOW_EXPERIMENT_ID"):
        experiment = client.get_experiment(os.environ["MLFLOW_EXPERIMENT_ID"])
        return [experiment.experiment_id], experiment.name
    name = options.experiment or R.DEFAULT_EXPERIMENT
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        names = sorted(e.name for e in client.search_experiments())
        raise AnalysisInputError("experiment", name, "no such experiment; allowed: "
                                 + (", ".join(names) if names else "(the store has none)"))
    return [experiment.experiment_id], experiment.name


# --- the analysis ------------------------------------------------------------------------------

def analyze(options: AnalyzeOptions) -> AnalysisResult:
    from mlflow import MlflowClient

    from sbbench.analysis import comparisons as C
    from sbbench.analysis import costs, figures as F
    from sbbench.analysis.grouping import group_runs
    from sbbench.analysis.loading import is_tuning, load_runs, tuned_settings
    from sbbench.analysis.report import write_reports
    from sbbench.analysis.summary import full_table, write_summary

    validate(options)
    uri = resolve_tracking_uri(options.tracking_uri)
    client = MlflowClient(tracking_uri=uri)
    experiment_ids, experiment_name = _experiment_ids(client, options)
    loaded = load_runs(client, experiment_ids, options.parent_run_id, options.study)
    reference_runs, reference_label = _reference_runs(client, options, loaded)
    out_dir = Path(options.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = {"tracking_uri": mask_url(uri), "experiment": experiment_name,
              "experiment_ids": experiment_ids, "parent_run_id": options.parent_run_id,
              "study": options.study}
    base_summary = {
        "schema": "sbbench.analysis/1",
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "options": asdict(options), "source": source, "alpha": R.ALPHA,
        "runs": {"kept": len(loaded.runs), "excluded": len(loaded.excluded),
                 "ignored": loaded.ignored, "reference": len(reference_runs),
                 "tuning": loaded.tuning,
                 "by_outcome": loaded.counts()},
        "excluded_runs": [_run_line(r) for r in loaded.excluded],
    }
    warnings: list[str] = []
    if options.bootstrap_resamples < PROTOCOL_RESAMPLES:
        warnings.append(f"bootstrap with {options.bootstrap_resamples} resamples, below the "
                        f"protocol's {PROTOCOL_RESAMPLES}")
    for run in loaded.excluded:
        warnings.append(f"excluded run {run.run_id} ({run.method}, {run.outcome}): "
                        f"{run.failure_reason or run.status}")

    if not loaded.runs:
        where = f"experiment {experiment_name!r}" + (
            f", parent run {options.parent_run_id}" if options.parent_run_id else "") + (
            f", study {options.study!r}" if options.study else "")
        message = (f"no training runs to analyse in {where} at {uri}"
                   + (f" ({len(loaded.excluded)} excluded: failed or unfinished)"
                      if loaded.excluded else ""))
        summary = {**base_summary, "message": message, "warnings": warnings, "workloads": [],
                   "configurations": [], "comparisons": []}
        path = write_summary(summary, out_dir / "summary.json")
        return AnalysisResult(summary, message, ReportPaths(path))

    workloads = group_runs(loaded.runs)
    warnings += pitfall_warnings(workloads)
    warnings += set_targets(workloads, options, reference_runs, reference_label)
    config_rows, comparisons = [], []
    for wl in workloads:
        rows, comps = C.analyse_workload(wl, n_resamples=options.bootstrap_resamples,
                                         seed=options.seed)
        config_rows += rows
        comparisons += comps
        if not wl.by_method(R.TRADITIONAL):
            warnings.append(f"{wl.label}: no Traditional runs, so no speedups vs Traditional")
    family = confirmatory_family(options) or C.default_confirmatory(
        sorted({cg.method for wl in workloads for cg in wl.configs}))
    C.apply_holm(comparisons, family)
    warnings += unmatched_confirmatory(family, comparisons)
    general_warnings = list(warnings)   # the underpowered ones are already under their tables
    warnings += underpowered_warnings(comparisons)
    phase_rows = [row for wl in workloads for row in costs.phase_table(wl)]
    pareto_rows = [row for wl in workloads for row in costs.pareto(wl)]
    selection_rows = [row for wl in workloads for row in costs.selection_stats(wl, client)]
    geomeans = C.geometric_means(workloads, comparisons)
    profiles = C.performance_profiles(workloads, config_rows)

    workload_rows = [_workload_row(wl) for wl in workloads]
    target_source = target_source_summary(workload_rows, options.target_from)
    censored = [{**_run_line(r), "label": cg.label, "workload": wl.label}
                for wl in workloads for cg in wl.configs for r in cg.runs
                if r.outcome in (R.OUTCOME_DIVERGED, R.OUTCOME_PRUNED)]
    tuned = tuned_settings(loaded.runs)
    table_text = full_table(workload_rows, config_rows, comparisons)
    if any(t["settings"] for t in tuned.values()):
        tuning_runs = loaded.tuning + sum(is_tuning(r) for r in loaded.reference)
        table_text = tuned_settings_text(tuned, tuning_runs) + "\n\n" + table_text
    if general_warnings:
        table_text += "\n\nwarnings:\n" + "\n".join(f"- {w}" for w in general_warnings)

    fig_dir = out_dir / "figures"
    fig_dir.mkdir(exist_ok=True)
    for old in fig_dir.glob("*.png"):
        old.unlink()
    figures, figure_notes = _figures(F, workloads, config_rows, comparisons, phase_rows,
                                     pareto_rows, selection_rows, profiles, fig_dir,
                                     options.seed)
    warnings += figure_notes

    summary = {**base_summary, "warnings": warnings, "target_source": target_source,
               "workloads": workload_rows, "configurations": config_rows,
               "comparisons": comparisons,
               "confirmatory_family": sorted(f"{m}:{b}" for m, b in family),
               "holm_family_size": sum(c["p_holm"] is not None for c in comparisons),
               "phases": phase_rows, "pareto": pareto_rows, "selection": selection_rows,
               "geometric_means": geomeans, "performance_profiles": profiles,
               "censored_runs": censored, "tuned_settings": tuned,
               "figures": [f.path.relative_to(out_dir).as_posix() for f in figures]}
    run_id = _start_analysis_run(client, experiment_ids[0], options) \
        if options.log_to_mlflow else None
    summary["analysis_run_id"] = run_id
    try:
        written = write_reports(summary, table_text, figures, out_dir)
        paths = ReportPaths(summary=write_summary(summary, out_dir / "summary.json"),
                            html=written["html"], markdown=written["markdown"], figures=fig_dir)
    except BaseException as error:  # a Ctrl-C while writing must not leave the run RUNNING
        if run_id is not None:
            _end_analysis_run(client, run_id, error)
        raise
    if run_id is not None:
        _finish_analysis_run(client, run_id, out_dir, summary)
    return AnalysisResult(summary, table_text, paths, run_id, figures)


def tuned_settings_text(tuned: dict[str, dict], tuning_runs: int) -> str:
    """The line above the tables of a two-stage study: what each method was timed with."""
    from sbbench.analysis.grouping import method_name

    parts = []
    for method, entry in tuned.items():
        settings = entry["settings"]
        text = "not tuned" if not settings else "; ".join(
            " ".join(f"{k}={v}" for k, v in sorted(s.items())) for s in settings)
        parts.append(f"{method_name(method)} {text}")
    return (f"tuned settings (each method timed at its own best setting from a tuning stage of "
            f"{tuning_runs} run(s) on seeds never timed): " + ", ".join(parts))


def underpowered_warnings(comparisons: list[dict]) -> list[str]:
    """One line per workload naming its comparisons too small to test (not one per row)."""
    by_workload: dict[str, list[str]] = {}
    for comp in comparisons:
        if comp["underpowered"]:
            by_workload.setdefault(comp["workload"], []).append(
                f"{comp['label']} vs {comp['baseline_label']} at target "
                f"#{comp['target_index'] + 1} ({comp['n']} vs {comp['n_baseline']} runs: "
                f"{comp['underpowered_reason']})")
    return [f"{workload}: n too small, p-values not shown: {'; '.join(items)}"
            for workload, items in by_workload.items()]


def unmatched_confirmatory(family: frozenset[tuple[str, str]],
                           comparisons: list[dict]) -> list[str]:
    """A declared comparison that no workload holds is said, not silently dropped."""
    made = {(c["method"], c["baseline"]) for c in comparisons}
    return [f"confirmatory {m}:{b} matches no comparison in these runs"
            for m, b in sorted(family - made)]


# --- targets -----------------------------------------------------------------------------------

def _reference_runs(client, options: AnalyzeOptions, loaded) -> tuple[list, str]:
    """The runs that set the factor targets and how the report names them: --target-from's
    Traditional runs, else the runs tagged sbbench.role=reference (possibly none)."""
    from sbbench.analysis.loading import load_target_runs
    from sbbench.analysis.time_to_target import finished_traditional

    if not options.target_from:
        return loaded.reference, f"tagged {R.TAG_ROLE}={R.ROLE_REFERENCE}"
    value = options.target_from
    parent = _run_or_none(client, value)
    if parent is not None:
        runs = load_target_runs(client, [parent.info.experiment_id], parent.info.run_id, None)
        label = f"--target-from parent run {value}"
    else:
        every_experiment = [e.experiment_id for e in client.search_experiments()]
        runs = load_target_runs(client, every_experiment, None, value)
        label = f"--target-from study {value!r}"
    if not finished_traditional(runs):
        raise AnalysisInputError("target_from", value, "no finished Traditional run under that "
                                 "parent run or in that study; allowed: the run id of a parent "
                                 "run or a study name whose Traditional runs finished")
    timed = {r.run_id for r in loaded.runs}
    overlap = sorted(r.run_id for r in runs if r.run_id in timed)
    if overlap:
        raise AnalysisInputError("target_from", value, f"{len(overlap)} of its runs are also "
                                 "timed in this analysis; allowed: reference runs that are not "
                                 "analysed (another parent run or study)")
    return runs, label


def _run_or_none(client, run_id: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        return None


def set_targets(workloads, options: AnalyzeOptions, reference_runs: list,
                reference_label: str) -> list[str]:
    """Each workload's targets (from its reference runs when it has any) and the warnings."""
    from sbbench.analysis.time_to_target import TargetSource, workload_targets

    warnings = []
    for wl in workloads:
        mine = [r for r in reference_runs if r.workload_key == wl.key]
        source = TargetSource.choose(wl.runs, mine, reference_label)
        wl.targets, wl.target_note = workload_targets(
            wl.runs, options.target_factors, tuple(options.target_errors),
            options.factor_with_absolute, source)
        factor_targets = [t for t in wl.targets if t.source]
        wl.target_source = source.description if factor_targets else \
            "absolute targets as given (no runs set them)"
        if wl.target_note:
            warnings.append(f"{wl.label}: {wl.target_note}")
        if options.target_from and factor_targets and not source.is_reference:
            warnings.append(f"{wl.label}: {reference_label} has no finished Traditional run of "
                            "this workload: its targets come from the timed seeds")
    return warnings


def target_source_summary(workload_rows: list[dict], target_from: str | None) -> dict:
    """summary.json's `target_source`: where the factor targets came from, said plainly."""
    from sbbench.analysis.time_to_target import TIMED_SEEDS_SOURCE

    timed = [w["label"] for w in workload_rows if w["target_source"] == TIMED_SEEDS_SOURCE]
    if timed:
        text = (f"targets of {', '.join(timed)} set from {TIMED_SEEDS_SOURCE}; run reference "
                f"seeds (tag {R.TAG_ROLE}={R.ROLE_REFERENCE}) or pass --target-from")
    else:
        text = "; ".join(sorted({w["target_source"] for w in workload_rows})) or "no targets"
    return {"from_timed_seeds": bool(timed), "timed_seed_workloads": timed,
            "target_from": target_from, "text": text,
            "by_workload": {w["label"]: w["target_source"] for w in workload_rows}}


def _workload_row(wl) -> dict:
    return {"label": wl.label, "slug": wl.slug, "params": dict(wl.workload),
            "targets": [{"index": t.index, "value": t.value, "rule": t.rule,
                         "source": t.source} for t in wl.targets],
            "target_note": wl.target_note, "target_source": wl.target_source,
            "configurations": [cg.label for cg in wl.configs], "n_runs": len(wl.runs)}


def pitfall_warnings(workloads) -> list[str]:
    """Pitfalls of the protocol (docs/analysis.md) that the record can reveal."""
    from sbbench.analysis.loading import canonical_key, parse_value

    out = []
    seen: dict[str, set] = {}
    for wl in workloads:
        rest = {k: v for k, v in wl.workload.items() if k != "eval_every_examples"}
        seen.setdefault(canonical_key(rest), set()).add(wl.workload.get("eval_every_examples"))
        for split in ("val_size", "test_size"):
            size = parse_value(wl.workload.get(split, "None"))
            if isinstance(size, int) and size < 10_000:
                out.append(f"{wl.label}: {split}={size}: below 10,000 evaluation examples the "
                           "error's standard error can be as large as the target gaps")
    for frequencies in seen.values():
        if len(frequencies) > 1:
            out.append("workloads differing only in eval_every_examples "
                       f"({', '.join(sorted(str(f) for f in frequencies))}) are analysed apart: "
                       "evaluating more often gives more chances to cross early")
    return out


def _run_line(run) -> dict:
    return {"run_id": run.run_id, "run_name": run.run_name, "method": run.method,
            "outcome": run.outcome, "status": run.status, "seed": run.seed,
            "reason": run.failure_reason}


def _figures(F, workloads, config_rows, comparisons, phase_rows, pareto_rows, selection_rows,
             profiles, fig_dir: Path, seed: int) -> tuple[list, list[str]]:
    """The figures, and a note for each one that had nothing to show."""
    figures, notes = [], []
    for wl in workloads:
        rows = [r for r in config_rows if r["workload"] == wl.label]
        figures.append(F.error_vs_time(wl, fig_dir, seed=seed))
        figures.append(F.error_vs_examples_backpropped(wl, fig_dir, seed=seed))
        for target in wl.targets:
            figures.append(F.time_to_target_bars(wl, rows, target.index, fig_dir))
            figures.append(F.kaplan_meier(wl, rows, target.index, fig_dir))
        figures.append(F.speedup_forest(wl, [c for c in comparisons
                                             if c["workload"] == wl.label], fig_dir))
        figures.append(F.phase_bars(wl, [p for p in phase_rows if p["workload"] == wl.label],
                                    fig_dir))
        figures.append(F.pareto_scatter(wl, [p for p in pareto_rows
                                             if p["workload"] == wl.label], fig_dir))
        selection = F.selection_probability(wl, [s for s in selection_rows
                                                 if s["workload"] == wl.label], fig_dir)
        figures.append(selection)
        if selection is None and any(cg.method != R.TRADITIONAL for cg in wl.configs):
            notes.append(f"{wl.label}: no run has {R.ARTIFACT_PER_EXAMPLE}: the selection-"
                         "probability figure is skipped")
    figures += F.ablation_panels(comparisons, phase_rows, selection_rows, fig_dir)
    for index in sorted({p["target_index"] for p in profiles}):
        figures.append(F.performance_profile_plot(profiles, index, fig_dir))
    return [f for f in figures if f is not None], notes


def _start_analysis_run(client, experiment_id: str, options: AnalyzeOptions) -> str:
    tags = {R.TAG_KIND: R.KIND_ANALYSIS}
    if options.parent_run_id:
        tags[R.TAG_PARENT] = options.parent_run_id
    if options.study:
        tags[R.TAG_STUDY] = options.study
    run = client.create_run(experiment_id, run_name="analysis", tags=tags)
    return run.info.run_id


def _finish_analysis_run(client, run_id: str, out_dir: Path, summary: dict) -> None:
    from mlflow.entities import Param

    try:
        opts = summary["options"]
        client.log_batch(run_id, params=[
            Param("target_factors", ",".join(f"{v:g}" for v in opts["target_factors"])),
            Param("target_from", str(opts["target_from"])),
            Param("confirmatory", ",".join(summary.get("confirmatory_family", [])) or "None"),
            Param("target_errors", ",".join(f"{v:g}" for v in opts["target_errors"]) or "None"),
            Param("factor_with_absolute", str(opts.get("factor_with_absolute", False))),
            Param("bootstrap_resamples", str(opts["bootstrap_resamples"])),
            Param("seed", str(opts["seed"]))])
        from mlflow.entities import Metric

        from sbbench.analysis.headline import headline_metrics

        now_ms = int(_dt.datetime.now().timestamp() * 1000)
        headline = [Metric(k, v, now_ms, 0) for k, v in headline_metrics(summary).items()]
        for start in range(0, len(headline), 1000):  # MLflow's batch limit
            client.log_batch(run_id, metrics=headline[start:start + 1000])
        for name in ("report.html", "report.md", "summary.json"):
            client.log_artifact(run_id, str(out_dir / name))
        client.log_artifacts(run_id, str(out_dir / "figures"), artifact_path="figures")
        client.set_terminated(run_id, status="FINISHED")
    except BaseException as error:
        _end_analysis_run(client, run_id, error)
        raise


def _end_analysis_run(client, run_id: str, error: BaseException) -> None:
    interrupted = isinstance(error, (KeyboardInterrupt, SystemExit))
    client.set_terminated(run_id, status="KILLED" if interrupted else "FAILED")


# --- command line ------------------------------------------------------------------------------

def add_analyze_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("which runs")
    g.add_argument("--experiment", default=None,
                   help="MLflow experiment (default: sbbench; the parent's with --parent-run)")
    g.add_argument("--parent-run", dest="parent_run", default=None,
                   help="only the child runs of this sweep parent run")
    g.add_argument("--study", default=None, help="only runs tagged sbbench.study=STUDY")
    g.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or "
                   "sqlite:///mlflow.db in the working directory)")
    t = parser.add_argument_group("targets")
    t.add_argument("--target-factor", nargs="+", default=None, metavar="FACTOR",
                   help="one target per FACTOR x median final validation error of the "
                   "workload's Traditional runs; the first is the primary target (default: "
                   + " ".join(f"{f:g}" for f in DEFAULT_TARGET_FACTORS) + "; commas work too)")
    t.add_argument("--target-from", default=None, metavar="RUN_ID_OR_STUDY",
                   help="a parent run id or study name whose Traditional runs set the factor "
                   "targets and are never timed (default: runs tagged "
                   f"{R.TAG_ROLE}={R.ROLE_REFERENCE}, else the timed runs themselves)")
    s = parser.add_argument_group("statistics")
    s.add_argument("--confirmatory", nargs="+", default=None, metavar="METHOD:BASELINE",
                   help="the confirmatory comparisons, made at the primary target on each "
                   "workload; Holm runs over these only, every other comparison is "
                   "exploratory (default: each method vs traditional, e.g. sb:traditional)")
    t.add_argument("--target-error", type=float, nargs="+", default=None, metavar="ERROR",
                   help="absolute validation-error targets (several allowed; they replace the "
                   "factor rule unless --target-factor is given too)")
    o = parser.add_argument_group("output")
    o.add_argument("--out", default="sbbench-out/analysis",
                   help="directory for report.html, report.md, summary.json and figures/")
    o.add_argument("--resamples", type=int, default=PROTOCOL_RESAMPLES,
                   help=f"bootstrap resamples (default: {PROTOCOL_RESAMPLES})")
    o.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    o.add_argument("--no-log", action="store_true",
                   help="do not log the reports as artifacts of an MLflow 'analysis' run")


def options_from_args(args: argparse.Namespace) -> AnalyzeOptions:
    factors = DEFAULT_TARGET_FACTORS if args.target_factor is None else \
        parse_factors(args.target_factor)
    return AnalyzeOptions(
        experiment=args.experiment, parent_run_id=args.parent_run, study=args.study,
        target_factors=factors, target_errors=tuple(args.target_error or ()),
        factor_with_absolute=args.target_factor is not None and bool(args.target_error),
        target_from=args.target_from,
        confirmatory=None if args.confirmatory is None else tuple(
            item for text in args.confirmatory for item in _split_list(text)),
        out_dir=args.out, tracking_uri=args.tracking_uri, bootstrap_resamples=args.resamples,
        seed=args.seed, log_to_mlflow=not args.no_log)


def _split_list(text: str) -> list[str]:
    """'1.4,1.1' or '1.4 1.1' as one argument (MLproject passes a parameter as one word)."""
    return [part for part in text.replace(",", " ").split() if part]


def parse_factors(texts: list[str]) -> tuple[float, ...]:
    factors = []
    for text in texts:
        for part in _split_list(text):
            try:
                factors.append(float(part))
            except ValueError:
                raise AnalysisInputError("target_factor", part, "allowed: numbers > 0, the "
                                         "primary first (e.g. 1.4 1.1)") from None
    return tuple(factors)


def run_analyze_command(args: argparse.Namespace) -> int:
    result = analyze(options_from_args(args))
    print(result.table_text)
    paths = result.report_paths
    if paths.html is not None:
        print(f"\nreports: {paths.html} | {paths.markdown} | {paths.summary} "
              f"({len(result.summary.get('figures', []))} figures in {paths.figures})")
        if result.analysis_run_id:
            print(f"logged to MLflow run {result.analysis_run_id}")
    else:
        print(f"summary: {paths.summary}", file=sys.stderr)
    return 0
