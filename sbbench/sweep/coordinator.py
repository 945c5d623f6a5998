"""The sweep coordinator: one parent MLflow run, K worker processes, resumable.

Resuming is the same command again. On start the coordinator
1. ends what an earlier, interrupted sweep left behind: RUNNING trials become FAIL (marked
   `interrupted`) and their RUNNING child runs become KILLED;
2. computes the grid points that have no finished trial (COMPLETE, PRUNED, or FAIL because the
   method failed: a diverged run is a result, not a reason to re-run) and runs only those.
Each trial is asked for here, in this one process, and handed to a fresh worker process, which
tells Optuna its result: no two local workers can race for the same point.

With `objective: {target_factor: F}` the target of a setting is F x the median final validation
error of its Traditional points. Points still run in the grid's seed-major order (methods
interleaved, so machine drift hits them alike); a trial that finishes before its target is known
waits (RUNNING, `awaiting_target`, its run FINISHED and its curve kept on the trial). Once every
Traditional point of the setting has a result the target is fixed once in the study's user
attributes (`target_error:<setting>`, reused on resume) and the waiting trials are told here.

Interrupted (Ctrl-C, SIGTERM): workers are stopped, their child runs end KILLED, their trials FAIL
(`interrupted`), any child run still RUNNING without a live trial is ended KILLED, and the parent
run ends KILLED.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing.connection
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sbbench import stop_signals, tracking
from sbbench.sweep import trial_records as names
from sbbench.sweep.storage import STATE_DIR, open_storage, storage_url_for
from sbbench.sweep.objective import curve_from_attr, objective_values
from sbbench.sweep.study import Objective, StudySpec, point_key
from sbbench.sweep.trial_process import TrialProcess, start_server
from sbbench.sweep.worker import TrialJob

POLL_INTERVAL_S = 0.5
WORKER_STOP_GRACE_S = 30.0


@contextlib.contextmanager
def _signals_ignored():
    """A second Ctrl-C (or a SIGTERM) must not cut short the cleanup after the first."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT,
                                                                     signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass
class SweepOptions:
    storage: str | None = None
    workers: int = 1
    n_trials: int | None = None
    study_name: str | None = None
    tracking: tracking.TrackingOptions = field(default_factory=tracking.TrackingOptions)
    progress: bool = True


@dataclass
class SweepResult:
    parent_run_id: str
    study_name: str
    storage_url: str
    tracking_uri: str
    counts: dict[str, int]
    best_value: float | None
    wall_s: float
    experiment_name: str | None = None
    all_trials_under_parent: bool = True  # False: some trial runs belong to an earlier parent
    trials_run: int = 0       # trials this invocation ran to a result
    train_clock_s: float = 0.0  # their training clocks, summed


def _sampler(spec: StudySpec):
    import optuna

    if spec.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=0)
    # Grid points are enqueued explicitly; the sampler only fills params we don't fix.
    return optuna.samplers.RandomSampler(seed=0)


