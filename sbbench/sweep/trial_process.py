"""Trial processes: every trial in a fresh process, without paying the imports every time.

A trial must run in its own process (its memory, its CUDA context and its threads die with it),
but a fresh `python -m ...` spends 5-8 s on a 2-core machine importing torch, mlflow, optuna and
the training modules before it trains a second. So the coordinator starts one fork server
(`multiprocessing`'s "forkserver" start method) that imports all of that once (`trial_preload`);
each trial is then a child forked from that warm, idle server: isolated like a new process,
started in milliseconds. The server never touches CUDA or runs torch ops (forking a process
with a live CUDA context or OpenMP pool is unsafe); only the children do.

`TrialProcess` offers the few `subprocess.Popen` calls the coordinator uses (poll, wait,
send_signal, kill, pid, returncode), so the pool code does not care how a trial was started.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
from typing import Mapping

# The modules the server imports before its first fork (ImportErrors are skipped by
# multiprocessing: a child then imports what it needs itself, only slower).
PRELOAD_MODULES = ["sbbench.sweep.trial_preload"]

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(PRELOAD_MODULES)


def start_server(tracking_uri: str | None = None) -> None:
    """Start the fork server now (it preloads while the coordinator sets up, not during the
    first trial), with the sweep's tracking store opened once for every trial. Idempotent;
    the server exits when this process does."""
    from multiprocessing import forkserver

    if tracking_uri:
        # The server reads it at its start (its environment is this process's, then).
        os.environ["SBBENCH_FORK_SERVER_TRACKING_URI"] = tracking_uri
    forkserver.ensure_running()


class TrialProcess:
    """One trial: `entry(job_json)` in a child of the fork server, output into `log_path`."""

    def __init__(self, job_json: str, log_path: str, env: Mapping[str, str]):
        # The server's working directory is the one it started in; a trial runs in the
        # launching process's current one (relative data and artifact paths).
        self._process = _CONTEXT.Process(target=_child_main,
                                         args=(job_json, log_path, dict(env), os.getcwd()),
                                         name="sbbench-trial", daemon=False)
        self._process.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    @property
    def sentinel(self) -> int:
        """A handle that becomes ready when the process ends (multiprocessing.connection.wait)."""
        return self._process.sentinel

    def poll(self) -> int | None:
        return self._process.exitcode  # None while it runs (checked without blocking)

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired("sbbench-trial", timeout or 0.0)
        return self._process.exitcode

    def send_signal(self, signum: int) -> None:
        if self._process.exitcode is None:
            try:
                os.kill(self._process.pid, signum)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _child_main(job_json: str, log_path: str, env: dict[str, str], cwd: str) -> None:
    """In the forked child: the worker's signal handling (first: the server ignores SIGTERM),
    the coordinator's environment, output to the trial's log, then the trial. Exits with the
    worker's code."""
    from sbbench.sweep import worker

    worker.install_stop_handlers()
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)  # the server's environment is the coordinator's at its start
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    sys.exit(worker.main_from_json(job_json))
