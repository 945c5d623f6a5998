"""Targets of `target_factor` studies: F x the median final validation error of a setting's
Traditional points, fixed once in the study's user attributes (`target_error:<setting>`, reused on
resume and by other machines). Trials that finish before their target is known wait (RUNNING,
`awaiting_target`, their curve kept on the trial) and are told their value here once it is.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from sbbench.sweep import trial_records as names
from sbbench.sweep.context import SweepContext
from sbbench.sweep.objective import curve_from_attr, objective_values
from sbbench.sweep.study import Objective, point_key


class Targets:
    def __init__(self, context: SweepContext):
        self.context = context
        self._fixed: dict[str, float] = {}  # setting key -> target, once fixed

    def target_for(self, point: dict[str, Any]) -> float | None:
        objective = self.context.spec.objective
        if objective.kind != "time_to_target":
            return None
        if objective.target_factor is None:
            return objective.target_error
        key = names.STUDY_ATTR_TARGET + self.context.spec.setting_key(point)
        if key not in self._fixed:
            value = self.context.study.user_attrs.get(key)  # fixed earlier, maybe by another machine
            if value is None:
                return None
            self._fixed[key] = float(value)
        return self._fixed[key]

    def resolve(self) -> None:
        """Fix the target of every setting whose Traditional points all have a result (a point
        that failed with an error in this invocation counts as done: it is retried next time,
        and must not hold every other trial hostage)."""
        if self.context.spec.objective.target_factor is None:
            return
        from optuna.trial import TrialState

        pending = {point_key(p) for p in self.context.pending_points()}
        by_point: dict[str, list] = {}
        for trial in self.context.trials():
            key = trial.user_attrs.get(names.ATTR_POINT)
            if key:
                by_point.setdefault(key, []).append(trial)
        settings: dict[str, list[dict[str, Any]]] = {}
        for point in self.context.baseline_points():
            settings.setdefault(self.context.spec.setting_key(point), []).append(point)
        for setting, baselines in settings.items():
            if self.target_for(baselines[0]) is not None:
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
            target = self.context.spec.objective.target_factor * median
            self.context.study.set_user_attr(names.STUDY_ATTR_TARGET + setting, target)
            source = " of the tuning stage (never timed)" if self.context.spec.tuning and \
                not self.context.spec.adopts_tuning else ""
            print(f"sbbench sweep: target for {setting} = {target:.4g} "
                  f"({self.context.spec.objective.target_factor:g} x median final validation "
                  f"error of {len(finals)} Traditional run(s){source})", file=sys.stderr)

    def tell_awaiting(self, local_trials: set[int]) -> int:
        """Tell Optuna the value of each waiting trial whose target is now known."""
        from optuna.trial import TrialState

        told = 0
        for trial in self.context.trials():
            if trial.state != TrialState.RUNNING or trial.number in local_trials or \
                    not trial.user_attrs.get(names.ATTR_AWAITING):
                continue
            point = json.loads(trial.user_attrs[names.ATTR_POINT])
            target = self.target_for(point)
            if target is None:
                continue
            final = {k: trial.user_attrs[k] for k in ("final_val_error", "total_train_time_s")}
            values, attrs = objective_values(
                Objective(kind="time_to_target", target_error=target),
                curve_from_attr(trial.user_attrs[names.ATTR_CURVE]), final)
            for key, value in {**attrs, names.ATTR_AWAITING: False}.items():
                self.context.storage.set_trial_user_attr(trial._trial_id, key, value)
            self.context.study.tell(trial.number, values, skip_if_finished=True)
            told += 1
        return told

    def waiting_count(self) -> int:
        from optuna.trial import TrialState

        return sum(1 for t in self.context.trials() if t.state == TrialState.RUNNING
                   and t.user_attrs.get(names.ATTR_AWAITING))
