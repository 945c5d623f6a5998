"""One trial in its own process: train the trial's config as an MLflow child run and tell Optuna.

The coordinator starts `python -m sbbench.sweep.worker` with a JSON job on stdin. The worker never
sees MLFLOW_RUN_ID (that would resume the parent); the parent id arrives as SBBENCH_PARENT_RUN_ID.

A trial of a `target_factor` study may finish before its study knows the target (computed from
the study's own Traditional trials): the worker then leaves the trial RUNNING with its curve and
`awaiting_target=True`, and the coordinator tells Optuna its value once the target is fixed.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TrialJob:
    study_name: str
    storage_url: str
    trial_number: int
    config: dict[str, Any]
    objective: dict[str, Any]
    tracking_uri: str
    experiment: str | None
    pruning: bool = False
    launched_at: float | None = None  # the coordinator's time.time() when it started the process
    device: str | None = None  # the device --devices gave this trial (cuda:2), recorded as a tag
    tags: dict[str, str] = field(default_factory=dict)  # more tags (a two-stage study's stage)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def run_trial(job: TrialJob) -> int:
    import optuna
    from optuna.trial import TrialState

    from sbbench.config import RunConfig
    from sbbench.sweep import trial_records as names
    from sbbench.sweep.heartbeats import start_trial_heartbeat
    from sbbench.sweep.storage import open_storage
    from sbbench import stop_signals
    from sbbench.tracking import TAG_DEVICE, TrackingOptions
    from sbbench.train.errors import RunDiverged, RunPruned
    from sbbench.train.run import default_run_name, execute_run
    from sbbench.urls import mask_url

    entered_at = time.time()  # the process is up (forked, or imported when run as a module)
    storage = open_storage(job.storage_url)
    study = optuna.load_study(study_name=job.study_name, storage=storage,
                              pruner=optuna.pruners.MedianPruner() if job.pruning else None)
    study_id = storage.get_study_id_from_name(job.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, job.trial_number)
    config = RunConfig.from_dict(job.config)
    # Which process runs the trial (an operator's `kill`, a test's): a fork server's child
    # carries no telling command line.
    storage.set_trial_user_attr(trial_id, names.ATTR_WORKER_PID, os.getpid())
    start_trial_heartbeat(storage, trial_id)
    started = time.monotonic()
    if job.device:
        _say(f"device {job.device} (CUDA_VISIBLE_DEVICES="
             f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r}, config device {config.device})")
    _say(f"trial {job.trial_number} of study {job.study_name} (pid {os.getpid()}): "
         f"{default_run_name(config)}; config {json.dumps(job.config, sort_keys=True)}")

    def ended(how: str) -> None:
        # Where the trial's wall time went (`sbbench bench --sweep` adds these up).
        storage.set_trial_user_attr(trial_id, names.ATTR_TIMING, {
            "launched_at": job.launched_at, "entered_at": entered_at, "ended_at": time.time()})
        _say(f"trial {job.trial_number} {how} after {time.monotonic() - started:.1f} s")

    def run_created(run_id: str) -> None:
        storage.set_trial_user_attr(trial_id, names.ATTR_RUN_ID, run_id)
        _say(f"MLflow run {run_id} (experiment {job.experiment or 'of the parent'}, "
             f"{mask_url(job.tracking_uri)})")

    def fail(kind: str, reason: str, interrupted: bool = False,
             state: TrialState = TrialState.FAIL) -> None:
        try:
            storage.set_trial_user_attr(trial_id, names.ATTR_FAILURE_KIND, kind)
            storage.set_trial_user_attr(trial_id, names.ATTR_FAILURE_REASON, reason[:2000])
            storage.set_trial_user_attr(trial_id, names.ATTR_INTERRUPTED, interrupted)
            study.tell(job.trial_number, state=state, skip_if_finished=True)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # failed as stale by another machine meanwhile: its point runs again

    def stop_if_requested(metrics: dict[str, float]) -> None:
        stop_signals.raise_if_requested()

    stage_prefix = "tune-" if job.tags.get(names.TAG_STAGE) == names.STAGE_TUNING else ""
    hooks = {"on_evaluation": stop_if_requested}
    if job.pruning:
        trial = optuna.trial.Trial(study, trial_id)

        def report(metrics: dict[str, float]) -> None:
            stop_if_requested(metrics)
            step = int(metrics["examples_seen"])
            trial.report(metrics["val_error"], step)
            if trial.should_prune():
                raise RunPruned(f"pruned at {step} examples seen "
                                f"(val_error {metrics['val_error']:.4f})")

        hooks["on_evaluation"] = report
    try:
        result = execute_run(
            config, TrackingOptions(job.tracking_uri, job.experiment),
            parent_run_id=os.environ.get(names.ENV_PARENT_RUN_ID),
            run_name=f"{job.study_name}-t{job.trial_number}-{stage_prefix}"
                     f"{default_run_name(config)}",
            extra_tags={names.TAG_STUDY: job.study_name, names.TAG_TRIAL: str(job.trial_number),
                        **({TAG_DEVICE: job.device} if job.device else {}), **job.tags},
            progress=False,
            on_run_created=run_created, **hooks)
    except RunDiverged as err:
        ended(f"DIVERGED (a result: not re-run): {err}")
        fail("diverged", str(err))
        return 0
    except RunPruned as err:
        _tag_pruned(job, storage, trial_id)
        ended(f"PRUNED: {err}")
        fail("pruned", str(err), state=TrialState.PRUNED)
        return 0
    except (KeyboardInterrupt, SystemExit):
        ended("INTERRUPTED (its point runs again)")
        fail("interrupted", "worker interrupted", interrupted=True)
        return stop_signals.exit_code()
    except Exception as err:  # a failing trial must not stop the sweep
        traceback.print_exc()
        ended(f"FAILED with an error (re-run by the next sweep): {type(err).__name__}: {err}")
        fail("error", f"{type(err).__name__}: {err}")
        return 0
    try:
        return _record_result(job, storage, study, trial_id, result, ended)
    except optuna.exceptions.UpdateFinishedTrialError:
        # Another machine failed this trial as stale (its heartbeats stopped reaching the
        # database for the grace period) and re-queued its point: the run must not count twice.
        _end_run_superseded(job, storage, trial_id)
        _say(f"trial {job.trial_number} was failed as stale meanwhile (missed heartbeats); "
             "its point runs again elsewhere and this run ends KILLED")
        return 0


def _record_result(job: TrialJob, storage, study, trial_id: int, result, ended) -> int:
    from sbbench.sweep import trial_records as names
    from sbbench.sweep.objective import curve_to_attr, objective_values
    from sbbench.sweep.study import Objective

    final = result.outcome.final
    _say(f"run finished ({result.outcome.stop_reason}): training clock "
         f"{final['total_train_time_s']:.1f} s, final validation error "
         f"{final['final_val_error']:.4f}, keep rate {final['overall_keep_rate']:.3f}")
    for key in ("final_val_error", "final_test_error", "total_train_time_s"):
        storage.set_trial_user_attr(trial_id, key, result.outcome.final[key])
    objective = Objective(**job.objective)
    if objective.kind == "time_to_target" and objective.target_error is None:
        storage.set_trial_user_attr(trial_id, names.ATTR_CURVE,
                                    curve_to_attr(result.outcome.curve))
        ended("COMPLETE; its value waits for the study's target (told by the coordinator)")
        storage.set_trial_user_attr(trial_id, names.ATTR_AWAITING, True)  # written last
        return 0
    values, attrs = objective_values(objective, result.outcome.curve, result.outcome.final)
    for key, value in attrs.items():
        storage.set_trial_user_attr(trial_id, key, value)
    ended(f"COMPLETE, objective {values}")
    study.tell(job.trial_number, values)
    return 0


def _end_run_superseded(job: TrialJob, storage, trial_id: int) -> None:
    from mlflow import MlflowClient

    from sbbench.sweep import trial_records as names
    from sbbench.tracking import TAG_FAILURE_KIND, TAG_FAILURE_REASON

    run_id = storage.get_trial_user_attrs(trial_id).get(names.ATTR_RUN_ID)
    if run_id:
        client = MlflowClient(tracking_uri=job.tracking_uri)
        client.set_tag(run_id, TAG_FAILURE_KIND, "interrupted")
        client.set_tag(run_id, TAG_FAILURE_REASON, "trial failed as stale by another machine "
                       "(missed heartbeats); its point ran again")
        client.set_terminated(run_id, status="KILLED")


def _say(text: str) -> None:
    """One line of the trial's log (`.sbbench/logs/<study>/trial-N.log`), time-stamped."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}", flush=True)


