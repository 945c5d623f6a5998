"""A throwaway PostgreSQL server on 127.0.0.1 for the database tests (Debian's packages).

    python -m tests.db.postgres_server start DIR   # prints `export SBBENCH_TEST_POSTGRES_DSN=...`
    python -m tests.db.postgres_server stop DIR

The server runs as the `postgres` user when started by root (initdb refuses root), accepts only
127.0.0.1 and its own socket in DIR, and has one login role `sbbench` (password auth, CREATEDB)
with a random password: the tests check that this password leaks nowhere.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

ENV_DSN = "SBBENCH_TEST_POSTGRES_DSN"  # postgresql://sbbench:PASSWORD@127.0.0.1:PORT


def bin_dir() -> str | None:
    """Where initdb and pg_ctl are (None: PostgreSQL is not installed)."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "initdb")):
            return candidate
    found = shutil.which("initdb")
    return os.path.dirname(found) if found else None


def _as_owner(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")
    return done


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(directory: str | Path) -> str:
    """Start a cluster under `directory`; the DSN of its `sbbench` role (no database part)."""
    directory = Path(directory).resolve()
    binaries = bin_dir()
    if binaries is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install -y postgresql)")
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    data, port = directory / "data", _free_port()
    _as_owner([f"{binaries}/initdb", "-D", str(data), "-U", "postgres", "--auth-local=trust",
               "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"])
    _as_owner([f"{binaries}/pg_ctl", "-D", str(data), "-l", str(directory / "server.log"), "-w",
               "-o", f"-h 127.0.0.1 -p {port} -k {directory} -c fsync=off", "start"])
    password = secrets.token_hex(12)
    _as_owner([f"{binaries}/psql", "-h", str(directory), "-p", str(port), "-U", "postgres",
               "-v", "ON_ERROR_STOP=1", "-c",
               f"CREATE ROLE sbbench LOGIN CREATEDB PASSWORD '{password}'"])
    (directory / "port").write_text(str(port))
    return f"postgresql://sbbench:{password}@127.0.0.1:{port}"


def stop(directory: str | Path) -> None:
    binaries = bin_dir()
    data = Path(directory).resolve() / "data"
    if binaries and data.is_dir():
        _as_owner([f"{binaries}/pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop"])


if __name__ == "__main__":
    command, folder = sys.argv[1], sys.argv[2]
    if command == "start":
        print(f"export {ENV_DSN}={start(folder)}")
    else:
        stop(folder)
