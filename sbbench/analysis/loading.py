"""Loading: training runs and their metric histories from MLflow, grouped by workload and
configuration. Failed, pruned and unfinished runs are classified and reported, never silently
used or silently dropped (diverged and pruned runs are kept as censored)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from sbbench.analysis import record as R

PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


@dataclass
class RunRecord:
    run_id: str
    run_name: str
    status: str
    outcome: str
    method: str
    params: dict[str, str]
    tags: dict[str, str]
    workload: dict[str, str]
    config: dict[str, str]
    metrics: dict[str, float]          # latest value of every metric (search_runs)
    failure_reason: str = ""
    curve: pd.DataFrame | None = None  # one row per evaluation, sorted by step

    @property
    def workload_key(self) -> str:
        return canonical_key(self.workload)

    @property
    def config_key(self) -> str:
        return canonical_key({"method": self.method, **self.config})

    @property
    def seed(self) -> str:
        return self.params.get("seed", "?")

    @property
    def has_curve(self) -> bool:
        return self.curve is not None and len(self.curve) > 0 and \
            self.curve[R.M_VAL_ERROR].notna().any()

    def last(self, metric: str) -> float:
        """Last logged value of a curve metric (nan when absent)."""
        if self.curve is not None and metric in self.curve and self.curve[metric].notna().any():
            return float(self.curve[metric].dropna().iloc[-1])
        value = self.metrics.get(metric)
        return float(value) if value is not None else math.nan

    @property
    def budget_time_s(self) -> float:
        """The run's own budget on the training clock: its last train_time_s."""
        return self.last(R.M_TRAIN_TIME)

    @property
    def final_val_error(self) -> float:
        value = self.metrics.get(R.M_FINAL_VAL)
        return float(value) if value is not None else self.last(R.M_VAL_ERROR)

    @property
    def final_test_error(self) -> float:
        """Final TEST error of a run that is a result (nan for diverged or pruned runs: their
        last logged error predates the divergence / the pruning and is not a final result)."""
        if self.outcome != R.OUTCOME_OK:
            return math.nan
        value = self.metrics.get(R.M_FINAL_TEST)
        return float(value) if value is not None else self.last(R.M_TEST_ERROR)

    def final_count(self, metric: str, total_metric: str | None = None) -> float:
        if total_metric and total_metric in self.metrics:
            return float(self.metrics[total_metric])
        return self.last(metric)


@dataclass
class LoadedRuns:
    runs: list[RunRecord]                       # kept: ok, diverged, pruned
    excluded: list[RunRecord]                   # error, interrupted, running, no data
    ignored: int = 0                            # not training runs (sweep parents, analyses)
    reference: list[RunRecord] = field(default_factory=list)  # tagged sbbench.role=reference
    tuning: int = 0     # a two-stage study's tuning runs (never compared), references apart
    experiment_names: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for run in self.runs + self.excluded:
            out[run.outcome] = out.get(run.outcome, 0) + 1
        return out


def canonical_key(values: dict[str, Any]) -> str:
    return json.dumps(values, sort_keys=True, separators=(",", ":"))


def parse_value(text: str) -> Any:
    """A param string as a number when it is one (for axes and labels)."""
    if text in ("None", ""):
        return None
    if text in ("True", "False"):
        return text == "True"
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text and "e" not in text else number


