"""One night: run the pinned suite under a tagged parent run, measure, compare with the history,
confirm what fails, report, and return the exit code (0 fine, 1 confirmed regression, 2 the night
could not measure).

`run_night` drives the suite with the sweep coordinator (a black box: Coordinator, SweepOptions,
SweepResult) and the analysis; `evaluate_night` is everything after the measurement, on a store
and a Measurement, so tests can feed it fixture nights without training anything.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sbbench.nightly import fingerprint as FP
from sbbench.nightly import gate as G
from sbbench.nightly import history as H
from sbbench.nightly import metrics as M
from sbbench.nightly import report as RP
from sbbench.nightly.suite import DEFAULT_SUITE, Suite, confirmation_spec, load_suite

ANALYSIS_RESAMPLES = 999   # time to target needs no CI here; the gate does the statistics
STALE_SCHEDULE_H = 36.0    # a nightly more than this after the previous one: say so


@dataclass
class NightOptions:
    suite_path: str = DEFAULT_SUITE
    tracking_uri: str | None = None
    experiment: str | None = None      # None: MLFLOW_EXPERIMENT_ID (mlflow run) or sbbench-nightly
    history: int = H.DEFAULT_HISTORY
    gate: G.GateSettings = field(default_factory=G.GateSettings)
    confirm: bool = True
    out_dir: str = "sbbench-out/nightly"
    workers: int = 1
    keep_rate_tolerance: float = M.DEFAULT_KEEP_RATE_TOLERANCE
    lock_max_age_s: float = 24 * 3600.0
    progress: bool = True


@dataclass
class Identity:
    """What ties a night to its series."""
    suite: Suite
    fingerprint: str
    detail: dict
    versions: dict[str, str]

    def tags(self) -> dict[str, str]:
        import json

        return {H.TAG_KIND: H.KIND_NIGHTLY, H.TAG_SUITE: self.suite.name,
                H.TAG_SUITE_DIGEST: self.suite.digest, H.TAG_SUITE_PATH: self.suite.path,
                FP.TAG_FINGERPRINT: self.fingerprint,
                FP.TAG_FINGERPRINT_DETAIL: json.dumps(self.detail, sort_keys=True),
                **self.versions}


def identity_for(suite: Suite) -> Identity:
    device = str(suite.spec.base.get("device", "auto"))
    fingerprint, detail = FP.fingerprint(suite.digest, FP.machine(device))
    return Identity(suite, fingerprint, detail, FP.versions())


def gate_rule_text(settings: G.GateSettings) -> str:
    return (f">= {settings.min_history} earlier nights: outside the one-sided "
            f"{settings.level:g} t prediction interval AND worse than the history median by "
            f">= max({settings.tolerance:.0%}, {settings.cv_factor:g} x CV); 1-"
            f"{settings.min_history - 1} nights: one-sided rank test vs every run of those nights "
            f"(p <= {settings.short_alpha:g}, or complete separation when the run counts cannot "
            f"reach it) AND worse by >= max({settings.short_tolerance_factor * settings.tolerance:.0%}, "
            f"{settings.cv_factor:g} x CV of "
            "their runs); "
            f"the minimum change is capped at {settings.max_threshold:.0%} (a noisier history "
            "is reported as too noisy); first night: baseline")


# --- the comparison --------------------------------------------------------------------------

def _series_note(nights_all: list[H.Night], identity: Identity, history: H.History,
                 run_id: str, settings: G.GateSettings) -> tuple[str, list[str]]:
    """A sentence on the series, and warnings (new series, changed suite or machine)."""
    warnings = []
    n = len(history.nights)
    accepted = (f" since the accepted night {history.accepted.run_id} "
                f"({history.accepted.when})") if history.accepted else ""
    if n == 0:
        others = [x for x in nights_all if x.run_id != run_id and
                  x.tags.get(FP.TAG_FINGERPRINT) != identity.fingerprint]
        same_machine = [x for x in others if _machine_of(x) == _machine_of_detail(identity.detail)]
        if same_machine and same_machine[-1].tags.get(H.TAG_SUITE_DIGEST) != identity.suite.digest:
            old = same_machine[-1].tags.get(H.TAG_SUITE_DIGEST)
            warnings.append(f"the suite file changed (digest {old} -> {identity.suite.digest}): "
                            "a new series starts, nothing is compared tonight")
        elif others:
            warnings.append(f"the machine fingerprint changed ({others[-1].tags.get(FP.TAG_FINGERPRINT)}"
                            f" -> {identity.fingerprint}): a new series starts")
        return (f"no earlier good night in this series{accepted}: tonight is the baseline, "
                "nothing is compared"), warnings
    rule = "prediction interval" if n >= settings.min_history else \
        "short history: rank test against every run of those nights"
    return f"{n} earlier good night(s){accepted} ({rule})", warnings


def _machine_of(night: H.Night) -> str:
    import json

    try:
        detail = json.loads(night.tags.get(FP.TAG_FINGERPRINT_DETAIL, "{}"))
    except ValueError:
        return ""
    return _machine_of_detail(detail)


def _machine_of_detail(detail: dict) -> str:
    import json

    return json.dumps({k: v for k, v in detail.items() if k != "suite_digest"}, sort_keys=True)


def _judge_all(client, measurement: M.Measurement, history: H.History,
               settings: G.GateSettings) -> list[G.MetricVerdict]:
    return [_judge(client, metric, measurement.samples[metric], history, settings)
            for metric in sorted(measurement.samples)]


def _judge(client, metric: str, samples: list[float], history: H.History,
           settings: G.GateSettings) -> G.MetricVerdict:
    last_samples = runs = None
    if 0 < len(history.nights) < settings.min_history:
        per_night = [H.samples_of(client, night, metric) for night in history.nights]
        last_samples = per_night[-1]
        runs = [v for values in per_night for v in values]
    return G.judge(metric, M.direction(metric), samples, history.values(metric), last_samples,
                   settings, runs)


def evaluate_night(client, run_id: str, identity: Identity, measurement: M.Measurement,
                   options: NightOptions,
                   remeasure: Callable[[set[str]], M.Measurement] | None = None,
                   started: float | None = None) -> dict:
    """Compare a measured night with its history; confirm failures; the report dict."""
    experiment_id = client.get_run(run_id).info.experiment_id
    nights_all = H.find_nights(client, [experiment_id], identity.suite.name)
    same = [n for n in nights_all if n.tags.get(FP.TAG_FINGERPRINT) == identity.fingerprint]
    this = next((n for n in nights_all if n.run_id == run_id), None)
    history = H.select_history(same, exclude_run_id=run_id, limit=options.history,
                               before=this.start_time if this else None)
    note, warnings = _series_note(nights_all, identity, history, run_id, options.gate)
    settings = options.gate
    problems = list(measurement.problems)
    verdicts = _judge_all(client, measurement, history, settings)
    rows = {v.metric: v.as_dict() for v in verdicts}
    # Metrics the history has but tonight lacks: the night measured less than it should.
    if history.last_good is not None:
        for metric in history.last_good.metrics:
            if metric.split("/", 1)[0] in M.KINDS and metric not in rows:
                problems.append(f"metric {metric} was measured by the last good night but not "
                                "tonight")
    noisy = [v for v in verdicts if v.too_noisy]
    if noisy:
        warnings.append(
            f"history too noisy to detect a {settings.tolerance:.0%} change in {len(noisy)} "
            "metric(s): " + ", ".join(f"{v.metric} (CV {v.history_cv:.1%})" for v in noisy)
            + f"; only changes beyond {settings.max_threshold:.0%} (and outside the interval) "
            "alarm there")
    failing = [v for v in verdicts if v.regressed]
    regressions: list[str] = []
    if failing and options.confirm and remeasure is not None and not problems:
        labels = {v.metric.split("/", 1)[1] for v in failing}
        methods = {measurement.methods.get(label, label.split("[")[0]) for label in labels}
        again = remeasure(methods)
        problems += [f"confirmation re-run: {p}" for p in again.problems]
        for v in failing:
            second = _judge(client, v.metric, again.samples.get(v.metric, []), history,
                            settings)
            row = rows[v.metric]
            row["confirmation_value"] = second.tonight
            row["confirmation_evidence"] = "re-measured: " + second.evidence
            if second.regressed:
                row["confirmation"] = "confirmed"
            else:
                row["confirmation"] = "unconfirmed"
                row["verdict"] = G.OK
                warnings.append(f"{v.metric} failed the gate ({v.evidence}) but did not "
                                f"reproduce when re-measured ({second.tonight:.4g}): unconfirmed, "
                                "no alarm")
        failing = [v for v in failing if rows[v.metric].get("confirmation") == "confirmed"]
    elif failing and not options.confirm:
        for v in failing:
            rows[v.metric]["confirmation"] = "not re-measured (--no-confirm)"
    for v in failing:
        row = rows[v.metric]
        size = row["worsening"]
        confirmed = f"; confirmed, re-measured {row['confirmation_value']:.4g}" \
            if row.get("confirmation") == "confirmed" else ""
        regressions.append(f"{v.metric}: {row['tonight']:.4g} vs history median "
                           f"{row['history_median']:.4g} ({size:+.1%} worse{confirmed}; "
                           f"{v.evidence})")
    for inv in measurement.invariants:
        if not inv.ok:
            regressions.append(f"{inv.name}: {'DIVERGED' if inv.kind == 'diverged' else 'invariant'} "
                               f"- {inv.detail}")
    unconfirmed = [r for r in rows.values() if r.get("confirmation") == "unconfirmed"]
    if problems:
        verdict = H.VERDICT_ERROR
    elif regressions:
        verdict = H.VERDICT_REGRESSION
    elif not history.nights:
        verdict = H.VERDICT_BASELINE
    elif unconfirmed:
        verdict = H.VERDICT_UNCONFIRMED
    else:
        verdict = H.VERDICT_OK
    exit_code = H.EXIT_CODES[verdict]
    if verdict == H.VERDICT_ERROR:
        headline = "COULD NOT MEASURE: " + "; ".join(problems)
    elif verdict == H.VERDICT_REGRESSION:
        headline = f"REGRESSION in {len(regressions)} check(s): " + "; ".join(
            r.split(":")[0] for r in regressions)
    elif verdict == H.VERDICT_BASELINE:
        headline = "first night of this series: baseline established, nothing compared"
    elif verdict == H.VERDICT_UNCONFIRMED:
        headline = (f"no confirmed regression; {len(unconfirmed)} metric(s) failed once and did "
                    "not reproduce (unconfirmed)")
    else:
        headline = f"no regression in {len(verdicts)} metrics and " \
                   f"{len(measurement.invariants)} invariants"
    previous = [n for n in nights_all if n.run_id != run_id and this is not None
                and n.start_time < this.start_time]
    if previous and this is not None:
        gap_h = (this.start_time - previous[-1].start_time) / 3.6e6
        if gap_h > STALE_SCHEDULE_H:
            warnings.append(f"the previous night of this suite was {gap_h / 24:.1f} days ago: "
                            "has the schedule stopped?")
    if 0 < len(history.nights) < settings.min_history:
        warnings.append(f"short history ({len(history.nights)} earlier night(s)): compared with "
                        "every run of those nights by a rank test, not with a prediction interval")
    changes = None
    if history.last_good is not None:
        changes = FP.changes(history.last_good.tags, identity.versions)
    run = client.get_run(run_id)
    report = {
        "schema": RP.SCHEMA, "suite": identity.suite.name, "suite_path": identity.suite.path,
        "suite_digest": identity.suite.digest, "fingerprint": identity.fingerprint,
        "fingerprint_detail": identity.detail, "versions": identity.versions,
        "run_id": run_id, "started": _dt.datetime.fromtimestamp(
            run.info.start_time / 1000, _dt.timezone.utc).isoformat(timespec="seconds"),
        "wall_s": (time.monotonic() - started) if started else 0.0,
        "verdict": verdict, "exit_code": exit_code, "headline": headline,
        "level": settings.level, "gate_rule": gate_rule_text(settings),
        "family_false_alarm": G.family_false_alarm(settings.level, len(verdicts)),
        "history": {"n": len(history.nights), "note": note,
                    "nights": [n.run_id for n in history.nights],
                    "accepted_run_id": history.accepted.run_id if history.accepted else None,
                    "last_good_run_id": history.last_good.run_id if history.last_good else None},
        "metrics": list(rows.values()), "invariants": [i.__dict__ for i in
                                                       measurement.invariants],
        "problems": problems, "regressions": regressions, "warnings": warnings,
        "changes_since_last_good": changes, "runs": measurement.runs,
    }
    report["_series"] = {metric: [(n.when[5:], n.metrics[metric]) for n in history.nights
                                  if metric in n.metrics] for metric in rows}
    return report


def record_night(client, run_id: str, report: dict, measurement: M.Measurement,
                 out_dir: Path) -> list[Path]:
    """Metrics, per-run values, verdict tags and the report files on the night's parent run."""
    from mlflow.entities import Metric, RunTag

    series = report.pop("_series", {})
    now = int(time.time() * 1000)
    metrics = []
    for row in report["metrics"]:
        if row["tonight"] is not None:
            metrics.append(Metric(row["metric"], float(row["tonight"]), now, 0))
    for metric, values in measurement.samples.items():
        metrics += [Metric(H.SAMPLES_PREFIX + metric, float(v), now, i)
                    for i, v in enumerate(values)]
    metrics += [Metric("nightly_exit_code", float(report["exit_code"]), now, 0),
                Metric("nightly_regressions", float(len(report["regressions"])), now, 0),
                Metric("nightly_history_nights", float(report["history"]["n"]), now, 0)]
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start:start + 1000], synchronous=True)
    tags = {H.TAG_VERDICT: report["verdict"], H.TAG_EXIT_CODE: str(report["exit_code"]),
            H.TAG_REGRESSIONS: "; ".join(r.split(":")[0] for r in report["regressions"]) or "none",
            H.TAG_SUMMARY: report["headline"][:4000],
            "mlflow.note.content": RP.text_report(report)[:4000]}
    client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()], synchronous=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures: list[Path] = []
    try:
        figures = RP.trend_figures(report, series, out_dir / "figures")
    except Exception as err:  # a figure never decides a night
        report["warnings"].append(f"trend figures failed: {type(err).__name__}: {err}")
    (out_dir / "nightly.md").write_text(RP.markdown_report(report, figures))
    RP.write_json(report, out_dir / "nightly.json")
    client.log_artifact(run_id, str(out_dir / "nightly.md"))
    client.log_artifact(run_id, str(out_dir / "nightly.json"))
    for figure in figures:
        client.log_artifact(run_id, str(figure), "figures")
    return figures


