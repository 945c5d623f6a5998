"""Thirty workers attached to one study fit PostgreSQL's default connection limit."""

from __future__ import annotations

import os
import time

import pytest

pytestmark = [pytest.mark.db, pytest.mark.timeout(300)]

WORKERS = 30


def _worker(url: str, ready, release) -> None:
    """What a sweep worker holds while it trains: the storage (opened as sbbench opens it), the
    study, its trial, the heartbeat thread, a user attribute written. Then it waits, counted."""
    import optuna

    from sbbench.sweep.heartbeats import start_trial_heartbeat
    from sbbench.sweep.storage import open_storage

    storage = open_storage(url)
    study = optuna.load_study(study_name="budget", storage=storage)
    trial = study.ask()
    start_trial_heartbeat(storage, trial._trial_id)
    storage.set_trial_user_attr(trial._trial_id, "worker_pid", os.getpid())
    study.get_trials(deepcopy=False)
    ready.release()
    release.wait(120)


def test_thirty_workers_fit_the_default_connection_limit(new_database, monkeypatch):
    import multiprocessing

    import optuna
    import psycopg

    from sbbench.sweep import storage as storage_module
    from sbbench.sweep.heartbeats import start_trial_heartbeat  # noqa: F401  (imported once)

    url = new_database("budget")
    optuna.create_study(study_name="budget", storage=storage_module.open_storage(url))
    monkeypatch.setattr(storage_module, "HEARTBEAT_INTERVAL_S", 1)  # beats while counted
    # Forked from this process: thirty workers without thirty interpreters importing on 2 cores.
    context = multiprocessing.get_context("fork")
    ready, release = context.Semaphore(0), context.Event()
    workers = [context.Process(target=_worker, args=(url, ready, release))
               for _ in range(WORKERS)]
    for worker in workers:
        worker.start()
    try:
        for _ in workers:
            assert ready.acquire(timeout=120)
        time.sleep(2.5)  # every heartbeat thread has beaten at least twice
        database = url.rsplit("/", 1)[1]
        with psycopg.connect(url) as conn:
            limit = int(conn.execute("SHOW max_connections").fetchone()[0])
            reserved = int(conn.execute("SHOW superuser_reserved_connections").fetchone()[0])
            used = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                                "AND pid <> pg_backend_pid()", (database,)).fetchone()[0]
        print(f"{WORKERS} workers hold {used} connections (limit {limit}, {reserved} reserved)")
        assert limit == 100  # PostgreSQL's default: what a cluster user gets
        assert used <= 2 * WORKERS + 1 < limit - reserved  # + 1: this test's own study
    finally:
        release.set()
        for worker in workers:
            worker.join(timeout=60)