def _tag_pruned(job: TrialJob, storage, trial_id: int) -> None:
    from mlflow import MlflowClient

    from sbbench.sweep import trial_records as names

    run_id = storage.get_trial_user_attrs(trial_id).get(names.ATTR_RUN_ID)
    if run_id:
        MlflowClient(tracking_uri=job.tracking_uri).set_tag(run_id, names.TAG_PRUNED, "true")


def _stop_once(signum, frame):
    """The first SIGINT or SIGTERM stops the trial; later ones are ignored so they cannot cut
    short the cleanup that ends the child run KILLED and tells Optuna (Ctrl-C reaches the whole
    process group, then the coordinator sends SIGTERM as well). The signal is recorded too: an
    interrupt swallowed on its way up (by a finalizer) is raised again at the next evaluation."""
    from sbbench import stop_signals

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stop_signals.record(signum)
    raise stop_signals.exception_for(signum)


def install_stop_handlers() -> None:
    signal.signal(signal.SIGINT, _stop_once)
    signal.signal(signal.SIGTERM, _stop_once)


def main_from_json(job_json: str) -> int:
    """Run the trial described by `job_json` (a TrialJob) in this process; the exit code."""
    install_stop_handlers()
    return run_trial(TrialJob(**json.loads(job_json)))


def main() -> int:
    return main_from_json(sys.stdin.read())


if __name__ == "__main__":
    sys.exit(main())
