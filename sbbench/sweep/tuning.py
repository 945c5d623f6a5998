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

A study that cannot afford its own tuning stage (an ablation over many configurations) may adopt
what another study's tuning stage chose, method by method, read from that study's timed runs in
the tracking store before anything runs:

    tuning: {from_study: mnist1d, adopt: [lr]}

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
ADOPTING_KEYS = ("from_study", "adopt")
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
    from_study: str | None = None                    # adopt that study's choice instead

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
    if "from_study" in raw:
        return _parse_adopting(raw, swept, error)
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


def _tunable_fields() -> list[str]:
    from sbbench.config import config_fields

    return sorted(f.name for f in config_fields()
                  if f.metadata.get("group") in TUNABLE_GROUPS and f.name != "method")


def _parse_adopting(raw: dict, swept: set[str], error) -> TuningSpec:
    for key in raw:
        if key not in ADOPTING_KEYS:
            error(f"tuning.{key}", raw[key], "with from_study only " + ", ".join(ADOPTING_KEYS)
                  + " (the other study's tuning stage already chose)")
    name = raw["from_study"]
    if not isinstance(name, str) or not name.strip():
        error("tuning.from_study", name, "the name of a two-stage study whose timing stage ran")
    adopt = raw.get("adopt")
    tunable = _tunable_fields()
    if not isinstance(adopt, list) or not adopt or not all(f in tunable for f in adopt):
        error("tuning.adopt", adopt, "a non-empty list of tuned fields: " + ", ".join(tunable))
    for name_ in adopt:
        if name_ in swept:
            error("tuning.adopt", adopt, f"fields the study does not sweep ({name_} is in its "
                  "grid)")
    return TuningSpec(grid={}, per_method={}, seeds=[], fields=tuple(sorted(set(adopt))),
                      from_study=name)


def adopted_choice(client, study: str, fields: tuple[str, ...], configurations: list[dict],
                   error) -> tuple[dict[str, dict[str, Any]], str]:
    """(configuration key -> adopted values, where they came from) for `tuning.from_study`:
    each method takes the values its timed runs in `study` carry (`sbbench.tuned_values`)."""
    from sbbench.record_names import (STAGE_TIMING, TAG_METHOD, TAG_STAGE, TAG_STUDY,
                                      TAG_TUNED_VALUES)

    by_method: dict[str, set[str]] = {}
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id],
                                      filter_string=f"tags.`{TAG_STUDY}` = '{study}' and "
                                      f"tags.`{TAG_STAGE}` = '{STAGE_TIMING}'"):
            values = json.loads(run.data.tags.get(TAG_TUNED_VALUES, "{}"))
            method = run.data.tags.get(TAG_METHOD) or run.data.params.get("method")
            picked = {k: values[k] for k in fields if k in values}
            by_method.setdefault(method, set()).add(json.dumps(picked, sort_keys=True))
    if not by_method:
        error("tuning.from_study", study, "a study whose timing stage has runs in this "
              "tracking store (run it first)")
    chosen = {}
    for point in configurations:
        method = point.get("method")
        found = by_method.get(method, set())
        if len(found) != 1:
            error("tuning.from_study", study, f"a study with one tuned setting of "
                  f"{', '.join(fields)} for {method} (it has {len(found)})")
        values = json.loads(next(iter(found)))
        missing = [k for k in fields if k not in values]
        if missing:
            error("tuning.adopt", list(fields), f"fields {study} tuned for {method} "
                  f"(not {', '.join(missing)})")
        chosen[configuration_key(point, fields)] = values
    return chosen, f"adopted from the tuning stage of study {study}"


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
