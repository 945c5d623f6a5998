"""Grouping: loaded runs -> workloads -> configurations, with readable labels, and the choice of
the baseline configuration each configuration is compared with."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from sbbench.analysis import record as R
from sbbench.analysis.loading import RunRecord, canonical_key, parse_value
from sbbench.analysis.time_to_target import Target


@dataclass
class ConfigGroup:
    workload_key: str
    method: str
    config: dict[str, str]
    runs: list[RunRecord]
    label: str = ""

    @property
    def key(self) -> str:
        return canonical_key({"method": self.method, **self.config})

    @property
    def kept_ok(self) -> list[RunRecord]:
        return [r for r in self.runs if r.outcome == R.OUTCOME_OK]

    def count(self, outcome: str) -> int:
        return sum(r.outcome == outcome for r in self.runs)

    def config_values(self) -> dict:
        return {k: parse_value(v) for k, v in self.config.items()}


@dataclass
class WorkloadGroup:
    key: str
    workload: dict[str, str]
    configs: list[ConfigGroup]
    label: str = ""
    slug: str = ""
    targets: list[Target] = field(default_factory=list)
    target_note: str = ""
    target_source: str = ""    # which runs set the factor targets, in words

    @property
    def runs(self) -> list[RunRecord]:
        return [r for c in self.configs for r in c.runs]

    def by_method(self, method: str) -> list[ConfigGroup]:
        return [c for c in self.configs if c.method == method]


def method_name(method: str) -> str:
    return R.METHOD_NAMES.get(method, method)


def group_runs(runs: list[RunRecord]) -> list[WorkloadGroup]:
    workloads: dict[str, WorkloadGroup] = {}
    for run in runs:
        wl = workloads.setdefault(run.workload_key,
                                  WorkloadGroup(run.workload_key, dict(run.workload), []))
        for cg in wl.configs:
            if cg.method == run.method and cg.config == run.config:
                cg.runs.append(run)
                break
        else:
            wl.configs.append(ConfigGroup(run.workload_key, run.method, dict(run.config), [run]))
    groups = sorted(workloads.values(), key=lambda w: w.key)
    _label_workloads(groups)
    _label_configs(groups)
    for wl in groups:
        wl.configs.sort(key=_config_order)
    return groups


def _config_order(cg: ConfigGroup) -> tuple:
    order = list(R.METHOD_NAMES)
    rank = order.index(cg.method) if cg.method in order else len(order)
    return (rank, cg.label)


def _varying(dicts: list[dict[str, str]], exclude: tuple[str, ...] = ()) -> list[str]:
    keys = sorted(set().union(*dicts)) if dicts else []
    return [k for k in keys if k not in exclude and len({d.get(k) for d in dicts}) > 1]


def _label_workloads(groups: list[WorkloadGroup]) -> None:
    varying = _varying([w.workload for w in groups], exclude=("dataset", "model"))
    for wl in groups:
        base = f"{wl.workload.get('dataset', '?')}/{wl.workload.get('model', '?')}"
        extra = [f"{k}={wl.workload.get(k)}" for k in varying]
        noise = wl.workload.get("label_noise")
        if "label_noise" not in varying and noise not in (None, "0", "0.0", "None"):
            extra.append(f"label_noise={noise}")
        wl.label = " ".join([base, *extra])
        digest = hashlib.sha1(wl.key.encode()).hexdigest()[:6]
        wl.slug = re.sub(r"[^A-Za-z0-9_.=-]+", "_", wl.label)[:60] + "-" + digest


def _label_configs(groups: list[WorkloadGroup]) -> None:
    """Method name plus the params that tell configurations apart: shared params (batch size,
    lr, ...) that vary anywhere in the report, and method params that vary within the method."""
    per_method: dict[str, list[dict[str, str]]] = {}
    for wl in groups:
        for cg in wl.configs:
            per_method.setdefault(cg.method, []).append(cg.config)
    shared = _varying([shared_config(c) for cs in per_method.values() for c in cs])
    own = {m: [k for k in _varying(configs) if k in R.METHOD_SPECIFIC_FIELDS]
           for m, configs in per_method.items()}
    for wl in groups:
        for cg in wl.configs:
            keys = sorted(set(shared) | set(own[cg.method]))
            parts = [method_name(cg.method)]
            parts += [f"{k}={cg.config.get(k, '-')}" for k in keys if k in cg.config]
            cg.label = " ".join(parts)


def shared_config(config: dict[str, str]) -> dict[str, str]:
    """The part of a configuration every method has (optimisation and execution settings)."""
    return {k: v for k, v in config.items() if k not in R.METHOD_SPECIFIC_FIELDS}


def match_baseline(cg: ConfigGroup, candidates: list[ConfigGroup]) -> tuple[ConfigGroup | None,
                                                                              list[str]]:
    """The baseline configuration closest to `cg`: the fewest differing shared params (batch
    size, lr, ...), then the most runs. Returns it and the names of the params that differ."""
    if not candidates:
        return None, []
    mine = shared_config(cg.config)

    def mismatch(other: ConfigGroup) -> list[str]:
        theirs = shared_config(other.config)
        return sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))

    best = min(candidates, key=lambda c: (len(mismatch(c)), -len(c.runs), c.label))
    return best, mismatch(best)


def signature(cg: ConfigGroup) -> str:
    """The configuration without its workload: the same signature in two workloads is 'the same
    method setting' for geometric means and performance profiles."""
    return canonical_key({"method": cg.method, **cg.config})
