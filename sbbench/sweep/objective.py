"""Turn a finished run's curve into the value(s) Optuna optimises."""

from __future__ import annotations

import json

from sbbench.sweep.study import CENSORED_PENALTY, Objective


def time_to_target(curve: list[dict[str, float]], target_error: float) -> tuple[float, bool]:
    """(training-clock seconds of the first evaluation with val_error <= target, censored).

    A run that never reaches the target is censored at its budget; its objective value is the
    budget times a penalty, so a sampler never prefers it over a run that got there.
    """
    for point in curve:
        if point["val_error"] <= target_error:
            return point["train_time_s"], False
    budget_s = curve[-1]["train_time_s"] if curve else 0.0
    return budget_s * CENSORED_PENALTY, True


def objective_values(objective: Objective, curve: list[dict[str, float]],
                     final: dict[str, float]) -> tuple[list[float], dict[str, object]]:
    if objective.kind == "time_to_target":
        if objective.target_error is None:
            raise ValueError("time_to_target needs a resolved target_error")
        value, censored = time_to_target(curve, objective.target_error)
        return [value], {"censored": censored, "target_error": objective.target_error}
    if objective.kind == "final_val_error":  # a two-stage study's tuning trials
        return [final["final_val_error"]], {}
    return [final["final_val_error"], final["total_train_time_s"]], {}


def curve_to_attr(curve: list[dict[str, float]]) -> str:
    """The part of a curve the objective needs, small enough for a trial user attribute: a
    Traditional trial waits in it for the target its own study computes (target_factor)."""
    return json.dumps([[p["train_time_s"], p["val_error"]] for p in curve])


def curve_from_attr(text: str) -> list[dict[str, float]]:
    return [{"train_time_s": t, "val_error": e} for t, e in json.loads(text)]
