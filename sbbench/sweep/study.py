"""Study files: what a sweep asks, validated before anything runs.

A study file (YAML) declares:

    name: smoke                      # Optuna study name and MLflow tag sbbench.study
    description: ...
    sampler: grid                    # grid | bruteforce (ablations) | tpe (tuning)
    workload: {dataset: mnist1d, train_size: 20000, epochs: 4, eval_every_examples: 2000}
    fixed: {lr: 0.05}                # nuisance / fixed hyperparameters (RunConfig fields)
    grid:                            # swept dimensions: lists of values
      method: [traditional, sb, stale_sb]
      beta: [1, 3]
      staleness: [2, 3]
    ranges:                          # tpe only: {low, high, log, step}
      lr: {low: 0.01, high: 0.3, log: true}
    seeds: [0, 1, 2]                 # or `repeats: 3` (seeds 0..2)
    objective: {kind: time_to_target, target_error: 0.05}
                                     # or {kind: time_to_target, target_factor: 1.4}: the
                                     #   target is 1.4 x the median final validation error of
                                     #   the Traditional points of the same setting (grids)
                                     # or {kind: final_error_and_time}
    n_trials: 20                     # tpe; grid studies run every point
    pruning: false                   # tpe only

Method-specific fields apply only where they mean something (`METHOD_FIELDS`): a grid of
method x beta x staleness runs traditional once per seed, sb once per beta, stale_sb once per
(beta, staleness). Every expanded point is validated as a RunConfig up front.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sbbench.config import ConfigError, RunConfig, config_fields
from sbbench.method_fields import ALL_METHOD_FIELDS, METHOD_FIELDS
from sbbench.method_fields import applies as _applies
from sbbench.sweep.tuning import TuningSpec, parse_tuning

SAMPLERS = ("grid", "bruteforce", "tpe")
OBJECTIVES = ("time_to_target", "final_error_and_time")
TOP_LEVEL = ("name", "description", "sampler", "workload", "fixed", "grid", "ranges", "seeds",
             "repeats", "objective", "n_trials", "pruning", "tuning")
RANGE_KEYS = ("low", "high", "log", "step")
CENSORED_PENALTY = 2.0  # a run that never reaches the target scores budget x this
BASELINE_METHOD = "traditional"  # what target_factor multiplies (the paper's rule)


class StudyError(ValueError):
    """A malformed study file: names the file, the field, the value and what is allowed."""

    def __init__(self, path: str, field_name: str, value: Any, allowed: str):
        super().__init__(f"{path}: invalid {field_name}={value!r}; allowed: {allowed}")


@dataclass(frozen=True)
class Objective:
    kind: str = "time_to_target"
    target_error: float | None = None   # absolute validation error, or
    target_factor: float | None = None  # x the Traditional median final validation error

    @property
    def directions(self) -> list[str]:
        return ["minimize"] if self.kind == "time_to_target" else ["minimize", "minimize"]


@dataclass(frozen=True)
class StudySpec:
    path: str
    name: str
    description: str
    sampler: str
    base: dict[str, Any]                 # workload + fixed settings
    grid: dict[str, list[Any]]
    ranges: dict[str, dict[str, Any]]
    seeds: list[int]
    objective: Objective
    n_trials: int | None
    pruning: bool
    text: str = field(repr=False, default="")
    tuning: TuningSpec | None = None     # a two-stage study: tune each method, then time it

    def configurations(self) -> list[dict[str, Any]]:
        """Every configuration of the grid, with method-specific dimensions dropped where they
        mean nothing (and the duplicates that creates removed)."""
        names = [n for n in self.grid if n != "seed"]
        configurations, seen = [], set()
        for values in itertools.product(*(self.grid[n] for n in names)):
            point = dict(zip(names, values))
            method = point.get("method", self.base.get("method", RunConfig.method))
            point = {k: v for k, v in point.items() if _applies(k, method)}
            if point_key(point) not in seen:
                seen.add(point_key(point))
                configurations.append(point)
        return configurations

    def grid_points(self) -> list[dict[str, Any]]:
        """Every configuration x seed (the timed points, without tuned values)."""
        # Seed-major order: every configuration of seed 0, then of seed 1, ... so machine load
        # and clock drift hit all methods alike instead of one method's whole block.
        return [{**point, "seed": seed} for seed in self.seeds for point in self.configurations()]

    # -- two-stage studies ------------------------------------------------------------------------

    @property
    def tuned_fields(self) -> tuple[str, ...]:
        return self.tuning.fields if self.tuning else ()

    def tuning_points(self) -> list[dict[str, Any]]:
        """The tuning stage: every configuration x its tuning setting x tuning seed."""
        if self.tuning is None:
            return []
        epochs = self.tuning.epochs
        override = {} if epochs is None or epochs == self.base.get("epochs") else \
            {"epochs": epochs}
        return [{**point, **setting, **override, "seed": seed}
                for seed in self.tuning.seeds for point in self.configurations()
                for setting in self.tuning.settings_for(self.method_of(point))]

    def timing_points(self, chosen: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """The timed points, each configuration at its chosen setting (configuration key ->
        values, `sweep.tuning.configuration_key`)."""
        from sbbench.sweep.tuning import configuration_key

        return [{**point, **chosen[configuration_key(point, self.tuned_fields)]}
                for point in self.grid_points()]

    def points(self, chosen: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """What the sweep runs, in order: a plain study's grid; a two-stage study's tuning
        points, then (once `chosen` is known) its timed points."""
        if self.tuning is None:
            return self.grid_points()
        return self.tuning_points() + (self.timing_points(chosen) if chosen is not None else [])

    def stage_of(self, point: dict[str, Any]) -> str | None:
        """tuning / timing in a two-stage study (the seeds tell: the two sets are disjoint)."""
        if self.tuning is None:
            return None
        return "tuning" if point.get("seed") in self.tuning.seeds else "timing"

    def choices_for(self, key: str, value: Any) -> list[Any]:
        """Every value a swept key takes in this study (an Optuna categorical distribution)."""
        if key == "seed":
            return list(self.seeds) + (list(self.tuning.seeds) if self.tuning else [])
        choices = list(self.grid.get(key, []))
        if key in self.tuned_fields:
            for values in [self.tuning.grid, *self.tuning.per_method.values()]:
                choices += [v for v in values.get(key, []) if v not in choices]
        return choices or [value]

    def config_for(self, point: dict[str, Any]) -> RunConfig:
        return RunConfig.from_dict({**self.base, **point}, source=self.path)

    def method_of(self, point: dict[str, Any]) -> str:
        return point.get("method", self.base.get("method", RunConfig.method))

    def is_baseline(self, point: dict[str, Any]) -> bool:
        return self.method_of(point) == BASELINE_METHOD

    def setting_key(self, point: dict[str, Any]) -> str:
        """The setting a point's target belongs to: the point without the method, its
        method-specific fields and the seed (Traditional at label_noise 0.1 sets the target of
        every method at label_noise 0.1)."""
        return point_key({k: v for k, v in point.items()
                          if k not in ("method", "seed") and k not in ALL_METHOD_FIELDS
                          and k not in self.tuned_fields})

    def methods(self) -> list[str]:
        return list(self.grid.get("method") or [self.base.get("method", RunConfig.method)])

    @property
    def total_trials(self) -> int:
        if self.sampler == "tpe":
            return self.n_trials or 0
        return len(self.tuning_points()) + len(self.grid_points())




def point_key(point: dict[str, Any]) -> str:
    return json.dumps(point, sort_keys=True)


def load_study(path: str | Path) -> StudySpec:
    path = str(path)
    file = Path(path)
    if not file.is_file():
        raise StudyError(path, "study", path, "an existing YAML study file")
    text = file.read_text()
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise StudyError(path, "yaml", str(err).splitlines()[0], "valid YAML") from None
    if not isinstance(raw, dict):
        raise StudyError(path, "study", type(raw).__name__, "a YAML mapping")
    return parse_study(raw, path, text)


def parse_study(raw: dict[str, Any], path: str = "<study>", text: str = "") -> StudySpec:
    for key in raw:
        if key not in TOP_LEVEL:
            raise StudyError(path, key, raw[key], "a study field: " + ", ".join(TOP_LEVEL))
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or any(c in name for c in "/\\ "):
        raise StudyError(path, "name", name, "a non-empty name without spaces or slashes")
    sampler = raw.get("sampler", "grid")
    if sampler not in SAMPLERS:
        raise StudyError(path, "sampler", sampler, "one of " + ", ".join(SAMPLERS))
    config_names = {f.name for f in config_fields()}
    base: dict[str, Any] = {}
    for section in ("workload", "fixed"):
        values = raw.get(section) or {}
        if not isinstance(values, dict):
            raise StudyError(path, section, values, "a mapping of config fields")
        for key, value in values.items():
            if key not in config_names:
                raise StudyError(path, f"{section}.{key}", value,
                                 "a config field: " + ", ".join(sorted(config_names)))
            if key == "seed":
                raise StudyError(path, f"{section}.seed", value, "seeds under `seeds:`")
        base.update(values)
    grid = _parse_grid(raw.get("grid") or {}, path, config_names)
    ranges = _parse_ranges(raw.get("ranges") or {}, path, config_names, sampler)
    if not grid and not ranges:
        raise StudyError(path, "grid", raw.get("grid"), "at least one swept dimension")
    seeds = _parse_seeds(raw, path)
    objective = _parse_objective(raw.get("objective") or {}, path)
    pruning = raw.get("pruning", False)
    if not isinstance(pruning, bool):
        raise StudyError(path, "pruning", pruning, "true or false")
    if pruning and sampler != "tpe":
        raise StudyError(path, "pruning", pruning, "false in a grid study (pruning is for "
                         "tpe tuning studies only: a pruned run is censored, not a result)")
    n_trials = raw.get("n_trials")
    if n_trials is not None and (not isinstance(n_trials, int) or isinstance(n_trials, bool)
                                 or n_trials < 1):
        raise StudyError(path, "n_trials", n_trials, "an integer >= 1")
    if sampler == "tpe" and n_trials is None:
        raise StudyError(path, "n_trials", None, "an integer >= 1 for a tpe study")
    tuning = None
    if raw.get("tuning") is not None:
        tuning = _parse_tuning_section(raw["tuning"], path, sampler, objective, base, grid,
                                       seeds)
    spec = StudySpec(path=path, name=name, description=str(raw.get("description", "")),
                     sampler=sampler, base=base, grid=grid, ranges=ranges, seeds=seeds,
                     objective=objective, n_trials=n_trials, pruning=pruning, text=text,
                     tuning=tuning)
    _validate_points(spec)
    _validate_dimensions_mean_something(spec)
    _validate_target_rule(spec)
    return spec


def _parse_tuning_section(raw: Any, path: str, sampler: str, objective: Objective,
                          base: dict[str, Any], grid: dict[str, list[Any]],
                          seeds: list[int]) -> TuningSpec:
    def error(field_name: str, value: Any, allowed: str):
        raise StudyError(path, field_name, value, allowed)

    if sampler != "grid":
        error("tuning", "...", f"a tuning stage in a grid study (this one is {sampler})")
    if objective.kind != "time_to_target":
        error("tuning", "...", "a tuning stage in a time_to_target study (the stages share one "
              f"Optuna study and its one objective; this one is {objective.kind})")
    methods = list(grid.get("method") or [base.get("method", RunConfig.method)])
    tuning = parse_tuning(raw, path, methods, seeds, set(grid) | {"method"}, error)
    if objective.target_factor is not None and tuning.epochs not in (None, base.get("epochs")):
        error("tuning.epochs", tuning.epochs, f"the workload's epochs ({base.get('epochs')}) "
              "with a target_factor objective: the targets come from the tuning stage's "
              "Traditional runs at their chosen setting, which must train as long as the "
              "timed runs")
    return tuning


def _validate_dimensions_mean_something(spec: StudySpec) -> None:
    """A swept method-specific field must mean something for at least one swept method:
    `staleness` swept with only `sb` would silently expand to nothing."""
    methods = spec.methods()
    for section, dims in (("grid", spec.grid), ("ranges", spec.ranges)):
        for key, values in dims.items():
            if key in ALL_METHOD_FIELDS and not any(_applies(key, m) for m in methods):
                users = sorted(m for m, used in METHOD_FIELDS.items() if key in used)
                raise StudyError(spec.path, f"{section}.{key}", values,
                                 f"a field of a swept method (it means something only for "
                                 f"{', '.join(users)}; the study runs {', '.join(methods)})")


def _validate_target_rule(spec: StudySpec) -> None:
    factor = spec.objective.target_factor
    if factor is None:
        return
    if spec.sampler == "tpe":
        raise StudyError(spec.path, "objective.target_factor", factor,
                         "target_error in a tpe study (its trials are compared as they "
                         "finish, so the target must be known before the first one)")
    if BASELINE_METHOD not in spec.methods():
        raise StudyError(spec.path, "objective.target_factor", factor,
                         f"a study whose methods include {BASELINE_METHOD} (the target is "
                         f"factor x its median final validation error)")


def _parse_grid(grid: Any, path: str, config_names: set[str]) -> dict[str, list[Any]]:
    if not isinstance(grid, dict):
        raise StudyError(path, "grid", grid, "a mapping of config field -> list of values")
    parsed = {}
    for key, values in grid.items():
        if key not in config_names:
            raise StudyError(path, f"grid.{key}", values,
                             "a config field: " + ", ".join(sorted(config_names)))
        if key == "seed":
            raise StudyError(path, "grid.seed", values, "seeds under `seeds:`")
        if not isinstance(values, list) or not values:
            raise StudyError(path, f"grid.{key}", values, "a non-empty list of values")
        parsed[key] = values
    return parsed


def _parse_ranges(ranges: Any, path: str, config_names: set[str],
                  sampler: str) -> dict[str, dict[str, Any]]:
    if not isinstance(ranges, dict):
        raise StudyError(path, "ranges", ranges, "a mapping of field -> {low, high, log, step}")
    if ranges and sampler != "tpe":
        raise StudyError(path, "ranges", list(ranges), "ranges only with sampler: tpe "
                         "(use grid: lists for grid/bruteforce)")
    parsed = {}
    for key, spec in ranges.items():
        where = f"ranges.{key}"
        if key not in config_names:
            raise StudyError(path, where, spec, "a config field")
        if not isinstance(spec, dict) or set(spec) - set(RANGE_KEYS) or \
                not {"low", "high"} <= set(spec):
            raise StudyError(path, where, spec, "a mapping with low, high (and log, step)")
        low, high = spec["low"], spec["high"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
            raise StudyError(path, where, spec, "numeric low and high")
        if not low < high:
            raise StudyError(path, where, spec, "low < high")
        log, step = spec.get("log", False), spec.get("step")
        if not isinstance(log, bool):
            raise StudyError(path, f"{where}.log", log, "true or false")
        if log and low <= 0:
            raise StudyError(path, where, spec, "low > 0 with log: true")
        if step is not None and (not _is_number(step) or not step > 0):
            raise StudyError(path, f"{where}.step", step, "a number > 0")
        if log and step is not None and not (step == 1 and isinstance(step, int)):
            raise StudyError(path, f"{where}.step", step,
                             "no step with log: true (Optuna samples log ranges continuously)")
        parsed[key] = dict(spec)
    return parsed


def _parse_seeds(raw: dict[str, Any], path: str) -> list[int]:
    if "seeds" in raw and "repeats" in raw:
        raise StudyError(path, "seeds", raw["seeds"], "either seeds or repeats, not both")
    if "repeats" in raw:
        repeats = raw["repeats"]
        if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
            raise StudyError(path, "repeats", repeats, "an integer >= 1")
        return list(range(repeats))
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise StudyError(path, "seeds", seeds, "a non-empty list of integers >= 0")
    if len(set(seeds)) != len(seeds):
        raise StudyError(path, "seeds", seeds, "distinct seeds")
    return seeds


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parse_objective(objective: Any, path: str) -> Objective:
    keys = ("kind", "target_error", "target_factor")
    if not isinstance(objective, dict):
        raise StudyError(path, "objective", objective,
                         "a mapping with kind (and target_error or target_factor)")
    for key in objective:
        if key not in keys:
            raise StudyError(path, f"objective.{key}", objective[key], ", ".join(keys))
    kind = objective.get("kind", "time_to_target")
    if kind not in OBJECTIVES:
        raise StudyError(path, "objective.kind", kind, "one of " + ", ".join(OBJECTIVES))
    target = objective.get("target_error")
    factor = objective.get("target_factor")
    if kind != "time_to_target":
        for key, value in (("target_error", target), ("target_factor", factor)):
            if value is not None:
                raise StudyError(path, f"objective.{key}", value,
                                 "no target with kind final_error_and_time")
    elif target is not None and factor is not None:
        raise StudyError(path, "objective.target_factor", factor,
                         "either target_error or target_factor, not both")
    elif factor is not None:
        if not _is_number(factor) or not factor > 0:
            raise StudyError(path, "objective.target_factor", factor,
                             "a number > 0 (1.4: the paper's rule)")
    elif not _is_number(target) or not 0 < target < 1:
        raise StudyError(path, "objective.target_error", target,
                         "a validation error in (0, 1) for time_to_target (or target_factor)")
    return Objective(kind=kind, target_error=None if target is None else float(target),
                     target_factor=None if factor is None else float(factor))


def _validate_points(spec: StudySpec) -> None:
    """Every configuration the study can produce must be a valid RunConfig."""
    try:
        if spec.sampler == "tpe":
            for key, rng in spec.ranges.items():
                for bound in ("low", "high"):
                    spec.config_for({key: rng[bound]})
            for point in spec.grid_points() or [{}]:
                spec.config_for(point)
        else:
            for point in spec.grid_points() + spec.tuning_points():
                spec.config_for(point)
    except ConfigError as err:
        raise StudyError(spec.path, err.field_name, err.value, err.allowed) from None
