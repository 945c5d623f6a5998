"""The tuning stage of a two-stage study: tune each method's nuisance hyperparameters on seeds
that are never timed, then time each method at its own best setting on fresh seeds.

A study file declares it in a `tuning:` section:

    tuning:
      grid: {lr: [0.0125, 0.025, 0.05, 0.1, 0.2]}   # values every method tries
      methods:                                      # optional: a method's own values
        kath18: {lr: [0.025, 0.05, 0.1]}
      seeds: [100, 101]                             # disjoint from the timing `seeds`
      epochs: 20                                    # optional (default: the workload's)
      criterion: final_val_error                    # or time_to_target (with target_error)
      target_error: 0.1                             # time_to_target only

Every method configuration of the study's grid (method x beta x staleness) runs every value of
its tuning grid on every tuning seed. Its chosen setting is the one with the lowest mean
criterion over the tuning seeds (a diverged run counts as the worst possible score; ties go to
the value listed first). The choice is fixed once every tuning point has a result, kept on the
Optuna study (`tuning_choice`) and never recomputed, so a resumed sweep times what it chose.

Tuned fields are nuisance hyperparameters: optimisation fields (lr, momentum, weight decay, the
schedule, batch size) and a method's own fields. What the study measures (the method and its
scientific grid, the workload) cannot be tuned.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any

CRITERIA = ("final_val_error", "time_to_target")
TUNING_KEYS = ("grid", "methods", "seeds", "epochs", "criterion", "target_error")
TUNABLE_GROUPS = ("optim", "method")  # RunConfig field groups that hold nuisance settings
WORST_SCORE = math.inf  # a diverged or failed tuning run: never chosen over one with a result


@dataclass(frozen=True)
class TuningSpec:
    grid: dict[str, list[Any]]                       # field -> values, for every method
    per_method: dict[str, dict[str, list[Any]]]      # method -> field -> values (overrides)
    seeds: list[int]
    epochs: int | None = None
    criterion: str = "final_val_error"
    target_error: float | None = None
    fields: tuple[str, ...] = field(default=())      # every tuned field, in a stable order

    def values_for(self, method: str) -> dict[str, list[Any]]:
        """The tuning grid of one method: the shared grid with the method's own values over
        it, restricted to the fields that mean something for the method."""
        from sbbench.method_fields import applies

        merged = {**self.grid, **self.per_method.get(method, {})}
        return {k: v for k, v in merged.items() if applies(k, method)}

    def settings_for(self, method: str) -> list[dict[str, Any]]:
        values = self.values_for(method)
        names = sorted(values)
        return [dict(zip(names, combo)) for combo in itertools.product(*(values[n] for n in
                                                                        names))]

    def objective(self) -> dict[str, Any]:
        """What a tuning trial tells Optuna (one value, minimised)."""
        if self.criterion == "time_to_target":
            return {"kind": "time_to_target", "target_error": self.target_error,
                    "target_factor": None}
        return {"kind": "final_val_error", "target_error": None, "target_factor": None}


def parse_tuning(raw: Any, path: str, methods: list[str], timing_seeds: list[int],
                 swept: set[str], error) -> TuningSpec:
    """Validate a study's `tuning:` section; `error(field, value, allowed)` raises StudyError."""
    from sbbench.config import config_fields

    if not isinstance(raw, dict):
        error("tuning", raw, "a mapping with " + ", ".join(TUNING_KEYS))
    for key in raw:
        if key not in TUNING_KEYS:
            error(f"tuning.{key}", raw[key], "one of " + ", ".join(TUNING_KEYS))
    groups = {f.name: f.metadata.get("group") for f in config_fields()}
    tunable = sorted(n for n, g in groups.items() if g in TUNABLE_GROUPS and n != "method")

    def parse_grid(values: Any, where: str) -> dict[str, list[Any]]:
        if not isinstance(values, dict):
            error(where, values, "a mapping of config field -> list of values")
        for key, options in values.items():
            if key not in tunable:
                error(f"{where}.{key}", options, "a nuisance field to tune: " +
                      ", ".join(tunable) + " (the method, the seed and the workload are what "
                      "the study measures)")
            if key in swept:
                error(f"{where}.{key}", options, "a field the study does not also sweep in "
                      "its grid (it is either measured or tuned)")
            if not isinstance(options, list) or not options:
                error(f"{where}.{key}", options, "a non-empty list of values")
            if len({json.dumps(o, sort_keys=True) for o in options}) != len(options):
                error(f"{where}.{key}", options, "distinct values")
        return dict(values)

    grid = parse_grid(raw.get("grid") or {}, "tuning.grid")
    per_method_raw = raw.get("methods") or {}
    if not isinstance(per_method_raw, dict):
        error("tuning.methods", per_method_raw, "a mapping of method -> {field: [values]}")
    per_method = {}
    for method, values in per_method_raw.items():
        if method not in methods:
            error(f"tuning.methods.{method}", values, "a method of the study's grid: " +
                  ", ".join(methods))
        per_method[method] = parse_grid(values, f"tuning.methods.{method}")
    if not grid and not per_method:
        error("tuning.grid", raw.get("grid"), "at least one field to tune (lr at least)")
    seeds = raw.get("seeds")
    if not isinstance(seeds, list) or not seeds or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds) \
            or len(set(seeds)) != len(seeds):
        error("tuning.seeds", seeds, "a non-empty list of distinct integers >= 0")
    shared = sorted(set(seeds) & set(timing_seeds))
    if shared:
        error("tuning.seeds", seeds, f"seeds disjoint from the timed seeds (both have "
              f"{shared}): a setting tuned on a seed would be timed on it")
    epochs = raw.get("epochs")
    if epochs is not None and (not isinstance(epochs, int) or isinstance(epochs, bool)
                               or epochs < 1):
        error("tuning.epochs", epochs, "an integer >= 1")
    criterion = raw.get("criterion", "final_val_error")
    if criterion not in CRITERIA:
        error("tuning.criterion", criterion, "one of " + ", ".join(CRITERIA))
    target = raw.get("target_error")
    if criterion == "time_to_target":
        if not isinstance(target, (int, float)) or isinstance(target, bool) or \
                not 0 < target < 1:
            error("tuning.target_error", target, "a validation error in (0, 1) with criterion "
                  "time_to_target (the tuning stage runs before any target is known)")
    elif target is not None:
        error("tuning.target_error", target, "no target_error with criterion final_val_error")
    names = sorted(set(grid) | {k for v in per_method.values() for k in v})
    return TuningSpec(grid=grid, per_method=per_method, seeds=list(seeds), epochs=epochs,
                      criterion=criterion, target_error=None if target is None else float(target),
                      fields=tuple(names))


# --- choosing ------------------------------------------------------------------------------------

@dataclass
class Candidate:
    values: dict[str, Any]
    scores: list[float] = field(default_factory=list)
    trial_numbers: list[int] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else WORST_SCORE


def candidates_by_configuration(points: list[dict[str, Any]], tuned: tuple[str, ...]
                                ) -> dict[str, list[Candidate]]:
    """Tuning points grouped by configuration (the point without its tuned values and seed),
    each with one candidate per tuned setting, in the tuning grid's order."""
    out: dict[str, list[Candidate]] = {}
    for point in points:
        config = configuration_key(point, tuned)
        values = {k: point[k] for k in tuned if k in point}
        bucket = out.setdefault(config, [])
        if not any(c.values == values for c in bucket):
            bucket.append(Candidate(values))
    return out


def configuration_key(point: dict[str, Any], tuned: tuple[str, ...]) -> str:
    return json.dumps({k: v for k, v in point.items() if k not in tuned and
                       k not in ("seed", "epochs")}, sort_keys=True)


def choose(candidates: list[Candidate]) -> Candidate:
    """The candidate with the lowest mean score; the first listed among equals."""
    return min(enumerate(candidates), key=lambda ic: (ic[1].mean, ic[0]))[1]