class Coordinator:
    def __init__(self, spec: StudySpec, options: SweepOptions):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.spec = spec
        self.options = options
        self.study_name = options.study_name or spec.name
        # Checks before any compute: tracking store, storage, study directions.
        self.tracking_uri = tracking.resolve_tracking_uri(options.tracking.tracking_uri)
        tracking.check_tracking_reachable(self.tracking_uri)
        self.storage_url = storage_url_for(options.storage, self.study_name)
        self.storage = open_storage(self.storage_url)
        self.study = optuna.create_study(storage=self.storage, study_name=self.study_name,
                                         directions=spec.objective.directions,
                                         sampler=_sampler(spec), load_if_exists=True)
        if [d.name.lower() for d in self.study.directions] != spec.objective.directions:
            from sbbench.sweep.study import StudyError
            raise StudyError(spec.path, "objective", spec.objective.kind,
                             f"the objective study {self.study_name!r} was created with; use "
                             "--study-name for a new study")
        # Inputs checked: the trial fork server imports torch and the training code while this
        # process sets up the experiment and the parent run.
        start_server()
        self.client = tracking.get_client(self.tracking_uri)
        # Initialise the store once, here, before any worker touches it (no schema race).
        self.experiment = options.tracking.experiment
        if self.experiment is None and not os.environ.get("MLFLOW_EXPERIMENT_ID"):
            self.experiment = tracking.DEFAULT_EXPERIMENT
        if self.experiment is not None:
            tracking.ensure_experiment(self.client, self.experiment)
        self.log_dir = (STATE_DIR.parent / "logs" / self.study_name).resolve()
        self.running: dict[int, tuple[TrialProcess, str]] = {}
        self._attempted: set[str] = set()  # grid points launched by this invocation
        self._launched: set[int] = set()  # trial numbers launched by this invocation
        self._targets: dict[str, float] = {}  # target_factor studies: fixed targets
        self._last_heartbeat = 0.0
        self.parent_run_id: str | None = None

    # -- bookkeeping over the study --------------------------------------------------------------

    def _trials(self):
        return self.study.get_trials(deepcopy=False)

    def _is_finished(self, trial) -> bool:
        from optuna.trial import TrialState

        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            return True
        if trial.state == TrialState.RUNNING and trial.user_attrs.get(names.ATTR_AWAITING):
            return True  # its run is done; only the value waits for the study's target
        # A diverged run is a result of the method; a crash or an interruption is not, and
        # is re-run by the next invocation (never twice in the same one: see `_attempted`).
        return trial.state == TrialState.FAIL and \
            trial.user_attrs.get(names.ATTR_FAILURE_KIND) == "diverged"

    def recover_interrupted(self) -> int:
        """End what a crashed or killed earlier sweep left RUNNING. Returns how many.

        A journal file is one machine's study with one coordinator: every RUNNING trial found
        at start is stale. A database storage is shared by machines: only trials whose worker
        stopped sending heartbeats are stale (optuna.storages.fail_stale_trials).
        """
        from optuna.trial import TrialState

        recovered = 0
        if self.storage_url.startswith("journal:"):
            self._consume_stale_waiting()
            local = set(self.running)
            for trial in self._trials():
                if trial.state != TrialState.RUNNING or trial.number in local or \
                        trial.user_attrs.get(names.ATTR_AWAITING):
                    continue
                self._mark_interrupted(trial.number, trial._trial_id,
                                       trial.user_attrs.get(names.ATTR_RUN_ID))
                recovered += 1
            self._end_stale_parents()
            return recovered + self._end_orphan_runs()
        import optuna

        optuna.storages.fail_stale_trials(self.study)
        for trial in self._trials():
            if trial.state == TrialState.FAIL and \
                    names.ATTR_FAILURE_KIND not in trial.user_attrs:
                self._mark_interrupted(trial.number, trial._trial_id,
                                       trial.user_attrs.get(names.ATTR_RUN_ID))
                recovered += 1
        return recovered + self._end_orphan_runs()

    def _consume_stale_waiting(self) -> None:
        """A coordinator killed between enqueue_trial and ask leaves a WAITING trial; ask()
        pops WAITING trials first, so it would hand its point to a later, unrelated ask. Pop
        each one now and fail it (interrupted): its point is simply pending again."""
        from optuna.trial import TrialState

        waiting = sum(1 for t in self._trials() if t.state == TrialState.WAITING)
        for _ in range(waiting):
            trial = self.study.ask()
            self._mark_interrupted(trial.number, trial._trial_id, None)

    def _mark_interrupted(self, number: int, trial_id: int, run_id: str | None) -> None:
        from optuna.trial import TrialState

        self.storage.set_trial_user_attr(trial_id, names.ATTR_INTERRUPTED, True)
        self.storage.set_trial_user_attr(trial_id, names.ATTR_FAILURE_KIND, "interrupted")
        self.study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
        if run_id:
            self._kill_run(run_id)

    def _kill_run(self, run_id: str,
                  reason: str = "worker process stopped before it could end the run") -> bool:
        run = self.client.get_run(run_id)
        if run.info.status != "RUNNING":
            return False
        self.client.set_tag(run_id, tracking.TAG_FAILURE_KIND, "interrupted")
        self.client.set_tag(run_id, tracking.TAG_FAILURE_REASON, reason)
        self.client.set_terminated(run_id, status="KILLED")
        return True

    def _end_orphan_runs(self) -> int:
        """End KILLED every RUNNING child run of this study whose trial is not running.

        Covers the runs a trial could not name: a worker stopped between creating its child
        run and recording `mlflow_run_id` on the trial. Found by tags (`sbbench.study`,
        `sbbench.trial`), so runs under an earlier parent (an earlier `mlflow run`) count too.
        A trial RUNNING in the storage (another machine's live worker) keeps its run.
        """
        from optuna.trial import TrialState

        experiment_ids = self._experiment_ids()
        if not experiment_ids:
            return 0
        trials = {t.number: t for t in self._trials()}
        ended, token = 0, None
        while True:
            page = self.client.search_runs(
                experiment_ids,
                filter_string=f"tags.`{names.TAG_STUDY}` = '{self.study_name}' and "
                              "attributes.status = 'RUNNING'",
                max_results=1000, page_token=token)
            for run in page:
                number = run.data.tags.get(names.TAG_TRIAL, "")
                if not number.isdigit() or int(number) in self.running:
                    continue
                trial = trials.get(int(number))
                if trial is not None and trial.state == TrialState.RUNNING and not \
                        trial.user_attrs.get(names.ATTR_AWAITING):
                    continue
                ended += self._kill_run(run.info.run_id)
            token = page.token
            if not token:
                return ended

    def _end_stale_parents(self) -> None:
        """An earlier sweep of this study killed outright (kill -9 of `mlflow run` and all) left
        its parent RUNNING; under `mlflow run` each invocation has a new parent, so end it."""
        experiment_ids = self._experiment_ids()
        if not experiment_ids:
            return
        for run in self.client.search_runs(
                experiment_ids,
                filter_string=f"tags.`{names.TAG_KIND}` = 'sweep' and "
                              f"tags.`{names.TAG_STUDY}` = '{self.study_name}' and "
                              "attributes.status = 'RUNNING'", max_results=1000):
            if run.info.run_id != self.parent_run_id:
                self._kill_run(run.info.run_id, "sweep process stopped before it could end "
                                                "the run (resumed under a new parent)")

    def _experiment_ids(self) -> list[str]:
        ids = set()
        if self.parent_run_id:
            ids.add(self.client.get_run(self.parent_run_id).info.experiment_id)
        name = self.experiment or (None if os.environ.get("MLFLOW_EXPERIMENT_ID")
                                   else tracking.DEFAULT_EXPERIMENT)
        if name is not None:
            experiment = self.client.get_experiment_by_name(name)
            if experiment is not None:
                ids.add(experiment.experiment_id)
        elif os.environ.get("MLFLOW_EXPERIMENT_ID"):
            ids.add(os.environ["MLFLOW_EXPERIMENT_ID"])
        return sorted(ids)

    def pending_points(self) -> list[dict[str, Any]]:
        from optuna.trial import TrialState

        taken = set()
        for trial in self._trials():
            key = trial.user_attrs.get(names.ATTR_POINT)
            if key and (self._is_finished(trial) or trial.state in (TrialState.RUNNING,
                                                                    TrialState.WAITING)):
                taken.add(key)
        taken |= self._attempted
        return [p for p in self.spec.grid_points() if point_key(p) not in taken]

    # -- targets (target_factor studies) -----------------------------------------------------------

    def _target_for(self, point: dict[str, Any]) -> float | None:
        objective = self.spec.objective
        if objective.kind != "time_to_target":
            return None
        if objective.target_factor is None:
            return objective.target_error
        key = names.STUDY_ATTR_TARGET + self.spec.setting_key(point)
        if key not in self._targets:
            value = self.study.user_attrs.get(key)  # fixed earlier, maybe by another machine
            if value is None:
                return None
            self._targets[key] = float(value)
        return self._targets[key]

    def _resolve_targets(self) -> None:
        """Fix the target of every setting whose Traditional points all have a result (a point
        that failed with an error in this invocation counts as done: it is retried next time,
        and must not hold every other trial hostage)."""
        if self.spec.objective.target_factor is None:
            return
        from optuna.trial import TrialState

        pending = {point_key(p) for p in self.pending_points()}
        by_point: dict[str, list] = {}
        for trial in self._trials():
            key = trial.user_attrs.get(names.ATTR_POINT)
            if key:
                by_point.setdefault(key, []).append(trial)
        settings: dict[str, list[dict[str, Any]]] = {}
        for point in self.spec.grid_points():
            if self.spec.is_baseline(point):
                settings.setdefault(self.spec.setting_key(point), []).append(point)
        for setting, baselines in settings.items():
            if self._target_for(baselines[0]) is not None:
                continue
            finals, outstanding = [], False
            for point in baselines:
                key = point_key(point)
                outstanding |= key in pending
                for trial in by_point.get(key, []):
                    value = trial.user_attrs.get("final_val_error")
                    done = trial.state == TrialState.COMPLETE or (
                        trial.state == TrialState.RUNNING and
                        trial.user_attrs.get(names.ATTR_AWAITING))
                    if done and value is not None and value == value:  # not NaN
                        finals.append(float(value))
                        break
                    outstanding |= trial.state == TrialState.RUNNING and \
                        not trial.user_attrs.get(names.ATTR_AWAITING)
            if outstanding or not finals:
                continue
            finals.sort()
            middle = len(finals) // 2
            median = finals[middle] if len(finals) % 2 else (finals[middle - 1] +
                                                              finals[middle]) / 2
            target = self.spec.objective.target_factor * median
            self.study.set_user_attr(names.STUDY_ATTR_TARGET + setting, target)
            print(f"sbbench sweep: target for {setting} = {target:.4g} "
                  f"({self.spec.objective.target_factor:g} x median final validation error of "
                  f"{len(finals)} Traditional run(s))", file=sys.stderr)

    def _tell_awaiting(self) -> int:
        """Tell Optuna the value of each waiting trial whose target is now known."""
        from optuna.trial import TrialState

        told = 0
        for trial in self._trials():
            if trial.state != TrialState.RUNNING or trial.number in self.running or \
                    not trial.user_attrs.get(names.ATTR_AWAITING):
                continue
            point = json.loads(trial.user_attrs[names.ATTR_POINT])
            target = self._target_for(point)
            if target is None:
                continue
            final = {k: trial.user_attrs[k] for k in ("final_val_error", "total_train_time_s")}
            values, attrs = objective_values(
                Objective(kind="time_to_target", target_error=target),
                curve_from_attr(trial.user_attrs[names.ATTR_CURVE]), final)
            for key, value in {**attrs, names.ATTR_AWAITING: False}.items():
                self.storage.set_trial_user_attr(trial._trial_id, key, value)
            self.study.tell(trial.number, values, skip_if_finished=True)
            told += 1
        return told

    def _waiting_count(self) -> int:
        from optuna.trial import TrialState

        return sum(1 for t in self._trials() if t.state == TrialState.RUNNING
                   and t.user_attrs.get(names.ATTR_AWAITING))

    def _heartbeat_awaiting(self) -> None:
        """Database storages fail trials without heartbeats: keep waiting trials alive."""
        interval = getattr(self.storage, "get_heartbeat_interval", lambda: None)()
        if not interval or time.monotonic() - self._last_heartbeat < interval:
            return
        from optuna.trial import TrialState

        self._last_heartbeat = time.monotonic()
        for trial in self._trials():
            if trial.state == TrialState.RUNNING and trial.user_attrs.get(names.ATTR_AWAITING):
                self.storage.record_heartbeat(trial._trial_id)

    def finished_count(self) -> int:
        return sum(1 for t in self._trials() if self._is_finished(t))

    def counts(self) -> dict[str, int]:
        from optuna.trial import TrialState

        trials = self._trials()
        return {
            "complete": sum(t.state == TrialState.COMPLETE for t in trials),
            "failed": sum(t.state == TrialState.FAIL and not t.user_attrs.get(
                names.ATTR_INTERRUPTED) for t in trials),
            "interrupted": sum(t.state == TrialState.FAIL and bool(t.user_attrs.get(
                names.ATTR_INTERRUPTED)) for t in trials),
            "pruned": sum(t.state == TrialState.PRUNED for t in trials),
            "waiting": sum(t.state == TrialState.RUNNING and bool(t.user_attrs.get(
                names.ATTR_AWAITING)) for t in trials),
        }

    # -- asking for trials -----------------------------------------------------------------------

    def _ask_grid_point(self, point: dict[str, Any]):
        self.study.enqueue_trial(point, user_attrs={names.ATTR_POINT: point_key(point)})
        trial = self.study.ask()
        # On a shared database another coordinator's enqueued point may be the one popped: run
        # the point the trial carries.
        fixed = trial.user_attrs.get(names.ATTR_POINT)
        point = dict(point) if fixed is None else json.loads(fixed)
        for key, value in point.items():
            choices = self.spec.seeds if key == "seed" else self.spec.grid.get(key, [value])
            if all(isinstance(c, (str, int, float, bool)) or c is None for c in choices):
                trial.suggest_categorical(key, choices)  # a list value (lr_milestones) is
                # not a categorical choice: it stays in the point attribute only
        return trial, point

    def _ask_tpe(self):
        from sbbench.method_fields import applies

        trial = self.study.ask()
        point: dict[str, Any] = {}
        for key, values in self.spec.grid.items():
            point[key] = trial.suggest_categorical(key, values)
        method = self.spec.method_of(point)
        for key, rng in self.spec.ranges.items():
            if not applies(key, method):
                continue  # a conditional dimension: e.g. beta is not asked of traditional
            integer = all(isinstance(rng[k], int) for k in ("low", "high")) and \
                isinstance(rng.get("step", 1), int)
            if integer:
                point[key] = trial.suggest_int(key, rng["low"], rng["high"],
                                               step=rng.get("step", 1), log=bool(rng.get("log")))
            else:
                point[key] = trial.suggest_float(key, float(rng["low"]), float(rng["high"]),
                                                 log=bool(rng.get("log")),
                                                 step=rng.get("step"))
        for key in [k for k in point if not applies(k, method)]:
            del point[key]  # grid dimensions too: recorded on the trial, not in the config
        point["seed"] = self.spec.seeds[trial.number % len(self.spec.seeds)]
        trial.set_user_attr(names.ATTR_POINT, point_key(point))
        return trial, point

    def _threads_per_worker(self) -> int:
        return max(1, (os.cpu_count() or 1) // max(1, self.options.workers))

    def _launch(self, trial, point: dict[str, Any]) -> None:
        values = {**self.spec.base, **point}
        values.setdefault("num_threads", self._threads_per_worker())
        config = self.spec.config_for({**point, "num_threads": values["num_threads"]})
        # The worker gets the target resolved (None: a Traditional trial whose study does not
        # know its target yet; it waits for it).
        objective = {**asdict(self.spec.objective), "target_error": self._target_for(point)}
        job = TrialJob(study_name=self.study_name, storage_url=self.storage_url,
                       trial_number=trial.number, config=config.to_dict(),
                       objective=objective, tracking_uri=self.tracking_uri,
                       experiment=self.experiment, pruning=self.spec.pruning)
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_RUN_ID"}
        env[names.ENV_PARENT_RUN_ID] = self.parent_run_id or ""
        env["MLFLOW_TRACKING_URI"] = self.tracking_uri
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"trial-{trial.number}.log"
        process = TrialProcess(job.to_json(), str(log_path), env)
        self.running[trial.number] = (process, str(log_path))
        self._launched.add(trial.number)
        self._attempted.add(point_key(point))

    def _reap(self) -> int:
        """Collect finished workers; a worker that died without telling Optuna is interrupted."""
        from optuna.trial import TrialState

        done = 0
        for number, (process, log_path) in list(self.running.items()):
            if process.poll() is None:
                continue
            del self.running[number]
            done += 1
            trial = self.study.get_trials(deepcopy=False)[number]
            if trial.state == TrialState.RUNNING and not (
                    process.returncode == 0 and trial.user_attrs.get(names.ATTR_AWAITING)):
                self._mark_interrupted(number, trial._trial_id,
                                       trial.user_attrs.get(names.ATTR_RUN_ID))
                print(f"sbbench sweep: trial {number} worker exited with code "
                      f"{process.returncode}; see {log_path}", file=sys.stderr)
        return done

    def _wait_for_a_worker(self, timeout_s: float) -> None:
        """Sleep until a worker exits or `timeout_s` passes (no fixed poll between trials)."""
        sentinels = [process.sentinel for process, _ in self.running.values()]
        if sentinels:
            multiprocessing.connection.wait(sentinels, timeout_s)
        else:
            time.sleep(timeout_s)

    def _stop_workers(self) -> None:
        for process, _ in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + WORKER_STOP_GRACE_S
        for process, _ in self.running.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._reap()

    # -- the sweep ---------------------------------------------------------------------------------

    def _find_previous_parent(self) -> str | None:
        if os.environ.get("MLFLOW_RUN_ID"):
            return None  # under `mlflow run`: the project run is the parent
        experiment = self.client.get_experiment_by_name(self.experiment or
                                                        tracking.DEFAULT_EXPERIMENT)
        if experiment is None:
            return None
        runs = self.client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`{names.TAG_KIND}` = 'sweep' and "
                          f"tags.`{names.TAG_STUDY}` = '{self.study_name}'",
            order_by=["attributes.start_time DESC"], max_results=1)
        return runs[0].info.run_id if runs else None

    def run(self) -> SweepResult:
        from tqdm.auto import tqdm

        started = time.monotonic()
        tags = {names.TAG_KIND: "sweep", names.TAG_STUDY: self.study_name,
                "sbbench.sampler": self.spec.sampler,
                tracking.TAG_GIT_COMMIT: tracking.git_commit()}
        with tracking.tracked_run(
                tracking.TrackingOptions(self.tracking_uri, self.experiment),
                run_name=f"sweep-{self.study_name}", tags=tags,
                resume_run_id=self._find_previous_parent()) as parent:
            self.parent_run_id = parent.run_id
            parent.set_tags(tags)
            parent.log_text(self.spec.text or "", f"study/{Path(self.spec.path).name}")
            recovered = self.recover_interrupted()
            if recovered:
                print(f"sbbench sweep: {recovered} interrupted trial(s) from an earlier run "
                      "will be re-run", file=sys.stderr)
            total = self.options.n_trials or self.spec.total_trials
            if self.spec.sampler != "tpe":
                total = min(total, len(self.spec.grid_points()))
            already = min(total, self._finished_in_scope())
            bar = tqdm(total=total, initial=already, unit="trial", desc=self.study_name,
                       disable=not self.options.progress, dynamic_ncols=True,
                       # In a log file (no terminal), one line per finished trial is enough.
                       mininterval=0.5 if sys.stderr.isatty() else 60.0)
            launched = 0
            try:
                while True:
                    bar.update(self._reap())
                    self._resolve_targets()
                    self._tell_awaiting()
                    self._heartbeat_awaiting()
                    remaining = total - self._finished_in_scope() - len(self.running)
                    can_launch = len(self.running) < self.options.workers and remaining > 0
                    if can_launch:
                        if self.spec.sampler == "tpe":
                            trial, point = self._ask_tpe()
                        else:
                            pending = self.pending_points()
                            if not pending:
                                can_launch = False
                            else:
                                trial, point = self._ask_grid_point(pending[0])
                        if can_launch:
                            self._launch(trial, point)
                            launched += 1
                            continue
                    if not self.running:
                        break
                    self._wait_for_a_worker(POLL_INTERVAL_S)
                    stop_signals.raise_if_requested()  # a Ctrl-C that a library swallowed
                waiting = self._waiting_count()
                if waiting:
                    print(f"sbbench sweep: {waiting} finished trial(s) wait for their target: "
                          "not every Traditional point of their setting has a result yet "
                          "(run the same command again)", file=sys.stderr)
            except BaseException:
                with _signals_ignored():
                    bar.close()
                    self._stop_workers()
                    self._end_orphan_runs()
                    self._tell_awaiting()
                raise
            bar.close()
            counts = self.counts()
            best = self._best_value()
            summary = {f"trials_{k}": v for k, v in counts.items()}
            if best is not None:
                summary["best_value"] = best
            parent.log_metrics(summary)
        experiment_id = self.client.get_run(self.parent_run_id).info.experiment_id
        clocks = self._training_clocks_of_this_invocation()
        return SweepResult(self.parent_run_id, self.study_name, self.storage_url,
                           self.tracking_uri, counts, best, time.monotonic() - started,
                           experiment_name=self.client.get_experiment(experiment_id).name,
                           all_trials_under_parent=not self._runs_elsewhere(experiment_id),
                           trials_run=len(clocks), train_clock_s=sum(clocks))

    def _training_clocks_of_this_invocation(self) -> list[float]:
        return [float(t.user_attrs["total_train_time_s"]) for t in self._trials()
                if t.number in self._launched and "total_train_time_s" in t.user_attrs]

    def _runs_elsewhere(self, experiment_id: str) -> bool:
        """Does this study have trial runs under another parent (an earlier `mlflow run`)?"""
        runs = self.client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{names.TAG_STUDY}` = '{self.study_name}' and "
                          f"tags.`mlflow.parentRunId` != '{self.parent_run_id}'",
            max_results=50)
        return any(names.TAG_TRIAL in r.data.tags for r in runs)

    def _finished_in_scope(self) -> int:
        if self.spec.sampler == "tpe":
            from optuna.trial import TrialState
            return sum(1 for t in self._trials() if t.state in (
                TrialState.COMPLETE, TrialState.PRUNED) or (
                t.state == TrialState.FAIL and not t.user_attrs.get(names.ATTR_INTERRUPTED)))
        keys = {point_key(p) for p in self.spec.grid_points()}
        return sum(1 for t in self._trials() if self._is_finished(t)
                   and t.user_attrs.get(names.ATTR_POINT) in keys)

    def _best_value(self) -> float | None:
        if len(self.study.directions) != 1:
            return None
        try:
            return float(self.study.best_value)
        except ValueError:
            return None
