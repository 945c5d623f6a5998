"""Scaling out without a database server: one worker per device, masked URLs, the checks that
fail at start (exit 2, one line) before any training."""

from __future__ import annotations

import pytest

from sbbench.cli import main
from sbbench.commands.sweep import parse_devices
from sbbench.sweep import worker_pool
from sbbench.sweep.storage import mask_url, storage_url_for
from sbbench.sweep.study import StudyError
from tests.conftest import all_runs
from tests.sweep.tiny_study import sweep_args, write_study


def test_mask_url_hides_passwords_only():
    assert mask_url("postgresql://bob:s3cr@t@db:5432/x") == "postgresql://bob:***@db:5432/x"
    assert mask_url("postgresql://bob@db/x") == "postgresql://bob@db/x"
    assert mask_url("failed: http://u:p@h:5000 and mysql+pymysql://a:b@c/d?password=e") == \
        "failed: http://u:***@h:5000 and mysql+pymysql://a:***@c/d?password=***"
    assert mask_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def test_storage_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SBBENCH_STORAGE", "postgresql://u@db/sbbench")
    assert storage_url_for(None, "s") == "postgresql://u@db/sbbench"
    assert storage_url_for("journal:x.journal", "s").startswith("journal:")
    monkeypatch.delenv("SBBENCH_STORAGE")
    assert storage_url_for(None, "s").endswith("s.journal")


def test_devices_are_parsed_and_checked(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert parse_devices("cuda:0, cuda:1") == ["cuda:0", "cuda:1"]
    assert parse_devices("cpu,cpu") == ["cpu", "cpu"]
    for bad in ("gpu0", "cuda:0,cuda:0", "cuda"):
        with pytest.raises(StudyError):
            parse_devices(bad)


def test_each_trial_gets_one_free_device(monkeypatch, tmp_path):
    class FakeProcess:
        def __init__(self, job_json, log_path, env):
            self.env, self.exitcode = dict(env), None

        def poll(self):
            return self.exitcode

        returncode = property(lambda self: self.exitcode)

    monkeypatch.setattr(worker_pool, "TrialProcess", FakeProcess)
    pool = worker_pool.WorkerPool(1, tmp_path, devices=["cuda:0", "cuda:1", "cuda:2"])
    assert pool.size == 3
    given = {}
    for number in range(3):
        device = pool.next_device()
        env, config_device = worker_pool.device_settings(device)
        pool.launch(number, "{}", env)
        given[number] = (device, env["CUDA_VISIBLE_DEVICES"], config_device)
    assert given == {0: ("cuda:0", "0", "cuda:0"), 1: ("cuda:1", "1", "cuda:0"),
                     2: ("cuda:2", "2", "cuda:0")}
    assert not pool.has_room
    pool._running[1][0].exitcode = 0  # the trial on cuda:1 ends: its device is free again
    assert [w.trial_number for w in pool.collect_ended()] == [1]
    assert pool.next_device() == "cuda:1"
    # Under a scheduler that already narrowed the GPUs (Slurm: CUDA_VISIBLE_DEVICES=3,5).
    assert worker_pool.device_settings("cuda:1", "3,5")[0]["CUDA_VISIBLE_DEVICES"] == "5"
    with pytest.raises(StudyError):
        worker_pool.device_settings("cuda:2", "3,5")
    assert worker_pool.device_settings("cpu") == ({"CUDA_VISIBLE_DEVICES": "",
                                                   "SBBENCH_DEVICE": "cpu"}, "cpu")


def test_devices_sweep_one_worker_per_device(tmp_path, data_dir, tracking_uri):
    study_file = write_study(tmp_path, data_dir)
    storage = tmp_path / "tiny.journal"
    assert main(sweep_args(study_file, tracking_uri, storage, "--devices", "cpu,cpu")) == 0
    children = [r for r in all_runs(tracking_uri) if "sbbench.trial" in r.data.tags]
    assert len(children) == 4
    assert {r.data.tags["sbbench.device"] for r in children} == {"cpu"}
    assert all(r.data.tags["sbbench.device_name"].startswith("cpu") for r in children)
    logs = list((tmp_path / ".sbbench" / "logs" / "tiny").glob("trial-*.log"))
    assert len(logs) == 4
    assert all("device cpu (CUDA_VISIBLE_DEVICES='', config device cpu)" in log.read_text()
               for log in logs)


def test_join_refuses_a_file_storage(tmp_path, data_dir, tracking_uri, capsys):
    study_file = write_study(tmp_path, data_dir)
    code = main(sweep_args(study_file, tracking_uri, tmp_path / "tiny.journal", "--join"))
    assert code == 2
    error = capsys.readouterr().err
    assert "cannot be shared by machines" in error and len(error.strip().splitlines()) == 1
    assert not all_runs(tracking_uri)


def test_unreachable_database_fails_at_start_masked(tmp_path, data_dir, tracking_uri, capsys):
    study_file = write_study(tmp_path, data_dir)
    args = sweep_args(study_file, tracking_uri, tmp_path / "unused")
    args[args.index("--storage") + 1] = "postgresql://bob:hunter2@127.0.0.1:1/sbbench"
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "hunter2" not in error and "bob:***@127.0.0.1:1" in error
    assert len(error.strip().splitlines()) == 1
    assert not all_runs(tracking_uri)
    args[args.index("--storage") + 1] = "mysql://bob:hunter2@127.0.0.1:1/sbbench"
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "hunter2" not in error and "not installed; install mysqlclient" in error
