"""Study validation: shipped studies are valid; malformed ones fail before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from sbbench.cli import main
from sbbench.sweep.study import load_study
from tests.conftest import all_runs
from tests.sweep.tiny_study import sweep_args, write_study

STUDIES = sorted((Path(__file__).resolve().parents[2] / "studies").glob("*.yaml"))


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.name)
def test_shipped_studies_are_valid(path):
    spec = load_study(path)
    assert spec.total_trials >= 1
    if spec.sampler != "tpe":
        points = spec.grid_points() + spec.tuning_points()
        assert len({str(p) for p in points}) == spec.total_trials


def test_required_studies_exist():
    names = {p.stem for p in STUDIES}
    assert {"smoke", "mnist1d", "beta", "staleness", "batch_size", "label_noise",
            "paper_cifar10", "paper_cifar100", "paper_svhn"} <= names


def test_method_specific_fields_only_where_they_mean_something(tmp_path, data_dir):
    spec = load_study(write_study(tmp_path, data_dir, grid={
        "method": ["traditional", "sb", "stale_sb", "kath18"], "beta": [1, 3],
        "staleness": [2, 3]}, seeds=[0]))
    points = spec.grid_points()
    methods = [p["method"] for p in points]
    assert methods.count("traditional") == 1 and methods.count("kath18") == 1
    assert methods.count("sb") == 2 and methods.count("stale_sb") == 4
    assert all("staleness" not in p for p in points if p["method"] != "stale_sb")


@pytest.mark.parametrize("change, field", [
    ({"colour": "blue"}, "colour"),
    ({"grid": {"method": ["sb"], "betta": [1]}}, "grid.betta"),
    ({"grid": {"method": ["magic"]}}, "method"),
    ({"grid": {"method": []}}, "grid.method"),
    ({"grid": {"beta": [-1]}}, "beta"),
    ({"grid": {"batch_size": ["big"]}}, "batch_size"),
    ({"seeds": "zero"}, "seeds"),
    ({"sampler": "tpe", "n_trials": 2, "grid": {}, "ranges": {"lr": {"low": 1, "high": 0.1}}},
     "ranges.lr"),
    ({"pruning": True}, "pruning"),
    ({"objective": {"kind": "time_to_target", "target_error": 2}}, "objective.target_error"),
    ({"workload": {"label_noise": 1.5}}, "label_noise"),
    ({"grid": {"method": ["sb"], "staleness": [2, 3]}}, "grid.staleness"),
    ({"objective": {"kind": "time_to_target", "target_error": 0.1, "target_factor": 1.4}},
     "objective.target_factor"),
    ({"grid": {"method": ["sb"]}, "objective": {"kind": "time_to_target",
                                                "target_factor": 1.4}},
     "objective.target_factor"),
    ({"sampler": "tpe", "n_trials": 2, "grid": {}, "ranges": {"lr": {"low": 0.01, "high": 0.1}},
      "objective": {"kind": "time_to_target", "target_factor": 1.4}}, "objective.target_factor"),
    ({"sampler": "tpe", "n_trials": 2, "grid": {},
      "ranges": {"lr": {"low": 0.01, "high": 0.1, "log": True, "step": 0.01}}},
     "ranges.lr.step"),
    ({"objective": {"kind": "final_error_and_time", "target_error": 0.1}},
     "objective.target_error"),
])
def test_malformed_study_exit_2_names_field(change, field, tmp_path, data_dir, tracking_uri,
                                            capsys):
    study = write_study(tmp_path, data_dir, **change)
    storage = tmp_path / "tiny.journal"
    assert main(sweep_args(study, tracking_uri, storage)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"invalid {field}=" in err and str(study) in err
    assert not storage.exists()
    assert all_runs(tracking_uri) == []


def test_bad_yaml_and_missing_file(tmp_path, tracking_uri, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    assert main(sweep_args(bad, tracking_uri, tmp_path / "j")) == 2
    assert main(sweep_args(tmp_path / "missing.yaml", tracking_uri, tmp_path / "j")) == 2


def test_unreachable_storage_fails_before_compute(tmp_path, data_dir, tracking_uri, capsys):
    study = write_study(tmp_path, data_dir)
    code = main(["sweep", "--study", str(study), "--tracking-uri", tracking_uri, "--storage",
                 "postgresql://nobody@127.0.0.1:9/none", "--no-analyze", "--no-progress"])
    assert code == 2
    assert "storage=" in capsys.readouterr().err
    assert all_runs(tracking_uri) == []
