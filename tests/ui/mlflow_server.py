"""A real `mlflow server` on 127.0.0.1 for the UI tests: its own SQLite store and artifact folder,
started in its own process group (the server forks workers) and stopped with the whole group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

STARTUP_TIMEOUT_S = 120  # one busy core: the first start imports all of MLflow
STOP_TIMEOUT_S = 20


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class MlflowServer:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def start(folder: Path) -> MlflowServer:
    """Start a server on a free port with `folder/mlflow.db` and `folder/artifacts`; return once
    /health answers (or raise with the server's log)."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = folder / "server.log"
    mlflow = Path(sys.executable).parent / "mlflow"
    command = [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1",
               "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
               "--artifacts-destination", str(folder / "artifacts")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    server = MlflowServer(url, process, log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not _healthy(url):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(server)
            raise RuntimeError(f"mlflow server did not become healthy at {url} "
                               f"(exit code {process.returncode}):\n{server.log_tail()}")
        time.sleep(0.2)
    return server


def stop(server: MlflowServer) -> None:
    """SIGTERM to the server's process group, SIGKILL to what is left after STOP_TIMEOUT_S."""
    group = server.process.pid  # start_new_session: the group id is the server's pid
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        server.process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass
    # Workers may outlive their parent: the group goes, whatever its leader did.
    if not _group_gone(server.process, STOP_TIMEOUT_S):
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _group_gone(server.process, STOP_TIMEOUT_S)


def _group_gone(leader: subprocess.Popen, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        leader.poll()  # reap the leader: a zombie still counts as a member of its group
        try:
            os.killpg(leader.pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False