def split_params(method: str, params: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(workload, configuration) of a run. The configuration is every defining param that is
    neither workload nor seed, minus the method-specific fields its method ignores."""
    relevant = set(R.METHOD_FIELDS.get(method, R.METHOD_SPECIFIC_FIELDS))
    workload, config = {}, {}
    for key, value in params.items():
        if key in R.NON_DEFINING_PARAMS or key == "method":
            continue
        if key in R.WORKLOAD_PARAMS:
            workload[key] = value
        elif key in R.METHOD_SPECIFIC_FIELDS and key not in relevant:
            continue
        else:
            config[key] = value
    return workload, config


def classify(status: str, tags: dict[str, str]) -> str:
    if tags.get(R.TAG_PRUNED, "").lower() in ("true", "1", "yes"):
        return R.OUTCOME_PRUNED
    kind = tags.get(R.TAG_FAILURE_KIND, "")
    if kind == R.FAILURE_DIVERGED:
        return R.OUTCOME_DIVERGED
    if status == "FINISHED" and not kind:
        return R.OUTCOME_OK
    if kind == R.FAILURE_INTERRUPTED or status == "KILLED":
        return R.OUTCOME_INTERRUPTED
    if status in ("RUNNING", "SCHEDULED"):
        return R.OUTCOME_RUNNING
    return R.OUTCOME_ERROR


def search_filter(parent_run_id: str | None, study: str | None) -> str:
    clauses = []
    if parent_run_id:
        clauses.append(f"tags.`{R.TAG_PARENT}` = '{_quote(parent_run_id)}'")
    if study:
        clauses.append(f"tags.`{R.TAG_STUDY}` = '{_quote(study)}'")
    return " AND ".join(clauses)


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


def search_training_runs(client, experiment_ids: list[str], parent_run_id: str | None,
                         study: str | None) -> list:
    """Every run matching the filters (all pages)."""
    from mlflow.entities import ViewType

    runs, token = [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string=search_filter(parent_run_id, study),
                                  run_view_type=ViewType.ACTIVE_ONLY, max_results=1000,
                                  page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def aligned_history(client, run_id: str, metrics: Iterable[str] = R.CURVE_METRICS) -> pd.DataFrame:
    """Metric histories of one run aligned by step (examples seen): one row per step, one column
    per metric (nan where a metric was not logged at that step; the latest timestamp wins when
    a step was logged twice)."""
    columns: dict[str, dict[int, float]] = {}
    for key in metrics:
        values: dict[int, tuple[int, float]] = {}
        for m in client.get_metric_history(run_id, key):
            if m.step not in values or m.timestamp >= values[m.step][0]:
                values[m.step] = (m.timestamp, m.value)
        columns[key] = {step: v for step, (_, v) in values.items()}
    steps = sorted(set().union(*[c.keys() for c in columns.values()])) if columns else []
    frame = pd.DataFrame({"step": np.asarray(steps, dtype=np.int64)})
    for key, values in columns.items():
        frame[key] = [values.get(s, math.nan) for s in steps]
    return frame


def to_record(run) -> RunRecord | None:
    tags = dict(run.data.tags)
    params = dict(run.data.params)
    if tags.get(R.TAG_KIND) == R.KIND_ANALYSIS:
        return None
    method = params.get("method") or tags.get(R.TAG_METHOD)
    if not method:
        return None  # a sweep parent or some other bookkeeping run
    workload, config = split_params(method, params)
    if "dataset" not in workload and R.TAG_DATASET in tags:
        workload["dataset"] = tags[R.TAG_DATASET]
    if "model" not in workload and R.TAG_MODEL in tags:
        workload["model"] = tags[R.TAG_MODEL]
    return RunRecord(
        run_id=run.info.run_id, run_name=run.info.run_name or tags.get(R.TAG_RUN_NAME, ""),
        status=run.info.status, outcome=classify(run.info.status, tags), method=method,
        params=params, tags=tags, workload=workload, config=config,
        metrics=dict(run.data.metrics), failure_reason=tags.get(R.TAG_FAILURE_REASON, ""))


def is_reference(record: RunRecord) -> bool:
    """A reference run sets targets only: it is never timed or compared."""
    return record.tags.get(R.TAG_ROLE, "").lower() == R.ROLE_REFERENCE


def is_tuning(record: RunRecord) -> bool:
    """A two-stage study's tuning run: it chose a setting and is never timed."""
    return record.tags.get(R.TAG_STAGE, "") == R.STAGE_TUNING


def tuned_settings(runs: list[RunRecord]) -> dict[str, dict]:
    """Each method's tuned setting, from its timed runs' tags: method -> {values, source}
    (values None: the method's runs were not tuned)."""
    out: dict[str, dict] = {}
    for run in runs:
        text = run.tags.get(R.TAG_TUNED_VALUES)
        entry = out.setdefault(run.method, {"values": None, "source": None, "settings": []})
        if text is None:
            continue
        values = json.loads(text)
        if values not in entry["settings"]:
            entry["settings"].append(values)
        entry["values"] = entry["settings"][0] if len(entry["settings"]) == 1 else None
        entry["source"] = run.tags.get(R.TAG_TUNED_FROM)
    return out


def load_runs(client, experiment_ids: list[str], parent_run_id: str | None = None,
              study: str | None = None) -> LoadedRuns:
    kept, excluded, reference, ignored, tuning = [], [], [], 0, 0
    for run in search_training_runs(client, experiment_ids, parent_run_id, study):
        rec = to_record(run)
        if rec is None:
            ignored += 1
            continue
        if is_tuning(rec) and not is_reference(rec):
            tuning += 1  # chose a setting; timing it on its own tuning seeds would be biased
            continue
        if is_reference(rec):
            # only Traditional reference runs set targets: the others need no curve
            reference.append(with_curve(client, rec) if rec.method == R.TRADITIONAL else rec)
        elif rec.outcome in R.KEPT_OUTCOMES:
            rec = with_curve(client, rec)
            if not rec.has_curve:
                if rec.outcome == R.OUTCOME_OK:
                    rec.outcome = R.OUTCOME_NO_DATA
                    rec.failure_reason = rec.failure_reason or "finished without any evaluation"
                    excluded.append(rec)
                    continue
                # A diverged or pruned run without a single evaluation still counts (censored).
                rec.curve = pd.DataFrame(columns=["step", *R.CURVE_METRICS])
            kept.append(rec)
        else:
            excluded.append(rec)
    kept.sort(key=lambda r: (r.workload_key, r.config_key, r.seed, r.run_id))
    excluded.sort(key=lambda r: (r.outcome, r.run_id))
    reference.sort(key=lambda r: (r.workload_key, r.config_key, r.seed, r.run_id))
    return LoadedRuns(kept, excluded, ignored, reference=reference, tuning=tuning)


def with_curve(client, record: RunRecord) -> RunRecord:
    record.curve = aligned_history(client, record.run_id)
    return record


def load_target_runs(client, experiment_ids: list[str], parent_run_id: str | None,
                     study: str | None) -> list[RunRecord]:
    """The Traditional runs under a parent run or of a study (for --target-from): all of them
    set targets, whatever their role tag, and none is timed."""
    records = [to_record(run) for run in
               search_training_runs(client, experiment_ids, parent_run_id, study)]
    return [with_curve(client, rec) for rec in records
            if rec is not None and rec.method == R.TRADITIONAL]


def load_per_example(client, run_id: str) -> pd.DataFrame | None:
    """The run's per_example.csv.gz, or None when it has none (diverged runs, older runs)."""
    previous = os.environ.get(PROGRESS_BAR_ENV)
    os.environ[PROGRESS_BAR_ENV] = "false"  # one bar per download would flood the terminal
    try:
        with tempfile.TemporaryDirectory(prefix="sbbench-analysis-") as tmp:
            path = client.download_artifacts(run_id, R.ARTIFACT_PER_EXAMPLE, tmp)
            return pd.read_csv(Path(path))
    except Exception:  # noqa: BLE001 - a missing artifact is normal (diverged or older runs)
        return None
    finally:
        if previous is None:
            os.environ.pop(PROGRESS_BAR_ENV, None)
        else:
            os.environ[PROGRESS_BAR_ENV] = previous
