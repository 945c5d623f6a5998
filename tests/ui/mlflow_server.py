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
STOP_TIMEOUT_S = 10


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
    # No background job runner (MLflow's GenAI scorers): seven processes the UI does not need.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
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
    """SIGTERM to the server's process group, then SIGKILL to whatever of the group is left
    after STOP_TIMEOUT_S (MLflow's job runner and uvicorn workers may outlive the leader)."""
    group = server.process.pid  # start_new_session: the group id is the server's pid
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        server.process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server.process.wait(timeout=STOP_TIMEOUT_S)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:  # SIGKILL is asynchronous: wait for the group to go
        left = live_members(group)
        if not left:
            return
        time.sleep(0.05)
    raise RuntimeError(f"mlflow server processes {left} survived SIGKILL")


def live_members(group: int) -> list[int]:
    """Pids of the process group that are not zombies (a container's init may never reap the
    orphans it inherits, and a zombie still counts as a member for kill(2))."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses
        fields = text[text.rindex(")") + 2:].split()
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members
