"""The nightly lock (overlap refused, stale lock recovered) and the command line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from sbbench.cli import main
from sbbench.nightly import history as H
from sbbench.nightly.lock import LockHeld, NightlyLock, lock_path
from tests.nightly.conftest import REPO, night_samples

SUITE = str(REPO / "studies" / "nightly.yaml")


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def write_lock(path, pid, host=None, process_start=None, since_epoch=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    now = since_epoch or time.time()
    path.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(),
                                "process_start": process_start, "since": "2026-01-01T00:00:00",
                                "since_epoch": now, "run_id": "r123"}))


def test_a_held_lock_refuses_a_second_holder_naming_the_first(tmp_path):
    path = tmp_path / "x.lock"
    with NightlyLock(path) as first:
        first.set_run_id("night-1")
        with pytest.raises(LockHeld, match=f"pid {os.getpid()} on .*night run night-1"):
            NightlyLock(path).acquire()
    assert not path.exists()
    with NightlyLock(path):   # released: free again
        pass


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    path = tmp_path / "x.lock"
    pid = dead_pid()
    write_lock(path, pid)
    lock = NightlyLock(path).acquire()
    assert lock.took_over is not None and lock.took_over.pid == pid
    assert json.loads(path.read_text())["pid"] == os.getpid()
    lock.release()


def test_a_reused_pid_or_an_old_foreign_lock_is_stale(tmp_path):
    path = tmp_path / "x.lock"
    write_lock(path, os.getpid(), process_start=1.0)   # our pid, but a process of 1970
    lock = NightlyLock(path).acquire()
    assert lock.took_over is not None
    lock.release()
    write_lock(path, 12345, host="elsewhere")           # another host: honoured ...
    with pytest.raises(LockHeld, match="elsewhere"):
        NightlyLock(path).acquire()
    write_lock(path, 12345, host="elsewhere", since_epoch=time.time() - 2 * 86400)
    lock = NightlyLock(path).acquire()                   # ... until it is a day old
    assert lock.took_over.host == "elsewhere"
    lock.release()


def test_a_second_nightly_while_one_runs_exits_2_naming_the_holder(tracking_uri, capsys):
    path = lock_path(tracking_uri, "nightly")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_lock(path, holder.pid)
        code = main(["nightly", "--suite", SUITE, "--tracking-uri", tracking_uri])
        err = capsys.readouterr().err
        assert code == 2
        assert f"pid {holder.pid}" in err and "another nightly" in err
    finally:
        holder.kill()
        holder.wait()
    assert path.exists()   # never removed a live holder's lock


def test_bad_inputs_exit_2_with_one_line(tracking_uri, capsys):
    assert main(["nightly", "--level", "2", "--suite", SUITE]) == 2
    assert "level" in capsys.readouterr().err
    assert main(["nightly", "--suite", "nope.yaml"]) == 2
    assert "nope.yaml" in capsys.readouterr().err
    assert main(["nightly", "history", "abc"]) == 2
    assert main(["nightly", "accept", "--tracking-uri", tracking_uri]) == 2
    assert "RUN_ID" in capsys.readouterr().err


def test_accept_and_history_on_the_command_line(store, capsys, monkeypatch):
    import sbbench.nightly.night as night_module

    monkeypatch.setattr(night_module, "identity_for", lambda suite: store.identity(suite))
    ids = store.history(6)
    regressed = store.write_night(night_samples(np.random.default_rng(1), {
        "throughput/sb": 1.4}), 1, H.VERDICT_REGRESSION)
    assert main(["nightly", "accept", regressed, "--tracking-uri", store.uri]) == 0
    assert "new normal" in capsys.readouterr().out
    assert main(["nightly", "history", "--suite", SUITE, "--tracking-uri", store.uri,
                 "--out", str(store.tmp / "out")]) == 0
    out = capsys.readouterr().out
    assert ids[0][:12] in out and "accepted" in out and "regression" in out
    assert (store.tmp / "out" / "history-nightly" / "history.png").is_file()
    # a watchdog: the latest measured night is a day old
    args = ["nightly", "history", "--suite", SUITE, "--tracking-uri", store.uri, "--out",
            str(store.tmp / "out")]
    assert main(args + ["--max-age-hours", "48"]) == 0
    assert main(args + ["--max-age-hours", "12"]) == 2
    assert "schedule stopped" in capsys.readouterr().err


def test_a_night_whose_process_died_is_ended_killed_by_the_next(store):
    from sbbench.nightly.night import end_dead_night

    night = store.new_night()
    child = store.client.create_run(store.experiment_id,
                                    tags={"mlflow.parentRunId": night}).info.run_id
    assert end_dead_night(store.client, night) == 2
    for run_id in (night, child):
        run = store.client.get_run(run_id)
        assert run.info.status == "KILLED"
        assert "died" in run.data.tags["sbbench.failure_reason"]
    assert store.client.get_run(night).data.tags[H.TAG_VERDICT] == H.VERDICT_ERROR


def test_a_night_that_cannot_even_start_exits_2(tracking_uri, monkeypatch, capsys):
    import sbbench.nightly.night as night_module

    def broken(suite):
        raise ImportError("No module named 'torch'")

    monkeypatch.setattr(night_module, "identity_for", broken)
    assert main(["nightly", "--suite", SUITE, "--tracking-uri", tracking_uri]) == 2
    assert "could not measure" in capsys.readouterr().err
    assert not lock_path(tracking_uri, "nightly").exists()   # the lock is released
