"""What a night measured: per-method metrics (each with its direction) and exact invariants.

Metrics, per configuration (the method, plus the method fields that vary within the suite):
- `throughput/<m>`: examples per training second (examples seen / training clock), higher is
  better;
- `time_to_target_s/<m>`: training seconds to the suite's target validation error (from the
  analysis; a run that never reaches it counts as twice its training time), lower is better;
- `speedup/<m>`: median Traditional time to target / the run's time to target, higher is better;
- `final_test_error/<m>`: lower is better;
- `efficiency/<m>` (methods with a keep rate): the measured per-epoch speedup over Traditional
  after priming, divided by its bound 1 / (r + s) (r: selection-forward seconds per epoch after
  priming / a Traditional epoch; s: keep rate after priming), higher is better. Both epoch times
  are read off each run's own training clock between the end of priming (an evaluation) and the
  end of the run, over the same epochs for every method: the first epoch's warm-up and the
  priming epoch drop out instead of being subtracted at another run's rate (which, on short
  runs, left a small difference of two noisy times and made the metric swing by tens of %).
Every metric keeps its per-run values (the short-history rank test needs them); the night's
value is their median.

Invariants, checked exactly (not statistically): every run FINISHED (a diverged run is a
regression, named as such); SB and Random keep 1/(beta+1) of the examples after priming within
a tolerance; StaleSB skips the selection forwards of its stale epochs exactly.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from sbbench.method_fields import ALL_METHOD_FIELDS
from sbbench.nightly.gate import HIGHER, LOWER
from sbbench.record_names import (  # noqa: F401  (the record's names live there)
    TAG_STUDY, TAG_TRIAL, TAG_METHOD, TAG_FAILURE_KIND, TAG_FAILURE_REASON)


KINDS = {  # metric kind -> (direction, what it is)
    "throughput": (HIGHER, "examples per training second"),
    "time_to_target_s": (LOWER, "training seconds to the target validation error"),
    "speedup": (HIGHER, "median Traditional time to target / time to target"),
    "final_test_error": (LOWER, "test error at the end of training"),
    "efficiency": (HIGHER, "per-epoch speedup after priming / its bound 1/(r+s)"),
}
KEEP_RATE_METHODS = ("sb", "random", "stale_sb")
CENSORED_FACTOR = 2.0      # a run that never reaches the target: twice its training time
DEFAULT_KEEP_RATE_TOLERANCE = 0.03   # absolute, around 1/(beta+1)
STALE_SHARE_TOLERANCE = 1e-6


def direction(metric: str) -> str:
    return KINDS[metric.split("/", 1)[0]][0]


@dataclass
class RunRecord:
    run_id: str
    method: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    failure_kind: str | None = None
    failure_reason: str | None = None
    label: str = ""
    # training clock and selection-forward seconds at the end of priming (from the evaluation
    # logged there); empty when the run logged none at that point
    at_priming: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_mlflow(cls, run) -> "RunRecord":
        tags = run.data.tags
        return cls(run_id=run.info.run_id,
                   method=tags.get(TAG_METHOD) or run.data.params.get("method", "?"),
                   status=run.info.status, params=dict(run.data.params),
                   metrics=dict(run.data.metrics), failure_kind=tags.get(TAG_FAILURE_KIND),
                   failure_reason=tags.get(TAG_FAILURE_REASON))

    def param(self, name: str, default: float | None = None) -> float | None:
        try:
            return float(self.params[name])
        except (KeyError, ValueError):
            return default


@dataclass
class Invariant:
    name: str           # e.g. "keep_rate/sb", "finished/sb"
    ok: bool
    detail: str
    kind: str = "invariant"   # invariant | diverged


@dataclass
class Measurement:
    samples: dict[str, list[float]] = field(default_factory=dict)  # metric -> per-run values
    invariants: list[Invariant] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)   # why the night could not measure
    runs: list[dict[str, Any]] = field(default_factory=list)
    methods: dict[str, str] = field(default_factory=dict)   # label -> method

    def value(self, metric: str) -> float | None:
        values = [v for v in self.samples.get(metric, []) if math.isfinite(v)]
        return statistics.median(values) if values else None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def trial_runs(client, experiment_ids: list[str], parent_run_id: str,
               study_name: str) -> list[RunRecord]:
    """The night's trial runs: children of the night's parent from its own study."""
    runs = client.search_runs(
        experiment_ids,
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}' and "
                      f"tags.`{TAG_STUDY}` = '{study_name}'", max_results=10000)
    records = [RunRecord.from_mlflow(r) for r in runs]
    for record in records:
        if record.status == "FINISHED":
            record.at_priming = _at_priming(client, record)
    return records


PRIMING_CLOCKS = ("train_time_s", "time_forward_select_s")


def _at_priming(client, record: RunRecord) -> dict[str, float]:
    """The clocks the evaluation at the end of priming logged (its step is examples seen)."""
    train_size = record.param("train_size")
    prime = record.param("prime_epochs", 0.0) or 0.0
    if not train_size or prime <= 0:
        return {}
    step = round(prime * train_size)
    out = {}
    for key in PRIMING_CLOCKS:
        values = [m.value for m in client.get_metric_history(record.run_id, key)
                  if m.step == step]
        if values:
            out[key] = float(values[-1])
    return out if "train_time_s" in out else {}


def assign_labels(records: list[RunRecord]) -> None:
    """The method, plus the method fields that vary among its runs in this night."""
    by_method: dict[str, list[RunRecord]] = {}
    for record in records:
        by_method.setdefault(record.method, []).append(record)
    for method, group in by_method.items():
        varying = sorted(k for k in ALL_METHOD_FIELDS
                         if len({r.params.get(k) for r in group}) > 1)
        for record in group:
            extra = ",".join(f"{k}={record.params.get(k)}" for k in varying)
            record.label = f"{method}[{extra}]" if extra else method


def _median(values: Iterable[float]) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(values) if values else None


def _post_priming(record: RunRecord) -> tuple[float, float, float] | None:
    """(examples seen, examples backpropped, post-priming epochs) after priming; priming
    trains on every example it sees."""
    seen = record.metrics.get("total_examples_seen")
    backpropped = record.metrics.get("total_examples_backpropped")
    train_size = record.param("train_size")
    prime = record.param("prime_epochs", 0.0) or 0.0
    if seen is None or backpropped is None or not train_size:
        return None
    primed = prime * train_size
    if seen <= primed:
        return None
    return seen - primed, backpropped - primed, (seen - primed) / train_size


def keep_rate_after_priming(record: RunRecord) -> float | None:
    post = _post_priming(record)
    return None if post is None else post[1] / post[0]


def _epoch_s(record: RunRecord) -> float | None:
    time_s = record.metrics.get("total_train_time_s")
    epochs = record.metrics.get("total_epochs")
    return time_s / epochs if time_s and epochs else None


def post_priming_epoch_s(record: RunRecord) -> float | None:
    """Training seconds per epoch after priming, off the run's own clock (None without the
    evaluation at the end of priming)."""
    post = _post_priming(record)
    time_s = record.metrics.get("total_train_time_s")
    at = record.at_priming.get("train_time_s")
    if post is None or not time_s or at is None or time_s <= at:
        return None
    return (time_s - at) / post[2]


def efficiency(record: RunRecord, traditional_epoch_s: float,
               traditional_post_epoch_s: float | None = None) -> float | None:
    """Per-epoch speedup after priming over Traditional, divided by its bound 1/(r + s).

    With the clocks at the end of priming (this run's, and Traditional's epoch time after
    priming): both sides over the same epochs. Without them (older records): priming charged at
    Traditional's whole-run epoch time, the less stable estimate."""
    post = _post_priming(record)
    time_s = record.metrics.get("total_train_time_s")
    if post is None or not time_s or not traditional_epoch_s:
        return None
    _, _, post_epochs = post
    select_s = record.metrics.get("time_forward_select_s", 0.0) or 0.0
    own = post_priming_epoch_s(record)
    if own is not None and traditional_post_epoch_s:
        traditional_epoch_s = traditional_post_epoch_s
        method_epoch_s = own
        select_s -= record.at_priming.get("time_forward_select_s", 0.0)
    else:
        prime = record.param("prime_epochs", 0.0) or 0.0
        # Priming epochs are ordinary training: charge them at Traditional's epoch time.
        method_epoch_s = (time_s - prime * traditional_epoch_s) / post_epochs
    if method_epoch_s <= 0:
        return None
    r = max(0.0, select_s) / post_epochs / traditional_epoch_s
    s = keep_rate_after_priming(record)
    if s is None:
        return None
    return (traditional_epoch_s / method_epoch_s) * (r + s)


