"""The Alembic migrations build exactly the tables the models describe, and an older
database upgrades in place without losing rows."""

from __future__ import annotations

import time
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from marteau.service.db import Database, alembic_config, current_revision, head_revision, upgrade
from marteau.service.models import Base, User


def test_migrations_match_the_models(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(db)
    with db.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    assert current_revision(db) == head_revision()


def test_an_initial_database_upgrades_and_keeps_its_users(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    with db.engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0001")
        connection.execute(
            text(
                "INSERT INTO users (email, password_hash, is_admin, created) "
                "VALUES ('old@example.org', 'x', 0, :now)"
            ),
            {"now": time.time()},
        )
    before, after = upgrade(db)
    assert (before, after) == ("0001", head_revision())
    with db.read() as session:
        user = session.query(User).one()
        assert user.email == "old@example.org"
        assert user.quotas == {}
