"""A nightly suite: a grid study file (the study loader validates it) plus its digest.

The digest of the file's text is part of the machine fingerprint: an edited suite measures
something else, so it starts a new series.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from sbbench.method_fields import ALL_METHOD_FIELDS
from sbbench.method_fields import applies
from sbbench.sweep.study import BASELINE_METHOD, StudyError, StudySpec, load_study, parse_study

DEFAULT_SUITE = "studies/nightly.yaml"
GPU_SUITE = "studies/nightly_gpu.yaml"


@dataclass(frozen=True)
class Suite:
    spec: StudySpec
    path: str
    digest: str   # sha256 of the file's text, first 16 hex digits

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def expected_runs(self) -> int:
        return len(self.spec.grid_points())


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_suite(path: str | Path) -> Suite:
    """A grid study: fixed points, fixed seeds (a tpe suite would measure different points
    every night)."""
    spec = load_study(path)
    if spec.sampler == "tpe":
        raise StudyError(str(path), "sampler", spec.sampler,
                         "grid or bruteforce in a nightly suite (the same points every night)")
    return Suite(spec=spec, path=str(path), digest=text_digest(spec.text))


def confirmation_spec(suite: Suite, methods: set[str], name: str) -> StudySpec:
    """The suite restricted to `methods` (plus Traditional, the reference of speedups and of
    the efficiency), under another study name: what a confirmation re-runs."""
    raw = yaml.safe_load(suite.spec.text)
    keep = [m for m in suite.spec.methods() if m in methods or m == BASELINE_METHOD]
    raw["name"] = name
    grid = dict(raw.get("grid") or {})
    if "method" in grid:
        grid["method"] = keep
    for key in list(grid):
        if key in ALL_METHOD_FIELDS and not any(applies(key, m) for m in keep):
            del grid[key]
    raw["grid"] = grid
    return parse_study(raw, suite.path, yaml.safe_dump(raw, sort_keys=False))
