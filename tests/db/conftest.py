"""A real PostgreSQL server for the `db` tests: the one CI started ($SBBENCH_TEST_POSTGRES_DSN),
else a throwaway one started here when PostgreSQL is installed; skipped (with the reason) only
where it is not installed and CI did not ask for it."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile

import pytest

from tests.db import postgres_server


@pytest.fixture(scope="session")
def postgres_dsn(tmp_path_factory):
    if not os.environ.get("CI"):
        pytest.importorskip("psycopg", reason="the db extra is not installed "
                            "(pip install -e '.[test,db]')")
    dsn = os.environ.get(postgres_server.ENV_DSN)
    if dsn:
        yield dsn
        return
    if postgres_server.bin_dir() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the database tests: PostgreSQL is not installed")
        pytest.skip("PostgreSQL is not installed (apt-get install -y postgresql; .ci/run "
                    "installs it)")
    # Under /tmp itself: pytest's own folders are private to root, and the server runs as the
    # postgres user.
    folder = tempfile.mkdtemp(prefix="sbbench-postgres-")
    dsn = postgres_server.start(folder)
    try:
        yield dsn
    finally:
        postgres_server.stop(folder)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def new_database(postgres_dsn):
    """A function that creates a fresh database and returns its postgresql:// URL."""
    import psycopg

    def create(prefix: str = "t") -> str:
        name = f"{prefix}_{secrets.token_hex(4)}"
        with psycopg.connect(postgres_dsn + "/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"{postgres_dsn}/{name}"

    return create


def password_of(dsn: str) -> str:
    return dsn.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
