"""Suites (the shipped ones load; confirmation sub-suites) and the fingerprint."""

from __future__ import annotations

import pytest

from sbbench.nightly import fingerprint as FP
from sbbench.nightly.suite import confirmation_spec, load_suite
from sbbench.sweep.study import StudyError
from tests.nightly.conftest import REPO

METHODS = ["traditional", "random", "sb", "stale_sb", "kath18"]


@pytest.mark.parametrize("name", ["nightly.yaml", "nightly_gpu.yaml"])
def test_shipped_suites_are_fixed_grids_of_all_five_methods(name):
    suite = load_suite(REPO / "studies" / name)
    assert suite.spec.sampler == "grid" and suite.spec.methods() == METHODS
    assert len(suite.spec.seeds) >= 2 and suite.expected_runs == 5 * len(suite.spec.seeds)
    assert len(suite.digest) == 16


def test_cpu_suite_is_small_and_gpu_suite_is_cuda():
    cpu = load_suite(REPO / "studies" / "nightly.yaml").spec.base
    gpu = load_suite(REPO / "studies" / "nightly_gpu.yaml").spec.base
    assert cpu["device"] == "cpu" and cpu["dataset"] == "mnist1d"
    assert cpu["train_size"] * cpu["epochs"] <= 100_000   # a few minutes on two cores
    assert cpu["train_size"] % cpu["eval_every_examples"] == 0   # priming ends on an evaluation
    assert gpu["device"] == "cuda"


def test_confirmation_re_runs_the_failing_methods_and_traditional():
    suite = load_suite(REPO / "studies" / "nightly.yaml")
    spec = confirmation_spec(suite, {"stale_sb"}, "x-confirm")
    assert spec.name == "x-confirm" and spec.methods() == ["traditional", "stale_sb"]
    assert len(spec.grid_points()) == 2 * len(suite.spec.seeds)
    spec = confirmation_spec(suite, {"kath18"}, "y-confirm")
    assert spec.methods() == ["traditional", "kath18"] and "staleness" not in spec.grid


def test_a_tuning_study_is_not_a_suite(tmp_path):
    path = tmp_path / "tpe.yaml"
    path.write_text((REPO / "studies" / "tune_lr.yaml").read_text())
    with pytest.raises(StudyError, match="nightly suite"):
        load_suite(path)


def test_the_fingerprint_holds_the_suite_and_machine_not_versions():
    machine = {"device": "cpu", "cpu_model": "X", "physical_cores": 2, "logical_cpus": 4}
    a, detail = FP.fingerprint("digest1", machine)
    assert detail == {"suite_digest": "digest1", **machine}
    assert FP.fingerprint("digest1", dict(machine))[0] == a
    assert FP.fingerprint("digest2", machine)[0] != a
    assert FP.fingerprint("digest1", {**machine, "logical_cpus": 8})[0] != a
    here = FP.machine("cpu")
    assert here["device"] == "cpu" and here["logical_cpus"] >= 1 and here["cpu_model"]
    versions = FP.versions()
    assert {"sbbench.torch_version", "sbbench.mlflow_version", "sbbench.optuna_version",
            "sbbench.driver_version", "sbbench.cuda_version", "sbbench.git_commit"} <= set(versions)
    assert FP.changes({"sbbench.torch_version": "2.4"}, {"sbbench.torch_version": "2.5"}) == \
        ["torch 2.4 -> 2.5"]
