"""Ctrl-C (SIGINT) or SIGTERM at any moment of a sweep exits 130 / 143 with nothing RUNNING,
and the same command then resumes to a complete study."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import optuna
import pytest

from sbbench import cli, stop_signals
from sbbench.sweep.storage import open_storage
from tests.conftest import all_runs
from tests.sweep.tiny_study import longer_workload, sweep_args, write_study

SWEEP_TIMEOUT_S = 180


# -- the mechanism: a stop that a library swallowed still decides the exit code -------------------

def _main_with_handler(monkeypatch, handler) -> int:
    """`sbbench analyze` with its handler replaced; the process's signal handlers restored."""
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["analyze"].set_defaults(handler=handler)
    try:
        return cli.main(["analyze"])
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_a_swallowed_ctrl_c_still_exits_130(monkeypatch, capsys):
    def swallowing_command(args) -> int:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)  # the handler raises here
        except KeyboardInterrupt:
            pass  # what a finalizer or a library's cleanup can do to it
        return 0

    assert _main_with_handler(monkeypatch, swallowing_command) == 130
    assert "interrupted" in capsys.readouterr().err


def test_an_interrupt_turned_into_another_error_exits_with_the_signal_code(monkeypatch):
    def converting_command(args) -> int:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1.0)
        except SystemExit:
            raise RuntimeError("Error: did not possess lock")  # Optuna's journal lock does this
        return 0

    assert _main_with_handler(monkeypatch, converting_command) == 143
    assert stop_signals.requested() == signal.SIGTERM


# -- a real sweep, stopped at several moments ---------------------------------------------------

