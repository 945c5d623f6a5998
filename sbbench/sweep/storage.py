"""Optuna storage: a local journal file by default, a database server for several machines.

Which storage when: a journal file (the default) serves the workers of one machine; a
PostgreSQL (or MySQL) database serves workers on several machines, and is the only one with
heartbeats (a dead worker's trial is failed and re-run). SQLite is not for parallel workers
("database is locked"), and neither SQLite nor a journal file may be shared by machines over a
network file system: its file locks are unreliable there.

URLs may carry a password; `mask_url` hides it wherever a URL is printed, logged or recorded.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from sbbench.urls import mask_url  # noqa: F401  (re-exported: sweep code masks with it)

STATE_DIR = Path(".sbbench") / "optuna"  # project-local state folder
ENV_STORAGE = "SBBENCH_STORAGE"  # the storage URL when --storage is not given
# Heartbeats of database storages: a trial whose worker stopped beating for the grace period is
# failed by the next coordinator that looks, and re-run. Integers (Optuna's API); the
# environment overrides them (tests use seconds, not minutes).
HEARTBEAT_INTERVAL_S = int(os.environ.get("SBBENCH_HEARTBEAT_INTERVAL_S", "60"))
HEARTBEAT_GRACE_S = int(os.environ.get("SBBENCH_HEARTBEAT_GRACE_S", "180"))
MAX_RETRIES = 3  # a point whose worker died this often is given up (not re-run forever)
# Each process's SQLAlchemy pool. Its default (5 + 10 overflow) lets 30 workers open up to 450
# connections; PostgreSQL allows 100. A sweep process uses at most two at once (its main thread
# and the heartbeat thread: sessions are per thread).
ENGINE_KWARGS = {"pool_size": 1, "max_overflow": 2, "pool_pre_ping": True,
                 "pool_recycle": 1800}

# Which package each database URL needs (SQLAlchemy 2.1 maps postgresql:// to psycopg 3).
DRIVERS = {
    "postgresql": "psycopg[binary] (pip install 'sbbench[db]')",
    "postgresql+psycopg": "psycopg[binary] (pip install 'sbbench[db]')",
    "postgresql+psycopg2": "psycopg2-binary (pip install 'sbbench[db]')",
    "mysql": "mysqlclient (pip install mysqlclient), or use mysql+pymysql:// with PyMySQL",
    "mysql+pymysql": "PyMySQL (pip install PyMySQL)",
}

class StorageUnavailableError(RuntimeError):
    """The Optuna storage cannot be opened; raised before any compute."""


def is_database(url: str) -> bool:
    """A database server (several machines can share it), not a file."""
    return url.split("://", 1)[0].split("+", 1)[0].lower() in ("postgresql", "mysql",
                                                                 "mariadb", "mssql", "oracle")


def default_storage_path(study_name: str) -> Path:
    return (STATE_DIR / f"{study_name}.journal").resolve()


def storage_url_for(storage: str | None, study_name: str) -> str:
    """What workers receive: an absolute journal path (journal:PATH) or the storage URL.
    Empty: $SBBENCH_STORAGE, else a local journal file."""
    storage = (storage or "").strip().strip("'\"")
    if not storage:
        storage = os.environ.get(ENV_STORAGE, "").strip()
    if not storage or storage == "local":  # "local": the MLproject default
        return "journal:" + str(default_storage_path(study_name))
    if storage.startswith("journal:"):
        return "journal:" + str(Path(storage[len("journal:"):]).resolve())
    if storage.startswith("sqlite:///") and not storage.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(storage[len("sqlite:///"):]).resolve())
    if "://" not in storage:  # a bare path means a journal file
        return "journal:" + str(Path(storage).resolve())
    return storage


def check_shareable(url: str) -> None:
    """Workers on several machines (`--join`) need a database server."""
    if not is_database(url):
        raise StorageUnavailableError(
            f"storage={mask_url(url)!r}: cannot be shared by machines (a journal or SQLite file "
            "on a network file system locks unreliably and corrupts the study); allowed with "
            "--join: postgresql://USER@HOST/DB (or mysql://...)")


def quiet_optuna_warnings() -> None:
    """sbbench knowingly asks and tells with heartbeats (its workers record them) and uses the
    experimental heartbeat API: Optuna's warnings about that are noise a user cannot act on."""
    from optuna.exceptions import ExperimentalWarning

    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    for feature in ("heartbeat_interval", "fail_stale_trials", "RetryHeartbeatStaleTrialCallback",
                    "retried_trial_number", "retry_history"):
        warnings.filterwarnings("ignore", category=ExperimentalWarning,
                                message=f".*{feature}.*")


def _driver_hint(url: str) -> str:
    scheme = url.split("://", 1)[0].lower()
    return DRIVERS.get(scheme, f"the SQLAlchemy driver for {scheme}://")


def open_storage(url: str):
    """Open (and so check) the storage. One-line StorageUnavailableError when it cannot."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    quiet_optuna_warnings()
    try:
        if url.startswith("journal:"):
            path = Path(url[len("journal:"):])
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        storage = optuna.storages.RDBStorage(
            url, engine_kwargs=dict(ENGINE_KWARGS) if is_database(url) else None,
            heartbeat_interval=HEARTBEAT_INTERVAL_S,
            grace_period=HEARTBEAT_GRACE_S,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=MAX_RETRIES))
        storage.get_all_studies()  # forces a connection now, not mid-sweep
        return storage
    except ImportError:
        raise StorageUnavailableError(
            f"storage={mask_url(url)!r}: the database driver is not installed; install "
            f"{_driver_hint(url)}") from None
    except Exception as err:  # drivers raise many types; all mean "cannot use it"
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise StorageUnavailableError(
            f"storage={mask_url(url)!r}: cannot open ({mask_url(first_line)}); allowed: empty "
            "(a local journal file), journal:PATH, postgresql://USER@HOST/DB, mysql://..."
        ) from None
