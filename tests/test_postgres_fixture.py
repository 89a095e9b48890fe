"""The service tests' private PostgreSQL server (tests/postgres.py) and the rule that its
variants fail, never skip silently, where PostgreSQL is missing."""

from __future__ import annotations

import pytest

from tests import postgres

pytest_plugins = ["pytester"]
psycopg = pytest.importorskip("psycopg")


def test_the_server_is_private_to_the_session(postgres_cluster: postgres.PostgresCluster) -> None:
    with psycopg.connect(postgres_cluster.url()) as connection:
        show = {
            name: connection.execute(f"SHOW {name}").fetchone()[0]
            for name in ("listen_addresses", "data_directory", "unix_socket_directories")
        }
    assert show == {
        "listen_addresses": "127.0.0.1",
        "data_directory": str(postgres_cluster.data),
        "unix_socket_directories": str(postgres_cluster.base),
    }


def test_a_database_is_dropped_with_its_connections(
    postgres_cluster: postgres.PostgresCluster,
) -> None:
    url = postgres_cluster.create_database()
    left_open = psycopg.connect(url)  # as a killed worker's connection would stay
    postgres_cluster.drop_database(url)
    with pytest.raises(psycopg.OperationalError):
        left_open.execute("SELECT 1")
    left_open.close()
    with psycopg.connect(postgres_cluster.url()) as admin:
        names = [row[0] for row in admin.execute("SELECT datname FROM pg_database")]
    assert url.rsplit("/", 1)[1] not in names


VARIANTS = """
def test_both(db_url):
    assert db_url.split(":")[0] in ("sqlite", "postgresql")
"""


def test_without_postgresql_its_variants_fail_naming_the_package(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "server_bin_dir", lambda: None)
    monkeypatch.delenv("MARTEAU_SKIP_POSTGRES", raising=False)
    pytester.makepyfile(VARIANTS)
    result = pytester.runpytest_inprocess("-p", "tests.conftest_postgres")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*ERROR at setup of test_both?postgresql?*", "*install Debian's `postgresql` package*"]
    )


def test_marteau_skip_postgres_skips_them_instead(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "server_bin_dir", lambda: None)
    monkeypatch.setenv("MARTEAU_SKIP_POSTGRES", "1")
    pytester.makepyfile(VARIANTS)
    result = pytester.runpytest_inprocess("-p", "tests.conftest_postgres", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*MARTEAU_SKIP_POSTGRES=1: PostgreSQL server binaries not found*"])
