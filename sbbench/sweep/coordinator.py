"""The sweep coordinator: one parent MLflow run, K worker processes, resumable.

Resuming is the same command again. On start the coordinator
1. ends what an earlier, interrupted sweep left behind: RUNNING trials become FAIL (marked
   `interrupted`) and their RUNNING child runs become KILLED;
2. computes the grid points that have no finished trial (COMPLETE, PRUNED, or FAIL because the
   method failed: a diverged run is a result, not a reason to re-run) and runs only those.
Each trial is asked for here, in this one process, and handed to a fresh worker process, which
tells Optuna its result: no two local workers can race for the same point.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sbbench import tracking
from sbbench.sweep import trial_records as names
from sbbench.sweep.storage import STATE_DIR, open_storage, storage_url_for
from sbbench.sweep.study import StudySpec, point_key
from sbbench.sweep.worker import TrialJob

POLL_INTERVAL_S = 0.5
WORKER_STOP_GRACE_S = 30.0


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
        self.client = tracking.get_client(self.tracking_uri)
        # Initialise the store once, here, before any worker touches it (no schema race).
        self.experiment = options.tracking.experiment
        if self.experiment is None and not os.environ.get("MLFLOW_EXPERIMENT_ID"):
            self.experiment = tracking.DEFAULT_EXPERIMENT
        if self.experiment is not None:
            tracking.ensure_experiment(self.client, self.experiment)
        self.log_dir = (STATE_DIR.parent / "logs" / self.study_name).resolve()
        self.running: dict[int, tuple[subprocess.Popen, str]] = {}
        self._attempted: set[str] = set()  # grid points launched by this invocation
        self.parent_run_id: str | None = None

    # -- bookkeeping over the study --------------------------------------------------------------

    def _trials(self):
        return self.study.get_trials(deepcopy=False)

    def _is_finished(self, trial) -> bool:
        from optuna.trial import TrialState

        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            return True
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
            local = set(self.running)
            for trial in self._trials():
                if trial.state != TrialState.RUNNING or trial.number in local:
                    continue
                self._mark_interrupted(trial.number, trial._trial_id,
                                       trial.user_attrs.get(names.ATTR_RUN_ID))
                recovered += 1
            return recovered
        import optuna

        optuna.storages.fail_stale_trials(self.study)
        for trial in self._trials():
            if trial.state == TrialState.FAIL and \
                    names.ATTR_FAILURE_KIND not in trial.user_attrs:
                self._mark_interrupted(trial.number, trial._trial_id,
                                       trial.user_attrs.get(names.ATTR_RUN_ID))
                recovered += 1
        return recovered

    def _mark_interrupted(self, number: int, trial_id: int, run_id: str | None) -> None:
        from optuna.trial import TrialState

        self.storage.set_trial_user_attr(trial_id, names.ATTR_INTERRUPTED, True)
        self.storage.set_trial_user_attr(trial_id, names.ATTR_FAILURE_KIND, "interrupted")
        self.study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
        if run_id:
            run = self.client.get_run(run_id)
            if run.info.status == "RUNNING":
                self.client.set_tag(run_id, tracking.TAG_FAILURE_KIND, "interrupted")
                self.client.set_tag(run_id, tracking.TAG_FAILURE_REASON,
                                    "worker process died (killed or crashed)")
                self.client.set_terminated(run_id, status="KILLED")

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
        }

    # -- asking for trials -----------------------------------------------------------------------

    def _ask_grid_point(self, point: dict[str, Any]):
        from optuna.distributions import CategoricalDistribution

        self.study.enqueue_trial(point, user_attrs={names.ATTR_POINT: point_key(point)})
        trial = self.study.ask()
        fixed = trial.user_attrs.get(names.ATTR_POINT)
        point = dict(point) if fixed is None else json.loads(fixed)
        for key, value in point.items():
            choices = self.spec.seeds if key == "seed" else self.spec.grid[key]
            trial.suggest_categorical(key, choices)
        return trial, point

    def _ask_tpe(self):
        trial = self.study.ask()
        point: dict[str, Any] = {}
        for key, rng in self.spec.ranges.items():
            integer = all(isinstance(rng[k], int) for k in ("low", "high")) and \
                isinstance(rng.get("step", 1), int)
            if integer:
                point[key] = trial.suggest_int(key, rng["low"], rng["high"],
                                               step=rng.get("step", 1), log=bool(rng.get("log")))
            else:
                point[key] = trial.suggest_float(key, float(rng["low"]), float(rng["high"]),
                                                 log=bool(rng.get("log")),
                                                 step=rng.get("step"))
        for key, values in self.spec.grid.items():
            point[key] = trial.suggest_categorical(key, values)
        point["seed"] = self.spec.seeds[trial.number % len(self.spec.seeds)]
        trial.set_user_attr(names.ATTR_POINT, point_key(point))
        return trial, point

    def _threads_per_worker(self) -> int:
        return max(1, (os.cpu_count() or 1) // max(1, self.options.workers))

    def _launch(self, trial, point: dict[str, Any]) -> None:
        values = {**self.spec.base, **point}
        values.setdefault("num_threads", self._threads_per_worker())
        config = self.spec.config_for({**point, "num_threads": values["num_threads"]})
        job = TrialJob(study_name=self.study_name, storage_url=self.storage_url,
                       trial_number=trial.number, config=config.to_dict(),
                       objective=asdict(self.spec.objective), tracking_uri=self.tracking_uri,
                       experiment=self.experiment, pruning=self.spec.pruning)
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_RUN_ID"}
        env[names.ENV_PARENT_RUN_ID] = self.parent_run_id or ""
        env["MLFLOW_TRACKING_URI"] = self.tracking_uri
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"trial-{trial.number}.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen([sys.executable, "-m", "sbbench.sweep.worker"],
                                       stdin=subprocess.PIPE, stdout=log, stderr=log, env=env,
                                       text=True)
        process.stdin.write(job.to_json())
        process.stdin.close()
        self.running[trial.number] = (process, str(log_path))
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
            if trial.state == TrialState.RUNNING:
                self._mark_interrupted(number, trial._trial_id,
                                       trial.user_attrs.get(names.ATTR_RUN_ID))
                print(f"sbbench sweep: trial {number} worker exited with code "
                      f"{process.returncode}; see {log_path}", file=sys.stderr)
        return done

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
                    time.sleep(POLL_INTERVAL_S)
            except BaseException:
                bar.close()
                self._stop_workers()
                raise
            bar.close()
            counts = self.counts()
            best = self._best_value()
            summary = {f"trials_{k}": v for k, v in counts.items()}
            if best is not None:
                summary["best_value"] = best
            parent.log_metrics(summary)
        return SweepResult(self.parent_run_id, self.study_name, self.storage_url,
                           self.tracking_uri, counts, best, time.monotonic() - started)

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