def _time_to_target(analysis_summary: dict | None) -> dict[str, float]:
    """run id -> seconds to the primary target (twice the training time when not reached)."""
    out: dict[str, float] = {}
    for row in (analysis_summary or {}).get("configurations", []):
        if row.get("target_index", 0) != 0:
            continue
        for run in row.get("runs", []):
            time_s = run.get("time_s")
            if time_s is None:
                continue
            out[run["run_id"]] = float(time_s) if run.get("reached") else \
                CENSORED_FACTOR * float(time_s)
    return out


def measure(records: list[RunRecord], analysis_summary: dict | None, expected_runs: int,
            keep_rate_tolerance: float = DEFAULT_KEEP_RATE_TOLERANCE) -> Measurement:
    """Metrics and invariants of one night (or of a confirmation re-run)."""
    out = Measurement()
    assign_labels(records)
    out.runs = [{"run_id": r.run_id, "label": r.label, "status": r.status,
                 "failure_kind": r.failure_kind} for r in records]
    if not records:
        out.problems.append("the suite produced no runs")
        return out
    if len(records) < expected_runs:
        out.problems.append(f"partial suite: {len(records)} of {expected_runs} runs")
    finished: list[RunRecord] = []
    for record in records:
        if record.status == "FINISHED":
            finished.append(record)
        elif record.failure_kind == "diverged":
            out.invariants.append(Invariant(
                f"finished/{record.label}", False,
                f"run {record.run_id} ({record.label}) diverged: {record.failure_reason}",
                kind="diverged"))
        else:
            out.problems.append(f"run {record.run_id} ({record.label}) ended {record.status}"
                                f" ({record.failure_kind or 'no reason'}: "
                                f"{record.failure_reason or '-'})")
    for record in records:
        out.methods[record.label] = record.method
    ttt = _time_to_target(analysis_summary)
    traditional = [r for r in finished if r.method == "traditional"]
    trad_epoch_s = _median(_epoch_s(r) for r in traditional)
    trad_post_epoch_s = _median(post_priming_epoch_s(r) for r in traditional)
    trad_ttt = _median(ttt.get(r.run_id) for r in traditional)

    def add(metric: str, value: float | None) -> None:
        if value is not None and math.isfinite(value):
            out.samples.setdefault(metric, []).append(float(value))

    for record in finished:
        label = record.label
        seen = record.metrics.get("total_examples_seen")
        time_s = record.metrics.get("total_train_time_s")
        add(f"throughput/{label}", seen / time_s if seen and time_s else None)
        add(f"final_test_error/{label}", record.metrics.get("final_test_error"))
        if record.run_id in ttt:
            add(f"time_to_target_s/{label}", ttt[record.run_id])
            if record.method != "traditional" and trad_ttt:
                add(f"speedup/{label}", trad_ttt / ttt[record.run_id])
        if record.method in KEEP_RATE_METHODS and trad_epoch_s:
            add(f"efficiency/{label}", efficiency(record, trad_epoch_s, trad_post_epoch_s))
        out.invariants.extend(_invariants(record, keep_rate_tolerance))
    return out


