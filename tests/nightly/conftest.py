"""Fixture nights written straight into a temporary MLflow store, the way a night records them."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from sbbench.nightly import history as H
from sbbench.nightly import metrics as M
from sbbench.nightly.night import Identity, NightOptions
from sbbench.nightly.suite import Suite, load_suite

REPO = Path(__file__).resolve().parents[2]
DAY_MS = 24 * 3600 * 1000
METHODS = ("traditional", "random", "sb", "stale_sb", "kath18")
# Typical values of the nightly suite on a 2-core machine.
BASE = {"throughput": {"traditional": 22000.0, "random": 40000.0, "sb": 30000.0,
                       "stale_sb": 45000.0, "kath18": 15000.0},
        "time_to_target_s": {"traditional": 3.0, "random": 2.6, "sb": 2.2, "stale_sb": 1.8,
                             "kath18": 4.0},
        "final_test_error": {m: 0.12 for m in METHODS},
        "efficiency": {"random": 0.9, "sb": 0.8, "stale_sb": 0.75}}
MACHINE = {"device": "cpu", "cpu_model": "Test CPU @ 2.0GHz", "physical_cores": 2,
           "logical_cpus": 2}
VERSIONS = {"sbbench.git_commit": "a" * 40, "sbbench.torch_version": "2.5.0",
            "sbbench.cuda_version": "none", "sbbench.driver_version": "none",
            "sbbench.mlflow_version": "3.1.0", "sbbench.optuna_version": "4.2.0",
            "sbbench.numpy_version": "2.1.0", "sbbench.python_version": "3.12.0"}


def night_samples(rng, slow: dict[str, float] | None = None, runs: int = 3) -> dict[str, list]:
    """Per-run values of one night with realistic noise: the machine is a little faster or
    slower for every method (2%), each run adds 2% (timings) or 1% (error)."""
    machine = rng.normal(0, 0.02)
    out = {}
    for kind, per_method in BASE.items():
        for method, base in per_method.items():
            if kind == "final_test_error":
                noise = rng.normal(0, 0.01, runs)
            elif kind == "efficiency":
                noise = rng.normal(0, 0.015, runs)
            else:
                sign = -1 if kind == "throughput" else 1
                noise = sign * machine + rng.normal(0, 0.02, runs)
            out[f"{kind}/{method}"] = list(base * np.exp(noise))
    trad = float(np.median(out["time_to_target_s/traditional"]))
    for method in METHODS[1:]:
        out[f"speedup/{method}"] = [trad / t for t in out[f"time_to_target_s/{method}"]]
    for metric, factor in (slow or {}).items():
        higher = M.direction(metric) == "higher"
        out[metric] = [v / factor if higher else v * factor for v in out[metric]]
    return out


class Store:
    def __init__(self, uri: str, tmp: Path):
        from mlflow import MlflowClient

        self.uri = uri
        self.tmp = tmp
        self.client = MlflowClient(tracking_uri=uri)
        self.experiment_id = self.client.create_experiment(H.DEFAULT_EXPERIMENT)
        self.suite = load_suite(REPO / "studies" / "nightly.yaml")
        self.fingerprint = "fp-test-0001"
        self.nights = 0

    def identity(self, suite: Suite | None = None, fingerprint: str | None = None,
                 versions: dict | None = None) -> Identity:
        suite = suite or self.suite
        return Identity(suite, fingerprint or self.fingerprint,
                        {"suite_digest": suite.digest, **MACHINE}, dict(versions or VERSIONS))

    def new_night(self, identity: Identity | None = None, days_ago: float = 0.0) -> str:
        identity = identity or self.identity()
        start = int(time.time() * 1000 - days_ago * DAY_MS)
        self.nights += 1
        run = self.client.create_run(self.experiment_id, run_name=f"night-{self.nights}",
                                     start_time=start, tags=identity.tags())
        return run.info.run_id

    def write_night(self, samples: dict[str, list], days_ago: float,
                    verdict: str = H.VERDICT_OK, status: str = "FINISHED",
                    identity: Identity | None = None) -> str:
        """A finished earlier night, recorded as `record_night` records one."""
        from mlflow.entities import Metric, RunTag

        run_id = self.new_night(identity, days_ago)
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(np.median(v)), now, 0) for k, v in samples.items()]
        metrics += [Metric(H.SAMPLES_PREFIX + k, float(x), now, i)
                    for k, v in samples.items() for i, x in enumerate(v)]
        self.client.log_batch(run_id, metrics=metrics,
                              tags=[RunTag(H.TAG_VERDICT, verdict)] if verdict else [])
        self.client.set_terminated(run_id, status)
        return run_id

    def history(self, n: int, seed: int = 0, start_days_ago: float = 40.0) -> list[str]:
        rng = np.random.default_rng(seed)
        return [self.write_night(night_samples(rng), start_days_ago - i,
                                 H.VERDICT_BASELINE if i == 0 else H.VERDICT_OK)
                for i in range(n)]

    def options(self, **kw) -> NightOptions:
        return NightOptions(tracking_uri=self.uri, out_dir=str(self.tmp / "out"), **kw)


def measurement_of(samples: dict[str, list]) -> M.Measurement:
    m = M.Measurement(samples={k: list(v) for k, v in samples.items()})
    m.methods = {metric.split("/", 1)[1]: metric.split("/", 1)[1] for metric in samples}
    return m


@pytest.fixture
def store(tracking_uri, tmp_path) -> Store:
    return Store(tracking_uri, tmp_path)