# --- running the suite -----------------------------------------------------------------------

@contextlib.contextmanager
def _env(**values: str | None):
    old = {k: os.environ.get(k) for k in values}
    try:
        _set_env(values)
        yield
    finally:
        _set_env(old)


def _set_env(values) -> None:
    """Set each variable; None removes it."""
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _study_name(suite: Suite, suffix: str = "") -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"nightly-{suite.name}-{stamp}-{os.getpid()}{suffix}"


def _run_suite(spec, study_name: str, night_id: str, uri: str, experiment: str | None,
               options: NightOptions, night_tags: dict[str, str]):
    """The suite (or a confirmation sub-suite) as a sweep whose parent is the night's run; the
    coordinator keeps the night's tags on it (sbbench.kind=nightly, never sweep) throughout."""
    from sbbench.sweep.coordinator import Coordinator, SweepOptions
    from sbbench.tracking import TrackingOptions

    sweep = SweepOptions(storage=None, workers=options.workers, study_name=study_name,
                         tracking=TrackingOptions(uri, experiment), progress=options.progress,
                         parent_tags=dict(night_tags))
    with _env(MLFLOW_RUN_ID=night_id):
        return Coordinator(spec, sweep).run()


def _analyse(suite: Suite, night_id: str, study_name: str, uri: str, out_dir: Path) -> dict:
    from sbbench.analysis import AnalyzeOptions, analyze

    objective = suite.spec.objective
    targets = dict(target_errors=(objective.target_error,)) if objective.target_error else \
        dict(target_factors=(objective.target_factor or 1.4,))
    result = analyze(AnalyzeOptions(experiment=None, parent_run_id=night_id, study=study_name,
                                    tracking_uri=uri, out_dir=str(out_dir),
                                    bootstrap_resamples=ANALYSIS_RESAMPLES,
                                    log_to_mlflow=False, **targets))
    return result.summary


