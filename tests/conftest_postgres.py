"""The service tests' databases: each test that takes `db_url` (or, for a module-wide
service, `module_db_url`) runs twice, on SQLite and on a real PostgreSQL server.

The PostgreSQL server is private to the session (tests/postgres.py). When it cannot
start here the PostgreSQL variants fail with the reason; set MARTEAU_SKIP_POSTGRES=1 to
skip them instead on a machine without PostgreSQL (`.ci/run` never skips them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import postgres

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[postgres.PostgresCluster]:
    """A PostgreSQL server on 127.0.0.1, started once, stopped and removed at the end."""
    reason = postgres.missing()
    if reason:
        if os.environ.get("MARTEAU_SKIP_POSTGRES") == "1":
            pytest.skip(f"MARTEAU_SKIP_POSTGRES=1: {reason}")
        pytest.fail(f"{reason}; MARTEAU_SKIP_POSTGRES=1 skips these tests instead", pytrace=False)
    cluster = postgres.PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    """`sqlite` or `postgresql`; module-wide so that a module's service is started once
    per backend."""
    return request.param


def _database(request: pytest.FixtureRequest, backend: str, folder: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'data' / 'marteau.db'}"
        return
    yield from request.getfixturevalue("postgres_cluster").database()


@pytest.fixture
def db_url(request: pytest.FixtureRequest, db_backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of this test (no schema yet): SQLite in `tmp_path/data`, or a
    fresh PostgreSQL database dropped after the test."""
    yield from _database(request, db_backend, tmp_path)


@pytest.fixture
def postgres_url(postgres_cluster: postgres.PostgresCluster) -> Iterator[str]:
    """A fresh PostgreSQL database only: for what SQLite, one writer at a time, cannot
    show (transactions meeting on a row lock)."""
    yield from postgres_cluster.database()


@pytest.fixture(scope="module")
def module_db_url(
    request: pytest.FixtureRequest, db_backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An empty database shared by a module's tests (for a module-scoped service)."""
    yield from _database(request, db_backend, tmp_path_factory.mktemp("db"))
