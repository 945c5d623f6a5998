"""The sweep coordinator: one parent MLflow run, K worker processes, resumable.

Resuming is the same command again. On start the coordinator ends what an earlier, interrupted
sweep left behind (`recovery`), then runs the grid points that have no finished trial (COMPLETE,
PRUNED, or FAIL because the method failed: a diverged run is a result, not a reason to re-run).
Each trial is asked for here, in this one process, and handed to a fresh worker process
(`worker_pool`), which tells Optuna its result: no two local workers can race for the same point.

With `objective: {target_factor: F}` the target of a setting is F x the median final validation
error of its Traditional points (`targets`). Points still run in the grid's seed-major order
(methods interleaved, so machine drift hits them alike); a trial that finishes before its target
is known waits and is told once it is.

Several machines share one database storage: the first creates the study and the parent run
(its id kept as a study attribute); every other runs the same command with `join`, which never
creates or changes the study, finds the parent run, and refuses a study file that differs from
the one the study was created from. With `devices`, each worker sees only its own device.

Interrupted (Ctrl-C, SIGTERM): workers are stopped, their child runs end KILLED, their trials FAIL
(`interrupted`), any child run still RUNNING without a live trial is ended KILLED, and the parent
run ends KILLED.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sbbench import stop_signals, tracking
from sbbench.sweep import trial_records as names
from sbbench.sweep.context import SweepContext
from sbbench.sweep.heartbeats import AwaitingHeartbeat
from sbbench.sweep.recovery import Recovery
from sbbench.urls import mask_url
from sbbench.sweep.storage import (HEARTBEAT_INTERVAL_S, STATE_DIR, StorageUnavailableError,
                                   check_shareable, is_database, open_storage,
                                   storage_url_for)
from sbbench.sweep.study import StudyError, StudySpec, point_key
from sbbench.sweep.targets import Targets
from sbbench.sweep.trial_process import start_server
from sbbench.sweep.tuning_stage import TuningStage, adopt
from sbbench.sweep.worker import TrialJob
from sbbench.sweep.worker_pool import WorkerPool, device_settings

POLL_INTERVAL_S = 0.5  # how often targets and heartbeats are looked at while trials run


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
    devices: list[str] = field(default_factory=list)  # one worker per device
    join: bool = False              # add workers to a study another machine created
    join_timeout_s: float = 300.0   # how long a join waits for the study and its parent run
    # Tags over the coordinator's own on its parent run: a caller that owns the parent (a
    # nightly: sbbench.kind=nightly) keeps its identity while the sweep runs under it.
    parent_tags: dict[str, str] = field(default_factory=dict)


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


# MLflow names unnamed runs "<adjective>-<animal>-<number below 1000>".
MLFLOW_RANDOM_RUN_NAME = re.compile(r"[a-z]+-[a-z]+-\d{1,3}")


def parent_run_name(study_name: str) -> str:
    return f"sweep {study_name}"


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
        self.options = options
        study_name = options.study_name or spec.name
        # Checks before any compute: tracking store, storage, study directions.
        self.tracking_uri = tracking.resolve_tracking_uri(options.tracking.tracking_uri)
        tracking.check_tracking_reachable(self.tracking_uri)
        # (the client only when needed: opening a fresh store creates its tables, and a bad
        # storage below must fail before anything is written)
        adopted = adopt(spec, tracking.get_client(self.tracking_uri)) \
            if spec.adopts_tuning else None
        storage_url = storage_url_for(options.storage, study_name)
        if options.join:
            check_shareable(storage_url)
        storage = open_storage(storage_url)
        if options.join:
            study = self._wait_for_study(storage, study_name, spec)
        else:
            study = optuna.create_study(storage=storage, study_name=study_name,
                                        directions=spec.objective.directions,
                                        sampler=_sampler(spec), load_if_exists=True)
            if names.STUDY_ATTR_DIGEST not in study.user_attrs and spec.text:
                content = study_file_content(spec)
                study.set_user_attr(names.STUDY_ATTR_FILE, content)
                study.set_user_attr(names.STUDY_ATTR_DIGEST, _digest(content))
        if [d.name.lower() for d in study.directions] != spec.objective.directions:
            raise StudyError(spec.path, "objective", spec.objective.kind,
                             f"the objective study {study_name!r} was created with; use "
                             "--study-name for a new study")
        self._joined_parent = self._wait_for_parent(study, options) if options.join else None
        client = tracking.get_client(self.tracking_uri)
        # Initialise the store once, here, before any worker touches it (no schema race).
        experiment = options.tracking.experiment
        if experiment is None and not os.environ.get("MLFLOW_EXPERIMENT_ID"):
            experiment = tracking.DEFAULT_EXPERIMENT
        if options.join:
            experiment = self._parent_experiment(client)  # the children go beside the parent
        if experiment is not None:
            tracking.ensure_experiment(client, experiment)
        else:
            client.search_experiments(max_results=1)  # under `mlflow run`: the schema exists
        # Inputs checked, store initialised: the trial fork server imports torch and the
        # training code (and opens the store) while this process sets up the parent run.
        start_server(self.tracking_uri)
        self.context = SweepContext(spec=spec, study=study, storage=storage,
                                    storage_url=storage_url, study_name=study_name,
                                    client=client, experiment=experiment)
        self.recovery = Recovery(self.context)
        self.targets = Targets(self.context)
        self.tuning = TuningStage(self.context, adopted)
        self.heartbeat = AwaitingHeartbeat(self.context)
        self.pool = WorkerPool(options.workers,
                               (STATE_DIR.parent / "logs" / study_name).resolve(),
                               devices=options.devices)
        self._launched: set[int] = set()  # trial numbers launched by this invocation
        self._last_stale_check = time.monotonic()

    # -- joining a study another machine created --------------------------------------------------

    def _wait_for_study(self, storage, study_name: str, spec: StudySpec):
        """Load the study (a join never creates one), then check the study file against the one
        the study was created from."""
        import optuna

        deadline = time.monotonic() + self.options.join_timeout_s
        while True:
            try:
                study = optuna.load_study(study_name=study_name, storage=storage,
                                          sampler=_sampler(spec))
                break
            except KeyError:
                if time.monotonic() >= deadline:
                    raise StorageUnavailableError(
                        f"--join: no study {study_name!r} in the storage after "
                        f"{self.options.join_timeout_s:.0f} s; start it first with the same "
                        "command without --join") from None
                time.sleep(2.0)
        created_from = study.user_attrs.get(names.STUDY_ATTR_FILE)
        if created_from is not None and spec.text:
            given = study_file_content(spec)
            if _digest(given) != study.user_attrs.get(names.STUDY_ATTR_DIGEST):
                field_name, ours, theirs = _first_difference(json.loads(created_from),
                                                             json.loads(given))
                raise StudyError(spec.path, field_name, theirs,
                                 f"{ours!r}, as in the file study {study_name!r} was created "
                                 "from (a --join never changes a study)")
        return study

    def _parent_experiment(self, client) -> str:
        """The experiment of the parent run a join found (it must be on this tracking server)."""
        from mlflow.exceptions import MlflowException

        try:
            parent = client.get_run(self._joined_parent)
            return client.get_experiment(parent.info.experiment_id).name
        except MlflowException:
            raise tracking.TrackingUnavailableError(
                f"--join: the study's parent run {self._joined_parent} is not on tracking server "
                f"{mask_url(self.tracking_uri)!r}; use the first machine's --tracking-uri"
            ) from None

    def _wait_for_parent(self, study, options: SweepOptions) -> str:
        """The parent run the creating machine recorded on the study."""
        deadline = time.monotonic() + options.join_timeout_s
        while True:
            parent = study.user_attrs.get(names.STUDY_ATTR_PARENT_RUN)
            if parent:
                return parent
            if time.monotonic() >= deadline:
                raise StorageUnavailableError(
                    f"--join: study {study.study_name!r} has no parent run after "
                    f"{options.join_timeout_s:.0f} s; is its first machine running?")
            time.sleep(2.0)  # user_attrs reads the storage afresh

    # Read-only views other modules and tests use.
    spec = property(lambda self: self.context.spec)
    study = property(lambda self: self.context.study)
    study_name = property(lambda self: self.context.study_name)
    storage_url = property(lambda self: self.context.storage_url)
    parent_run_id = property(lambda self: self.context.parent_run_id)

    def recover_interrupted(self) -> int:
        return self.recovery.recover_interrupted(self.pool.trial_numbers)

    def pending_points(self) -> list[dict[str, Any]]:
        return self.context.pending_points()

    def finished_count(self) -> int:
        return sum(1 for t in self.context.trials() if self.context.is_finished(t))

    def counts(self) -> dict[str, int]:
        from optuna.trial import TrialState

        trials = self.context.trials()
        return {
            "complete": sum(t.state == TrialState.COMPLETE for t in trials),
            "failed": sum(t.state == TrialState.FAIL and not self.context.is_interrupted(t)
                          and t.user_attrs.get(names.ATTR_FAILURE_KIND) !=
                          names.FAILURE_DUPLICATE for t in trials),
            "interrupted": sum(self.context.is_interrupted(t) for t in trials),
            "pruned": sum(t.state == TrialState.PRUNED for t in trials),
            "waiting": sum(t.state == TrialState.RUNNING and bool(t.user_attrs.get(
                names.ATTR_AWAITING)) for t in trials),
        }

    # -- asking for trials -----------------------------------------------------------------------

    def _ask_grid_point(self, point: dict[str, Any]):
        self.context.study.enqueue_trial(point, user_attrs={names.ATTR_POINT: point_key(point)})
        trial = self.context.study.ask()
        # On a shared database another coordinator's enqueued point may be the one popped: run
        # the point the trial carries.
        fixed = trial.user_attrs.get(names.ATTR_POINT)
        point = dict(point) if fixed is None else json.loads(fixed)
        return trial, self._suggest_point(trial, point)

    def _suggest_point(self, trial, point: dict[str, Any]) -> dict[str, Any]:
        spec = self.context.spec
        for key, value in point.items():
            choices = spec.choices_for(key, value)
            if spec.adopts_tuning and key in spec.tuned_fields:
                # Optuna fixes a parameter's choices study-wide: every adopted value, in a
                # stable order (the methods adopted different ones).
                adopted = {json.dumps(v[key], sort_keys=True): v[key]
                           for v in self.context.tuning_choice.values() if key in v}
                choices = [adopted[k] for k in sorted(adopted)]
            if all(isinstance(c, (str, int, float, bool)) or c is None for c in choices):
                trial.suggest_categorical(key, choices)  # a list value (lr_milestones) is
                # not a categorical choice: it stays in the point attribute only
        return point

    def _ask_tpe(self):
        from sbbench.method_fields import applies

        trial = self.context.study.ask()
        point: dict[str, Any] = {}
        for key, values in self.context.spec.grid.items():
            point[key] = trial.suggest_categorical(key, values)
        method = self.context.spec.method_of(point)
        for key, rng in self.context.spec.ranges.items():
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
        point["seed"] = self.context.spec.seeds[trial.number % len(self.context.spec.seeds)]
        trial.set_user_attr(names.ATTR_POINT, point_key(point))
        return trial, point

    # -- running them -----------------------------------------------------------------------------

    def _threads_per_worker(self) -> int:
        # The cores this process may use (taskset, a Slurm or container cpuset), not the host's.
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
            (os.cpu_count() or 1)
        return max(1, usable // max(1, self.options.workers))

    def _launch(self, trial, point: dict[str, Any]) -> None:
        spec = self.context.spec
        values = {**spec.base, **point}
        values.setdefault("num_threads", self._threads_per_worker())
        config = spec.config_for({**point, "num_threads": values["num_threads"]})
        # The worker gets the target resolved (None: a Traditional trial whose study does not
        # know its target yet; it waits for it).
        objective = self.tuning.objective_for(point) or {
            **asdict(spec.objective), "target_error": self.targets.target_for(point)}
        device = self.pool.next_device()
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_RUN_ID"}
        if device is not None:
            device_env, config_device = device_settings(
                device, os.environ.get("CUDA_VISIBLE_DEVICES"))
            env.update(device_env)
            config = config.replace(device=config_device)
        job = TrialJob(study_name=self.context.study_name, storage_url=self.context.storage_url,
                       trial_number=trial.number, config=config.to_dict(),
                       objective=objective, tracking_uri=self.tracking_uri,
                       experiment=self.context.experiment, pruning=spec.pruning,
                       launched_at=time.time(), device=device,
                       tags=self.tuning.tags_for(point))
        if is_database(self.tracking_uri):
            # A worker talking to the tracking database directly: a small pool, like Optuna's
            # (MLflow's default of 5 + 10 per process would exhaust PostgreSQL's 100).
            env.setdefault("MLFLOW_SQLALCHEMYSTORE_POOL_SIZE", "1")
            env.setdefault("MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW", "2")
        env[names.ENV_PARENT_RUN_ID] = self.context.parent_run_id or ""
        env["MLFLOW_TRACKING_URI"] = self.tracking_uri
        self.pool.launch(trial.number, job.to_json(), env)
        self._launched.add(trial.number)
        self.context.attempted.add(point_key(point))

    def _reap(self) -> int:
        """Collect finished workers; a worker that died without telling Optuna is interrupted."""
        from optuna.trial import TrialState

        ended = self.pool.collect_ended()
        for worker in ended:
            trial = self.context.study.get_trials(deepcopy=False)[worker.trial_number]
            if trial.state == TrialState.RUNNING and not (
                    worker.returncode == 0 and trial.user_attrs.get(names.ATTR_AWAITING)):
                self.recovery.mark_interrupted(worker.trial_number, trial._trial_id,
                                               trial.user_attrs.get(names.ATTR_RUN_ID))
                print(f"sbbench sweep: trial {worker.trial_number} worker exited with code "
                      f"{worker.returncode}; see {worker.log_path}", file=sys.stderr)
        return len(ended)

    def _stop_workers(self) -> None:
        self.pool.stop_all()
        self._reap()

    # -- the sweep ---------------------------------------------------------------------------------

    def _find_previous_parent(self) -> str | None:
        if os.environ.get("MLFLOW_RUN_ID"):
            return None  # under `mlflow run`: the project run is the parent
        experiment = self.context.client.get_experiment_by_name(self.context.experiment or
                                                        tracking.DEFAULT_EXPERIMENT)
        if experiment is None:
            return None
        runs = self.context.client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`{names.TAG_KIND}` = 'sweep' and "
                          f"tags.`{names.TAG_STUDY}` = '{self.context.study_name}'",
            order_by=["attributes.start_time DESC"], max_results=1)
        return runs[0].info.run_id if runs else None

    def run(self) -> SweepResult:
        context = self.context
        started = time.monotonic()
        if self.options.join:
            # The creating machine owns the parent run: a join adds children and never ends it.
            context.parent_run_id = self._joined_parent
            counts, best = self._sweep()
        else:
            tags = {names.TAG_KIND: "sweep", names.TAG_STUDY: context.study_name,
                    names.TAG_SAMPLER: context.spec.sampler,
                    tracking.TAG_GIT_COMMIT: tracking.git_commit(),
                    **self.options.parent_tags}
            with tracking.tracked_run(
                    tracking.TrackingOptions(self.tracking_uri, context.experiment),
                    run_name=parent_run_name(context.study_name), tags=tags,
                    resume_run_id=self._find_previous_parent()) as parent:
                context.parent_run_id = parent.run_id
                parent.set_tags(tags)
                self._name_parent_after_the_study()
                parent.log_text(context.spec.text or "",
                                f"study/{Path(context.spec.path).name}")
                # Before any worker starts: joining machines find the parent here.
                context.study.set_user_attr(names.STUDY_ATTR_PARENT_RUN, parent.run_id)
                counts, best = self._sweep()
                summary = {f"trials_{k}": v for k, v in counts.items()}
                if best is not None:
                    summary["best_value"] = best
                parent.log_metrics(summary)
        experiment_id = context.client.get_run(context.parent_run_id).info.experiment_id
        clocks = self._training_clocks_of_this_invocation()
        return SweepResult(context.parent_run_id, context.study_name, context.storage_url,
                           self.tracking_uri, counts, best, time.monotonic() - started,
                           experiment_name=context.client.get_experiment(experiment_id).name,
                           all_trials_under_parent=not self._runs_elsewhere(experiment_id),
                           trials_run=len(clocks), train_clock_s=sum(clocks))

    def _sweep(self) -> tuple[dict[str, int], float | None]:
        """Recover, run the trials, stop the workers cleanly on any interruption."""
        from tqdm.auto import tqdm

        context = self.context
        recovered = self.recover_interrupted()
        if recovered:
            print(f"sbbench sweep: {recovered} interrupted trial(s) from an earlier run "
                  "will be re-run", file=sys.stderr)
        total = self.options.n_trials or context.spec.total_trials
        if context.spec.sampler != "tpe":
            total = min(total, context.spec.total_trials)
        self.tuning.advance()  # a resumed two-stage study whose tuning stage is done
        already = min(total, self._finished_in_scope())
        bar = tqdm(total=total, initial=already, unit="trial", desc=context.study_name,
                   disable=not self.options.progress, dynamic_ncols=True,
                   # In a log file (no terminal), one line per finished trial is enough.
                   mininterval=0.5 if sys.stderr.isatty() else 60.0)
        try:
            self._run_trials(total, bar)
            missing = self.tuning.missing_count()
            if missing and not self.options.n_trials:
                print(f"sbbench sweep: the tuning stage has {missing} point(s) without a result "
                      "(a run failed with an error); the timing stage starts once they have "
                      "one (run the same command again)", file=sys.stderr)
            waiting = self.targets.waiting_count()
            if waiting:
                print(f"sbbench sweep: {waiting} finished trial(s) wait for their target: "
                      "not every Traditional point of their setting has a result yet "
                      "(run the same command again)", file=sys.stderr)
        except BaseException:
            with _signals_ignored():
                bar.close()
                self._stop_workers()
                self.recovery.end_orphan_runs(self.pool.trial_numbers)
                self.targets.tell_awaiting(self.pool.trial_numbers)
            raise
        bar.close()
        return self.counts(), self._best_value()

    def _fail_stale_trials(self) -> None:
        """On a shared database: fail (and re-queue) the trials of workers on any machine whose
        heartbeats stopped, once per heartbeat interval."""
        if not self.context.shared_by_machines or \
                time.monotonic() - self._last_stale_check < HEARTBEAT_INTERVAL_S:
            return
        self._last_stale_check = time.monotonic()
        recovered = self.recover_interrupted()
        if recovered:
            print(f"sbbench sweep: {recovered} trial(s) whose worker stopped will be re-run",
                  file=sys.stderr)

    def _run_trials(self, total: int, bar) -> None:
        """Keep the pool full until `total` trials have a result (or the grid is exhausted).

        A stop (Ctrl-C, SIGTERM) is raised only while waiting for a worker: one arriving while
        the coordinator writes to the study is recorded and raised when that step is done.
        Raised between `study.ask()` and the worker's launch it left the asked trial RUNNING
        with no worker to end it (seen in repeated interrupts right after a trial finished);
        raised inside a storage write it could cut the write in half."""
        while True:
            with stop_signals.deferred():
                bar.update(self._reap())
                self.tuning.advance()
                self.targets.resolve()
                self.targets.tell_awaiting(self.pool.trial_numbers)
                self.heartbeat.beat()
                self._fail_stale_trials()
                remaining = total - self._finished_in_scope() - len(self.pool)
                if self.pool.has_room and remaining > 0:
                    asked = self._ask_next()
                    if asked is not None:
                        self._launch(*asked)
                        continue
                if not len(self.pool):
                    return
            self.pool.wait_for_an_exit(POLL_INTERVAL_S)
            stop_signals.raise_if_requested()  # a Ctrl-C that a library swallowed

    def _ask_next(self):
        """(trial, point) for the next trial to run, or None when no grid point is left."""
        if self.context.spec.sampler == "tpe":
            return self._ask_tpe()
        while True:
            asked = self._ask_pending_or_requeued()
            if asked is None or not self.context.shared_by_machines or self._claim(*asked):
                return asked

    def _ask_pending_or_requeued(self):
        from optuna.trial import TrialState

        pending = self.context.pending_points()
        if pending:
            return self._ask_grid_point(pending[0])
        if self.context.shared_by_machines and any(
                t.state == TrialState.WAITING and t.user_attrs.get(names.ATTR_POINT)
                for t in self.context.trials()):
            # A trial re-queued after its worker died (RetryHeartbeatStaleTrialCallback).
            trial = self.context.study.ask()
            fixed = trial.user_attrs.get(names.ATTR_POINT)
            if fixed is None:  # another coordinator took it first: this empty trial is void
                self._void(trial)
                return None
            return trial, self._suggest_point(trial, json.loads(fixed))
        return None

    def _claim(self, trial, point: dict[str, Any]) -> bool:
        """On a shared database two machines may enqueue and pop the same pending point at
        once. The trial with the lowest number keeps it (a finished one always does); the others
        are void (FAIL, `duplicate`): counted nowhere, never re-run."""
        from optuna.trial import TrialState

        key = point_key(point)
        for other in self.context.trials():
            if other.number == trial.number or other.user_attrs.get(names.ATTR_POINT) != key:
                continue
            if self.context.is_finished(other) or (
                    other.state in (TrialState.RUNNING, TrialState.WAITING)
                    and other.number < trial.number):
                self._void(trial)
                return False
        return True

    def _void(self, trial) -> None:
        from optuna.trial import TrialState

        self.context.storage.set_trial_user_attr(trial._trial_id, names.ATTR_FAILURE_KIND,
                                                 names.FAILURE_DUPLICATE)
        self.context.study.tell(trial.number, state=TrialState.FAIL)

    def _name_parent_after_the_study(self) -> None:
        """`mlflow run` gives its project run a random name ("learned-carp-224"); a user's own
        name (`--run-name`) stays."""
        client, run_id = self.context.client, self.context.parent_run_id
        name = client.get_run(run_id).info.run_name or ""
        if not name or MLFLOW_RANDOM_RUN_NAME.fullmatch(name):
            client.update_run(run_id, name=parent_run_name(self.context.study_name))

    def _training_clocks_of_this_invocation(self) -> list[float]:
        return [float(t.user_attrs["total_train_time_s"]) for t in self.context.trials()
                if t.number in self._launched and "total_train_time_s" in t.user_attrs]

    def _runs_elsewhere(self, experiment_id: str) -> bool:
        """Does this study have trial runs under another parent (an earlier `mlflow run`)?"""
        runs = self.context.client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{names.TAG_STUDY}` = '{self.context.study_name}' and "
                          f"tags.`mlflow.parentRunId` != '{self.context.parent_run_id}'",
            max_results=50)
        return any(names.TAG_TRIAL in r.data.tags for r in runs)

    def _finished_in_scope(self) -> int:
        if self.context.spec.sampler == "tpe":
            from optuna.trial import TrialState
            return sum(1 for t in self.context.trials() if t.state in (
                TrialState.COMPLETE, TrialState.PRUNED) or (
                t.state == TrialState.FAIL and not t.user_attrs.get(names.ATTR_INTERRUPTED)))
        keys = {point_key(p) for p in self.context.points()}
        return sum(1 for t in self.context.trials() if self.context.is_finished(t)
                   and t.user_attrs.get(names.ATTR_POINT) in keys)

    def _best_value(self) -> float | None:
        if len(self.context.study.directions) != 1:
            return None
        try:
            return float(self.context.study.best_value)
        except ValueError:
            return None


def study_file_content(spec: StudySpec) -> str:
    """The study file's content as canonical JSON (comments and layout do not count)."""
    import yaml

    return json.dumps(yaml.safe_load(spec.text), sort_keys=True, default=str)


def _digest(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


def _first_difference(created: Any, given: Any, where: str = "") -> tuple[str, Any, Any]:
    """(dotted field, value at creation, value given) of the first difference."""
    if isinstance(created, dict) and isinstance(given, dict):
        for key in sorted(set(created) | set(given)):
            if created.get(key) != given.get(key):
                return _first_difference(created.get(key), given.get(key),
                                         f"{where}.{key}" if where else str(key))
    return where or "study", created, given
