"""The coordinator's side of a two-stage study: fix each configuration's chosen setting once
every tuning point has a result, and say what the tuning and timing runs are (their tags).

The choice is written to the Optuna study (`STUDY_ATTR_TUNING_CHOICE`) once and read back from
there on every later invocation or machine: a resumed sweep times exactly what was chosen.
The Traditional tuning runs at their chosen setting are tagged `sbbench.role=reference`: they
set the timing stage's factor targets, so the analysis finds its targets on seeds it never
times.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from sbbench.sweep import trial_records as names
from sbbench.sweep.context import SweepContext
from sbbench.sweep.study import point_key
from sbbench.sweep.tuning import (WORST_SCORE, Candidate, candidates_by_configuration, choose,
                                  configuration_key)


class TuningStage:
    def __init__(self, context: SweepContext):
        self.context = context

    @property
    def active(self) -> bool:
        return self.context.spec.tuning is not None

    def advance(self) -> bool:
        """Fix the choice when it can be fixed; True once it is (always True for a plain
        study)."""
        context = self.context
        if not self.active or context.tuning_choice is not None:
            return True
        stored = context.study.user_attrs.get(names.STUDY_ATTR_TUNING_CHOICE)
        if stored:
            context.tuning_choice = json.loads(stored)["chosen"]
            return True
        results = self._results()
        points = context.spec.tuning_points()
        if any(point_key(p) not in results for p in points):
            return False
        record = self._choose(points, results)
        context.study.set_user_attr(names.STUDY_ATTR_TUNING_CHOICE, json.dumps(record))
        context.tuning_choice = record["chosen"]
        self._tag_references(results)
        print(describe_choice(record, context.spec.tuning.criterion), file=sys.stderr)
        return True

    def missing_count(self) -> int:
        """Tuning points without a result (what keeps the timing stage from starting)."""
        if not self.active or self.context.tuning_choice is not None:
            return 0
        results = self._results()
        return sum(point_key(p) not in results for p in self.context.spec.tuning_points())

    def _results(self) -> dict[str, Any]:
        """point key -> its finished trial (the first, should a point have run twice)."""
        out: dict[str, Any] = {}
        for trial in self.context.trials():
            key = trial.user_attrs.get(names.ATTR_POINT)
            if key and key not in out and self.context.is_finished(trial):
                out[key] = trial
        return out

    def _choose(self, points: list[dict[str, Any]], results: dict[str, Any]) -> dict[str, Any]:
        from optuna.trial import TrialState

        tuned = self.context.spec.tuned_fields
        grouped = candidates_by_configuration(points, tuned)
        for point in points:
            trial = results[point_key(point)]
            values = {k: point[k] for k in tuned if k in point}
            candidate = next(c for c in grouped[configuration_key(point, tuned)]
                             if c.values == values)
            score = float(trial.values[0]) if trial.state == TrialState.COMPLETE and \
                trial.values else WORST_SCORE
            candidate.scores.append(score if math.isfinite(score) else WORST_SCORE)
            candidate.trial_numbers.append(trial.number)
        return {"chosen": {config: choose(cands).values for config, cands in grouped.items()},
                "candidates": {config: [_as_dict(c) for c in cands]
                               for config, cands in grouped.items()},
                "seeds": list(self.context.spec.tuning.seeds)}

    def _tag_references(self, results: dict[str, Any]) -> None:
        for point in self.context.baseline_points():
            run_id = results[point_key(point)].user_attrs.get(names.ATTR_RUN_ID)
            if run_id:
                self.context.client.set_tag(run_id, names.TAG_ROLE, names.ROLE_REFERENCE)

    # -- what a trial's run is tagged with --------------------------------------------------------

    def tags_for(self, point: dict[str, Any]) -> dict[str, str]:
        spec = self.context.spec
        stage = spec.stage_of(point)
        if stage is None:
            return {}
        if stage == "tuning":
            return {names.TAG_STAGE: names.STAGE_TUNING}
        config = configuration_key(point, spec.tuned_fields)
        record = json.loads(self.context.study.user_attrs[names.STUDY_ATTR_TUNING_CHOICE])
        chosen = record["chosen"][config]
        scores = ", ".join(f"{_values_text(c['values'])}: {_score_text(c['mean'])}"
                           for c in record["candidates"][config])
        return {names.TAG_STAGE: names.STAGE_TIMING,
                names.TAG_TUNED_VALUES: json.dumps(chosen, sort_keys=True),
                names.TAG_TUNED_FROM: (
                    f"tuning stage of study {self.context.study_name}: lowest mean "
                    f"{spec.tuning.criterion} over tuning seeds {record['seeds']} "
                    f"({scores})")[:4000]}

    def objective_for(self, point: dict[str, Any]) -> dict[str, Any] | None:
        """A tuning trial's objective (None: the study's own, for timed points)."""
        if self.context.spec.stage_of(point) == "tuning":
            return self.context.spec.tuning.objective()
        return None


def _as_dict(candidate: Candidate) -> dict[str, Any]:
    mean = candidate.mean
    return {"values": candidate.values, "scores": [s if math.isfinite(s) else None
                                                   for s in candidate.scores],
            "mean": mean if math.isfinite(mean) else None,
            "trials": candidate.trial_numbers}


def _values_text(values: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(values.items())) or "(defaults)"


def _score_text(mean: float | None) -> str:
    return "diverged" if mean is None else f"{mean:.4g}"


def describe_choice(record: dict[str, Any], criterion: str) -> str:
    """The tuning stage's result, one line per configuration and candidate."""
    lines = [f"sbbench sweep: tuning stage done (criterion: mean {criterion} over seeds "
             f"{record['seeds']}):"]
    for config, candidates in record["candidates"].items():
        chosen = record["chosen"][config]
        label = " ".join(f"{k}={v}" for k, v in json.loads(config).items())
        cells = [("*" if c["values"] == chosen else " ") + f"{_values_text(c['values'])} "
                 f"{_score_text(c['mean'])}" for c in candidates]
        lines.append(f"  {label}: " + ", ".join(cells))
    lines.append("  (* chosen: timed on fresh seeds)")
    return "\n".join(lines)