def _measure(client, suite: Suite, night_id: str, study_name: str, uri: str,
             experiment_id: str, out_dir: Path, options: NightOptions,
             expected: int) -> M.Measurement:
    records = M.trial_runs(client, [experiment_id], night_id, study_name)
    summary = None
    problems = []
    if any(r.status == "FINISHED" for r in records):
        try:
            summary = _analyse(suite, night_id, study_name, uri, out_dir)
        except Exception as err:
            problems.append(f"the analysis failed ({type(err).__name__}: "
                            f"{str(err).splitlines()[0] if str(err) else ''})")
    measurement = M.measure(records, summary, expected, options.keep_rate_tolerance)
    measurement.problems += problems
    return measurement


def run_night(options: NightOptions) -> int:
    from sbbench import tracking
    from sbbench.nightly.lock import LockHeld, NightlyLock, lock_path

    started = time.monotonic()
    options.gate.validate()
    suite = load_suite(options.suite_path)
    uri = tracking.resolve_tracking_uri(options.tracking_uri)
    tracking.check_tracking_reachable(uri)
    client = tracking.get_client(uri)
    under_mlflow_run = bool(os.environ.get("MLFLOW_RUN_ID"))
    experiment = options.experiment
    if experiment is None and not os.environ.get("MLFLOW_EXPERIMENT_ID"):
        experiment = H.DEFAULT_EXPERIMENT
    lock = NightlyLock(lock_path(uri, suite.name), options.lock_max_age_s)
    try:
        lock.acquire()
    except LockHeld as err:
        print(f"sbbench nightly: {err}", file=sys.stderr)
        return 2
    try:
        if lock.took_over is not None:
            print(f"sbbench nightly: took over a stale lock left by "
                  f"{lock.took_over.describe()} (no such process any more)", file=sys.stderr)
            if lock.took_over.run_id:
                end_dead_night(client, lock.took_over.run_id)
        return _night(client, suite, uri, experiment, under_mlflow_run, lock, options, started)
    except Exception as err:   # setting the night up failed (store, torch, ...): not measured
        print(f"sbbench nightly: could not measure (setting up): {type(err).__name__}: "
              f"{str(err).splitlines()[0] if str(err) else ''}", file=sys.stderr)
        print("exit 2 (could not measure)")
        return 2
    finally:
        lock.release()


