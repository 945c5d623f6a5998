"""One nightly of a suite at a time on a store: a lock file beside the store.

For a sqlite store the lock lives beside the database file; for a server store under
`.sbbench/locks/` (one machine; a scheduler's own overlap protection covers the rest). The file
names its holder (pid, host, process start time, since, night run id). A lock whose holder is
dead (same host, the pid gone or reused by a process started later) is stale: the next nightly
takes it over and says so. A lock held by another host is honoured until `max_age_s`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_AGE_S = 24 * 3600.0


class LockHeld(RuntimeError):
    """Another nightly of this suite is running on this store."""


@dataclass
class Holder:
    pid: int
    host: str
    process_start: float | None
    since: str
    since_epoch: float
    run_id: str | None = None

    def describe(self) -> str:
        run = f", night run {self.run_id}" if self.run_id else ""
        return f"pid {self.pid} on {self.host} since {self.since}{run}"


def lock_path(tracking_uri: str, suite_name: str) -> Path:
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///"):])
        return db.parent / f".{db.name}.nightly-{suite_name}.lock"
    digest = hashlib.sha256(tracking_uri.encode()).hexdigest()[:10]
    return Path(".sbbench/locks") / f"nightly-{suite_name}-{digest}.lock"


def _process_start(pid: int) -> float | None:
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:
        return None


def holder_alive(holder: Holder) -> bool:
    if holder.host != socket.gethostname():
        return True   # cannot look; honoured until max age
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    started = _process_start(holder.pid)
    if holder.process_start is not None and started is not None and \
            abs(started - holder.process_start) > 1.0:
        return False  # the pid was reused by another process
    return True


class NightlyLock:
    def __init__(self, path: Path, max_age_s: float = DEFAULT_MAX_AGE_S):
        self.path = Path(path)
        self.max_age_s = max_age_s
        self.held = False
        self.took_over: Holder | None = None

    def read(self) -> Holder | None:
        try:
            data = json.loads(self.path.read_text())
            return Holder(**data)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            # unreadable (a writer died mid-write): treat as a dead holder of unknown age
            return Holder(pid=-1, host=socket.gethostname(), process_start=None, since="?",
                          since_epoch=0.0)

    def _write_new(self) -> bool:
        now = time.time()
        me = Holder(pid=os.getpid(), host=socket.gethostname(),
                    process_start=_process_start(os.getpid()),
                    since=_dt.datetime.fromtimestamp(now, _dt.timezone.utc).isoformat(
                        timespec="seconds"), since_epoch=now)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as handle:
            json.dump(me.__dict__, handle)
        return True

    def acquire(self) -> "NightlyLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            if self._write_new():
                self.held = True
                return self
            holder = self.read()
            if holder is None:
                continue  # released between our two looks
            stale = (holder.pid == -1 or not holder_alive(holder)
                     or time.time() - holder.since_epoch > self.max_age_s)
            if not stale:
                raise LockHeld(f"another nightly of this suite is running on this store "
                               f"({holder.describe()}; lock {self.path})")
            # Take over: move the stale file aside, check it is the one we judged, retry.
            aside = self.path.with_name(f"{self.path.name}.stale-{os.getpid()}")
            try:
                os.replace(self.path, aside)
            except FileNotFoundError:
                continue
            moved = Holder(**json.loads(aside.read_text())) if holder.pid != -1 else holder
            if holder.pid != -1 and (moved.pid, moved.since_epoch) != (holder.pid,
                                                                       holder.since_epoch):
                os.replace(aside, self.path)   # someone else's fresh lock: put it back
                continue
            aside.unlink(missing_ok=True)
            self.took_over = holder
        raise LockHeld(f"could not take the nightly lock {self.path} (contended)")

    def set_run_id(self, run_id: str) -> None:
        if not self.held:
            return
        data = json.loads(self.path.read_text())
        data["run_id"] = run_id
        tmp = self.path.with_name(self.path.name + f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.path)

    def release(self) -> None:
        if self.held:
            holder = self.read()
            if holder is not None and holder.pid == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> "NightlyLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