def _invariants(record: RunRecord, tolerance: float) -> list[Invariant]:
    checks = []
    if record.method in ("sb", "random"):
        s = keep_rate_after_priming(record)
        beta = record.param("beta", 3.0)
        expected = 1.0 / (beta + 1.0)
        if s is not None:
            ok = abs(s - expected) <= tolerance
            checks.append(Invariant(
                f"keep_rate/{record.label}", ok,
                f"run {record.run_id}: keep rate after priming {s:.4f}, expected "
                f"1/(beta+1) = {expected:.4f} +/- {tolerance:g}"))
    if record.method == "stale_sb":
        forwards = record.metrics.get("total_selection_forwards")
        skipped = record.metrics.get("total_selection_forwards_skipped")
        post = _post_priming(record)
        staleness = int(record.param("staleness", 1.0) or 1)
        if forwards is not None and skipped is not None and post is not None:
            post_epochs = post[2]
            whole = math.floor(post_epochs + 1e-9)
            refresh = math.ceil(whole / staleness)
            expected = (whole - refresh) / whole if whole else 0.0
            share = skipped / (forwards + skipped) if forwards + skipped else 0.0
            ok = abs(share - expected) <= STALE_SHARE_TOLERANCE or not \
                math.isclose(post_epochs, whole, abs_tol=1e-9)
            checks.append(Invariant(
                f"stale_skips/{record.label}", ok,
                f"run {record.run_id}: skipped {share:.4f} of selection forwards, expected "
                f"{expected:.4f} ({whole - refresh} stale of {whole} epochs after priming, "
                f"staleness {staleness})"))
    return checks
