"""The Alembic migrations build exactly the tables the models describe, and an older
database upgrades in place without losing rows: on SQLite and on PostgreSQL."""

from __future__ import annotations

import time

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from marteau.service.db import Database, alembic_config, current_revision, head_revision, upgrade
from marteau.service.models import Base, Job, Node, User


def test_migrations_match_the_models(db_url: str) -> None:
    db = Database(db_url)
    assert upgrade(db) == (None, head_revision())
    with db.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    assert current_revision(db) == head_revision()
    assert upgrade(db) == (head_revision(), head_revision())  # a second start changes nothing
    with db.read() as session:
        assert [(n.name, n.pool) for n in session.query(Node)] == [("localhost", "marteau")]
    db.dispose()


def _upgraded_from(db: Database, revision: str, insert: str, values: dict) -> None:
    """The database at `revision` with a row (`insert`), then upgraded to the head."""
    with db.engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)
        connection.execute(text(insert), {**values, "now": time.time()})
    assert upgrade(db) == (revision, head_revision())


def test_an_initial_database_upgrades_and_keeps_its_users(db_url: str) -> None:
    db = Database(db_url)
    _upgraded_from(
        db,
        "0001",
        "INSERT INTO users (email, password_hash, is_admin, created) "
        "VALUES ('old@example.org', 'x', :admin, :now)",
        {"admin": False},
    )
    with db.read() as session:
        user = session.query(User).one()
        assert user.email == "old@example.org"
        assert user.quotas == {}
    db.dispose()


def test_jobs_of_0005_keep_their_rows_and_have_no_figures(db_url: str) -> None:
    db = Database(db_url)
    _upgraded_from(
        db,
        "0005",
        "INSERT INTO jobs (source_kind, source_url, overrides, state, prepared, "
        "cancel_requested, created, project_name, report_path) VALUES ('git', "
        "'https://example.org/shop.git', '{}', 'succeeded', :yes, :no, :now, 'shop', "
        "'report/index.html')",
        {"yes": True, "no": False},
    )
    with db.read() as session:
        job = session.query(Job).one()
        assert (job.project_name, job.report_path) == ("shop", "report/index.html")
        assert (job.project_key, job.peak_rps, job.p95, job.comparison) == (None,) * 4
    db.dispose()
