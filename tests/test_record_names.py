"""The names of the MLflow record live in one module every side imports; tracking is a leaf."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import sbbench

PACKAGE = Path(sbbench.__file__).parent


def sbbench_imports(path: Path) -> set[str]:
    """Every sbbench module a file imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sbbench"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("sbbench"))
    return found


def test_tracking_is_a_leaf():
    imports = sbbench_imports(PACKAGE / "tracking.py")
    reaching_up = {m for m in imports
                   if m.startswith(("sbbench.train", "sbbench.sweep", "sbbench.analysis"))}
    assert not reaching_up
    assert sbbench_imports(PACKAGE / "record_names.py") == set()
    assert sbbench_imports(PACKAGE / "run_failures.py") == set()


def test_every_side_takes_its_names_from_the_contract():
    names = importlib.import_module("sbbench.record_names")
    sides = [importlib.import_module(m) for m in
             ("sbbench.tracking", "sbbench.sweep.trial_records", "sbbench.analysis.record")]
    shared = 0
    for side in sides:
        for key, value in vars(side).items():
            if key.startswith(("TAG_", "ATTR_", "M_", "ARTIFACT_", "ENV_", "STUDY_ATTR_")):
                assert getattr(names, key, None) == value, (side.__name__, key)
                shared += 1
    assert shared > 30
    # Tag names are defined once: no other module assigns a string literal to a TAG_ name.
    for path in PACKAGE.rglob("*.py"):
        if path.name == "record_names.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                    and isinstance(node.value.value, str):
                targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
                assert not any(t.startswith("TAG_") for t in targets), (path, targets)


def test_failure_types_are_one_class_wherever_imported():
    from sbbench import run_failures, tracking
    from sbbench.train import errors

    assert errors.RunDiverged is run_failures.RunDiverged is tracking.RunDiverged
    assert errors.RunPruned is run_failures.RunPruned
    status, kind, _ = tracking.classify_failure(errors.RunDiverged("nan"))
    assert (status, kind) == ("FAILED", "diverged")


def test_every_metric_a_run_logs_is_declared_in_the_contract(tiny):
    from sbbench import record_names
    from sbbench.config import RunConfig
    from sbbench.train.run import train_untracked

    declared = {v for k, v in vars(record_names).items() if k.startswith("M_")}
    config = RunConfig.from_dict({**tiny, "method": "kath18", "epochs": 1,
                                  "test_every_evaluation": True})
    outcome = train_untracked(config)
    logged = set().union(*(point.keys() for point in outcome.curve)) | set(outcome.final)
    assert logged - declared == set()