def end_dead_night(client, run_id: str) -> int:
    """A night whose process died outright (kill -9, power loss) left its runs RUNNING: end them
    KILLED, with the reason, so it is never history and the UI shows what happened."""
    from mlflow.exceptions import MlflowException

    from sbbench import tracking

    reason = "nightly process died (its lock was found stale and taken over by the next night)"
    try:
        night = client.get_run(run_id)
    except MlflowException:
        return 0
    runs = [night] + list(client.search_runs(
        [night.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{run_id}' and "
                      "attributes.status = 'RUNNING'", max_results=10000))
    ended = 0
    for run in runs:
        if run.info.status == "RUNNING":
            client.set_tag(run.info.run_id, tracking.TAG_FAILURE_KIND, "interrupted")
            client.set_tag(run.info.run_id, tracking.TAG_FAILURE_REASON, reason)
            client.set_terminated(run.info.run_id, "KILLED")
            ended += 1
    if night.data.tags.get(H.TAG_VERDICT) is None:
        client.set_tag(run_id, H.TAG_VERDICT, H.VERDICT_ERROR)
    return ended


def _night(client, suite: Suite, uri: str, experiment: str | None, under_mlflow_run: bool,
           lock, options: NightOptions, started: float) -> int:
    from sbbench import tracking

    identity = identity_for(suite)
    study_name = _study_name(suite)
    run_name = study_name.rsplit("-", 1)[0]
    if under_mlflow_run:
        night_id = os.environ["MLFLOW_RUN_ID"]
        # `mlflow run` names its run at random ("learned-carp-224"): name it as a night (a
        # user's own --run-name stays)
        from sbbench.sweep.coordinator import MLFLOW_RANDOM_RUN_NAME

        if MLFLOW_RANDOM_RUN_NAME.fullmatch(client.get_run(night_id).info.run_name or "x-y-1"):
            client.update_run(night_id, name=run_name)
    else:
        experiment_id = tracking.ensure_experiment(client, experiment)
        night_id = client.create_run(experiment_id, run_name=run_name,
                                     tags=identity.tags()).info.run_id
    night_tags = {**identity.tags(), H.TAG_NIGHT_STUDY: study_name}
    tracker = tracking.MlflowTracker(client, night_id)
    tracker.set_tags(night_tags)
    lock.set_run_id(night_id)
    experiment_id = client.get_run(night_id).info.experiment_id
    out_dir = Path(options.out_dir) / study_name
    print(f"sbbench nightly: suite {suite.name} ({suite.expected_runs} runs), fingerprint "
          f"{identity.fingerprint}, night run {night_id}", file=sys.stderr)
    stage = "running the suite"
    try:
        _run_suite(suite.spec, study_name, night_id, uri, experiment, options, night_tags)
        stage = "measuring"
        with tracking.tracked_run(tracking.TrackingOptions(uri, experiment),
                                  resume_run_id=night_id):
            measurement = _measure(client, suite, night_id, study_name, uri, experiment_id,
                                   out_dir / "analysis", options, suite.expected_runs)

            def remeasure(methods: set[str]) -> M.Measurement:
                spec = confirmation_spec(suite, methods, study_name + "-confirm")
                print(f"sbbench nightly: confirming by re-running {', '.join(sorted(methods))} "
                      f"({len(spec.grid_points())} runs)", file=sys.stderr)
                _run_suite(spec, spec.name, night_id, uri, experiment, options, night_tags)
                client.update_run(night_id, status="RUNNING")
                return _measure(client, suite, night_id, spec.name, uri, experiment_id,
                                out_dir / "confirm-analysis", options, len(spec.grid_points()))

            stage = "comparing"
            report = evaluate_night(client, night_id, identity, measurement, options,
                                    remeasure if options.confirm else None, started)
            record_night(client, night_id, report, measurement, out_dir)
        if report["exit_code"] == 2:   # measured too little: FAILED, never history
            client.set_tag(night_id, tracking.TAG_FAILURE_KIND, "error")
            client.set_tag(night_id, tracking.TAG_FAILURE_REASON, report["headline"][:4000])
            client.set_terminated(night_id, "FAILED")
    except BaseException as err:
        interrupted = isinstance(err, (KeyboardInterrupt, SystemExit))
        reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        with contextlib.suppress(Exception):
            client.set_tag(night_id, H.TAG_VERDICT, H.VERDICT_ERROR)
            client.set_tag(night_id, H.TAG_EXIT_CODE, "2")
            client.set_tag(night_id, H.TAG_SUMMARY, f"could not measure ({stage}): {reason}")
            run = client.get_run(night_id)
            if run.info.status == "RUNNING":
                client.set_tag(night_id, tracking.TAG_FAILURE_KIND,
                               "interrupted" if interrupted else "error")
                client.set_tag(night_id, tracking.TAG_FAILURE_REASON, reason[:4000])
                client.set_terminated(night_id, "KILLED" if interrupted else "FAILED")
        print(f"sbbench nightly: could not measure ({stage}): {reason}", file=sys.stderr)
        print("exit 2 (could not measure)")
        return 2
    print(RP.text_report(report))
    print(f"report: {(out_dir / 'nightly.md').resolve()}")
    return report["exit_code"]
