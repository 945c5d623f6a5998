"""What every part of a sweep shares: the study, its storage, the MLflow client and the grid
bookkeeping (which points have a result, which are still to run)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from sbbench import tracking
from sbbench.sweep import trial_records as names
from sbbench.sweep.study import StudySpec, point_key


@dataclass
class SweepContext:
    spec: StudySpec
    study: Any                 # optuna.Study
    storage: Any               # the study's Optuna storage
    storage_url: str
    study_name: str
    client: Any                # MlflowClient bound to the tracking URI
    experiment: str | None     # None: the experiment of `mlflow run`
    parent_run_id: str | None = None
    attempted: set[str] = field(default_factory=set)  # grid points launched by this invocation
    # A two-stage study's chosen settings (configuration key -> values), once its tuning stage
    # has every result (`tuning_stage.TuningStage`); None before, and for plain studies.
    tuning_choice: dict[str, dict[str, Any]] | None = None

    def points(self) -> list[dict[str, Any]]:
        """Every point the sweep runs as far as it is known now (a two-stage study's timed
        points appear once its tuning stage has chosen)."""
        return self.spec.points(self.tuning_choice)

    def baseline_points(self) -> list[dict[str, Any]]:
        """The Traditional points whose final validation errors set the factor targets: a plain
        study's own; a two-stage study's Traditional tuning runs at the chosen setting (seeds
        that are never timed)."""
        spec = self.spec
        if spec.tuning is None:
            return [p for p in spec.grid_points() if spec.is_baseline(p)]
        if self.tuning_choice is None:
            return []
        from sbbench.sweep.tuning import configuration_key

        return [p for p in spec.tuning_points() if spec.is_baseline(p) and all(
            p.get(k) == v for k, v in
            self.tuning_choice[configuration_key(p, spec.tuned_fields)].items())]

    @property
    def shared_by_machines(self) -> bool:
        """A database storage may have coordinators on other machines; a journal file not."""
        return not self.storage_url.startswith("journal:")

    def trials(self):
        return self.study.get_trials(deepcopy=False)

    def is_finished(self, trial) -> bool:
        """Has this trial a result? (COMPLETE, PRUNED, waiting for its target, or diverged.)"""
        from optuna.trial import TrialState

        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            return True
        if trial.state == TrialState.RUNNING and trial.user_attrs.get(names.ATTR_AWAITING):
            return True  # its run is done; only the value waits for the study's target
        # A diverged run is a result of the method; a crash or an interruption is not, and
        # is re-run by the next invocation (never twice in the same one: see `attempted`).
        return trial.state == TrialState.FAIL and \
            trial.user_attrs.get(names.ATTR_FAILURE_KIND) == "diverged"

    @staticmethod
    def is_interrupted(trial) -> bool:
        """FAIL because its worker stopped (not the method): the point is re-run. A trial
        failed as stale by a heartbeat check has no failure kind (it takes no more attributes)."""
        from optuna.trial import TrialState

        return trial.state == TrialState.FAIL and (
            bool(trial.user_attrs.get(names.ATTR_INTERRUPTED)) or
            names.ATTR_FAILURE_KIND not in trial.user_attrs)

    def pending_points(self) -> list[dict[str, Any]]:
        """Grid points without a finished, running or queued trial, in the grid's order."""
        from optuna.trial import TrialState

        from sbbench.sweep.storage import MAX_RETRIES

        taken, interrupted, errored = set(), {}, set()
        for trial in self.trials():
            key = trial.user_attrs.get(names.ATTR_POINT)
            if key and (self.is_finished(trial) or trial.state in (TrialState.RUNNING,
                                                                   TrialState.WAITING)):
                taken.add(key)
            elif key and trial.state == TrialState.FAIL and \
                    trial.user_attrs.get(names.ATTR_FAILURE_KIND) != names.FAILURE_DUPLICATE:
                if self.is_interrupted(trial):
                    interrupted[key] = interrupted.get(key, 0) + 1
                else:
                    errored.add(key)
        if self.shared_by_machines:
            # Machines come and go: a point whose worker was killed or stopped runs again in
            # this invocation too (by any machine), at most MAX_RETRIES times.
            taken |= {k for k, n in interrupted.items() if n > MAX_RETRIES}
            taken |= {k for k in self.attempted if k not in interrupted or k in errored}
        else:
            taken |= self.attempted
        return [p for p in self.points() if point_key(p) not in taken]

    def experiment_ids(self) -> list[str]:
        """Where this study's runs can be: the parent's experiment and the named one."""
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