class SweepProcess:
    """`sbbench sweep` in its own process group (a terminal's foreground job: Ctrl-C reaches the
    coordinator, its fork server and every trial), its stderr read line by line."""

    def __init__(self, args: list[str], tracking_uri: str):
        env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
        self.process = subprocess.Popen([sys.executable, "-m", "sbbench.cli", *args], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        text=True, start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def signal_group(self, signum: int) -> None:
        os.killpg(self.process.pid, signum)

    def wait(self) -> int:
        code = self.process.wait(timeout=SWEEP_TIMEOUT_S)
        self._reader.join(timeout=10)
        return code


def _trials(storage_path):
    try:
        return optuna.load_study(study_name="tiny",
                                 storage=open_storage(f"journal:{storage_path}")).get_trials()
    except (KeyError, FileNotFoundError):
        return []


def _wait_until(condition, what: str, sweep: SweepProcess) -> None:
    deadline = time.monotonic() + SWEEP_TIMEOUT_S
    while not condition():
        assert sweep.process.poll() is None, f"sweep ended before {what}: {''.join(sweep.lines)}"
        assert time.monotonic() < deadline, f"never reached: {what}"
        time.sleep(0.1)


MOMENTS = ["starting", "inside_a_trial", "after_a_trial", "closing_analysis"]


@pytest.mark.slow
@pytest.mark.parametrize("signum,moment", [
    *[(signal.SIGINT, moment) for moment in MOMENTS],
    (signal.SIGTERM, "inside_a_trial"),
])
def test_stop_at_any_moment_exits_with_the_signal_code_and_leaves_nothing_running(
        tmp_path, data_dir, tracking_uri, signum, moment):
    # Trials long enough to be caught running only where the moment needs one running.
    long_trials = moment in ("inside_a_trial", "after_a_trial")
    study_file = write_study(tmp_path, data_dir, seeds=[0], **(
        {"workload": longer_workload(data_dir)} if long_trials else {}))
    storage = tmp_path / "tiny.journal"
    analyse = moment == "closing_analysis"
    args = sweep_args(study_file, tracking_uri, storage)
    if analyse:
        args.remove("--no-analyze")
    sweep = SweepProcess(args, tracking_uri)
    if moment == "starting":
        time.sleep(1.0)  # interpreter up, imports and store checks under way
    elif moment == "inside_a_trial":
        _wait_until(lambda: any(t.state.name == "RUNNING" and "mlflow_run_id" in t.user_attrs
                                for t in _trials(storage)), "a running trial", sweep)
        time.sleep(0.5)
    elif moment == "after_a_trial":
        _wait_until(lambda: any(t.state.name == "COMPLETE" for t in _trials(storage)),
                    "a finished trial", sweep)
    else:
        _wait_until(lambda: sweep.saw("analysing the runs"), "the closing analysis", sweep)
        time.sleep(0.5)
    sweep.signal_group(signum)
    code = sweep.wait()
    assert code == 128 + signum, "".join(sweep.lines)[-3000:]

    runs = all_runs(tracking_uri)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert not [t for t in _trials(storage) if t.state.name in ("RUNNING", "WAITING")]
    if moment != "starting":
        parent = next(r for r in runs if r.data.tags.get("sbbench.kind") == "sweep")
        assert parent.info.status in ("KILLED", "FINISHED" if analyse else "KILLED")

    # The same command again resumes and completes the study.
    assert cli.main(sweep_args(study_file, tracking_uri, storage)) == 0
    complete = [t for t in _trials(storage) if t.state.name == "COMPLETE"]
    points = [t.user_attrs["sbbench_point"] for t in complete]
    assert len(points) == len(set(points)) == 2


STARTUP_DELAYS_S = (0.3, 0.6, 0.9, 1.2, 1.5, 1.8, 2.4, 3.0)


@pytest.mark.slow
def test_ctrl_c_while_the_sweep_starts_exits_130_at_every_moment(tmp_path, data_dir,
                                                                 tracking_uri):
    """The first seconds: interpreter, imports (torch's extension modules), store checks, the
    fork server. An interrupt inside an extension's import once left CPython exiting by SIGINT
    (-2) after sbbench had handled it; a half-imported module once turned it into exit 1."""
    study_file = write_study(tmp_path, data_dir, seeds=[0])
    codes, stores = {}, []
    for attempt, delay_s in enumerate(STARTUP_DELAYS_S):
        # A store and a journal each: an interrupt may land in a fresh store's schema setup.
        store = f"sqlite:///{tmp_path / f'start-{attempt}.db'}"
        args = sweep_args(study_file, store, tmp_path / f"start-{attempt}.journal")
        sweep = SweepProcess(args, store)
        time.sleep(delay_s)
        sweep.signal_group(signal.SIGINT)
        codes[delay_s] = (sweep.wait(), "".join(sweep.lines)[-500:])
        stores.append(store)
    assert {delay: code for delay, (code, _) in codes.items() if code != 130} == {}, codes
    for store in stores[-3:]:  # late enough for the store to exist: nothing left RUNNING
        assert not [r for r in all_runs(store) if r.info.status == "RUNNING"]


def test_ctrl_c_between_asking_a_trial_and_launching_it_leaves_nothing_running(
        tmp_path, data_dir, tracking_uri, monkeypatch):
    """The narrow window that repeated interrupt runs found: Optuna has the trial RUNNING, no
    worker has it yet. A Ctrl-C there must still end with the trial failed as interrupted (the
    coordinator finishes the launch, then stops the worker), exit 130, and a clean resume."""
    from sbbench.sweep.worker_pool import WorkerPool

    launch = WorkerPool.launch

    def interrupted_launch(pool, trial_number, job_json, env):
        os.kill(os.getpid(), signal.SIGINT)   # Ctrl-C lands after ask(), before the worker
        for _ in range(1000):                  # give the handler its bytecode boundaries
            pass
        launch(pool, trial_number, job_json, env)

    monkeypatch.setattr(WorkerPool, "launch", interrupted_launch)
    study_file = write_study(tmp_path, data_dir, seeds=[0])
    storage = tmp_path / "tiny.journal"
    try:
        assert cli.main(sweep_args(study_file, tracking_uri, storage)) == 130
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    assert not [t for t in _trials(storage) if t.state.name in ("RUNNING", "WAITING")]
    assert not [r for r in all_runs(tracking_uri) if r.info.status == "RUNNING"]
    monkeypatch.setattr(WorkerPool, "launch", launch)
    assert cli.main(sweep_args(study_file, tracking_uri, storage)) == 0
    complete = [t for t in _trials(storage) if t.state.name == "COMPLETE"]
    assert len({t.user_attrs["sbbench_point"] for t in complete}) == 2
