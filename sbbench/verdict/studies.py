"""The studies a verdict reads: which sweep parent run each one is, its child runs (ids, arms,
stages, tuned values, compute) and its analysis (run now, or reused from the analysis run a
sweep left)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sbbench import record_names as N
from sbbench.analysis.api import AnalysisInputError, AnalyzeOptions
from sbbench.analysis.loading import PROGRESS_BAR_ENV

# The studies a verdict draws on, in the order the document shows them: the main comparison
# (the speedup claims), the ablations (label noise: robustness; beta and staleness: figures)
# and a check of the main comparison with the baselines' learning-rate grid widened.
STUDY_ROLES = ("mnist1d", "label_noise", "beta", "staleness", "mnist1d_wide_lr")
RUN_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class ChildRun:
    run_id: str
    name: str
    method: str
    status: str
    seed: str
    stage: str            # tuning | timing | "" (a one-stage study)
    role: str             # reference | ""
    tuned_values: str     # the JSON of TAG_TUNED_VALUES, "" when absent
    tuned_from: str
    train_time_s: float
    wall_time_s: float
    params: dict
    tags: dict = field(default_factory=dict)


@dataclass
class Study:
    role: str
    name: str                        # the study name (tag sbbench.study) or what was asked for
    parent_run_id: str | None = None
    experiment_id: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    parent_status: str = ""
    children: list[ChildRun] = field(default_factory=list)
    summary: dict | None = None      # the analysis' summary.json
    figures_dir: Path | None = None
    analysis_run_id: str | None = None
    analysis_reused: bool = False
    note: str = ""                   # why it is not run yet, or what was reused

    @property
    def ran(self) -> bool:
        return self.summary is not None and bool(self.summary.get("comparisons"))

    @property
    def wall_time_s(self) -> float | None:
        if self.start_ms is None or self.end_ms is None:
            return None
        return (self.end_ms - self.start_ms) / 1000.0

    def compute(self, stage: str | None = None) -> dict:
        runs = [c for c in self.children if stage is None or c.stage == stage]
        return {"runs": len(runs),
                "train_time_s": sum(c.train_time_s for c in runs if math.isfinite(c.train_time_s)),
                "wall_time_s": sum(c.wall_time_s for c in runs if math.isfinite(c.wall_time_s))}


def parse_study_runs(texts: list[str] | None) -> dict[str, str]:
    """['mnist1d=RUN_ID', 'label_noise=label_noise'] -> {role: run id or study name}."""
    out: dict[str, str] = {}
    for text in texts or []:
        role, sep, value = text.partition("=")
        role, value = role.strip(), value.strip()
        if not sep or role not in STUDY_ROLES or not value:
            raise AnalysisInputError("study_run", text, "allowed: ROLE=RUN_ID_OR_STUDY_NAME with "
                                     f"ROLE one of {', '.join(STUDY_ROLES)}")
        if role in out:
            raise AnalysisInputError("study_run", text, f"allowed: each role once ({role} twice)")
        out[role] = value
    return out


def find_parent(client, experiment_ids: list[str], value: str):
    """The sweep parent run `value` names: a run id, else the latest sweep of that study name
    (None when there is none)."""
    from mlflow.exceptions import MlflowException

    if RUN_ID.match(value):
        try:
            return client.get_run(value)
        except MlflowException:
            raise AnalysisInputError("study_run", value, "no such run in the tracking store; "
                                     "allowed: a sweep parent run id or a study name") from None
    if not experiment_ids:
        return None
    runs = client.search_runs(experiment_ids,
                              filter_string=f"tags.`{N.TAG_KIND}` = 'sweep' and "
                              f"tags.`{N.TAG_STUDY}` = '{value}'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def _metric(run, name: str) -> float:
    value = run.data.metrics.get(name)
    return float(value) if value is not None else math.nan


def child_runs(client, parent) -> list[ChildRun]:
    """Every training run under the parent (analysis runs and bookkeeping runs left out)."""
    from sbbench.analysis.loading import search_training_runs

    out = []
    for run in search_training_runs(client, [parent.info.experiment_id], parent.info.run_id,
                                    None):
        tags, params = run.data.tags, run.data.params
        method = params.get(N.P_METHOD) or tags.get(N.TAG_METHOD)
        if tags.get(N.TAG_KIND) == N.KIND_ANALYSIS or not method:
            continue
        out.append(ChildRun(
            run_id=run.info.run_id, name=run.info.run_name or "", method=method,
            status=run.info.status, seed=params.get(N.P_SEED, "?"),
            stage=tags.get(N.TAG_STAGE, ""), role=tags.get(N.TAG_ROLE, ""),
            tuned_values=tags.get(N.TAG_TUNED_VALUES, ""),
            tuned_from=tags.get(N.TAG_TUNED_FROM, ""),
            train_time_s=_metric(run, N.M_TOTAL_TIME),
            wall_time_s=_metric(run, N.M_TOTAL_WALL_TIME), params=dict(params),
            tags=dict(tags)))
    out.sort(key=lambda c: (c.stage, c.method, c.seed, c.run_id))
    return out


def latest_analysis_run(client, parent):
    runs = client.search_runs([parent.info.experiment_id],
                              filter_string=f"tags.`{N.TAG_KIND}` = '{N.KIND_ANALYSIS}' and "
                              f"tags.`{N.TAG_PARENT}` = '{parent.info.run_id}' and "
                              "attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def reuse_analysis(client, study: Study, parent, out_dir: Path) -> bool:
    """Load the summary and figures of the latest finished analysis run under the parent."""
    run = latest_analysis_run(client, parent)
    if run is None:
        return False
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    previous = os.environ.get(PROGRESS_BAR_ENV)
    os.environ[PROGRESS_BAR_ENV] = "false"   # no progress bar per download
    try:
        _download_analysis(client, run.info.run_id, out_dir)
    finally:
        if previous is None:
            os.environ.pop(PROGRESS_BAR_ENV, None)
        else:
            os.environ[PROGRESS_BAR_ENV] = previous
    study.summary = json.loads((out_dir / "summary.json").read_text())
    study.figures_dir = out_dir / "figures"
    study.analysis_run_id = run.info.run_id
    study.analysis_reused = True
    return True


def _download_analysis(client, run_id: str, out_dir: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="sbbench-verdict-") as tmp:
        summary = Path(client.download_artifacts(run_id, "summary.json", tmp))
        shutil.copy(summary, out_dir / "summary.json")
        try:
            figures = Path(client.download_artifacts(run_id, "figures", tmp))
            shutil.copytree(figures, out_dir / "figures")
        except Exception:  # noqa: BLE001 - an analysis without figures still has its numbers
            (out_dir / "figures").mkdir()


def run_analysis(study: Study, uri: str, out_dir: Path, *, resamples: int, seed: int,
                 log: bool) -> None:
    from sbbench.analysis import analyze

    result = analyze(AnalyzeOptions(experiment=None, parent_run_id=study.parent_run_id,
                                    tracking_uri=uri, out_dir=str(out_dir),
                                    bootstrap_resamples=resamples, seed=seed,
                                    log_to_mlflow=log))
    study.summary = result.summary
    study.figures_dir = result.report_paths.figures
    study.analysis_run_id = result.analysis_run_id


def load_study(client, experiment_ids: list[str], role: str, value: str, uri: str,
               work_dir: Path, *, resamples: int, seed: int, log: bool,
               reuse: bool, include_unfinished: bool = False) -> Study:
    parent = find_parent(client, experiment_ids, value)
    study = Study(role, value)
    if parent is None:
        study.note = f"no sweep of study {value!r} in the tracking store"
        return study
    info = parent.info
    study.name = parent.data.tags.get(N.TAG_STUDY, value)
    study.parent_run_id, study.experiment_id = info.run_id, info.experiment_id
    study.start_ms, study.end_ms, study.parent_status = info.start_time, info.end_time, info.status
    study.children = child_runs(client, parent)
    finished = [c for c in study.children if c.status == "FINISHED"]
    if info.status != "FINISHED" and not include_unfinished:
        study.note = (f"sweep parent run {info.run_id} is {info.status} ({len(finished)} of "
                      f"{len(study.children)} training runs finished so far): run or resume the "
                      "sweep to its end, or pass --include-unfinished")
        return study
    if not finished:
        study.note = (f"sweep parent run {info.run_id} has {len(study.children)} training runs, "
                      "none finished")
        return study
    out_dir = work_dir / role
    if reuse and reuse_analysis(client, study, parent, out_dir):
        study.note = f"analysis reused from MLflow run {study.analysis_run_id}"
    else:
        run_analysis(study, uri, out_dir, resamples=resamples, seed=seed, log=log)
    if not study.ran:
        study.note = (f"{len(finished)} finished training runs, no comparison yet (no "
                      "Traditional run finished, or only one method ran)")
    return study
