"""Engine, sessions and schema migrations.

SQLite (the embedded default) runs in WAL mode, so readers never wait for the writer.
Every *write* transaction starts with ``BEGIN IMMEDIATE``: it takes SQLite's write lock
up front, so a transaction that read the queue cannot be overtaken by another writer
before it writes (no lost claim, no "database is locked" on a lock upgrade); other
writers wait up to the busy timeout. Read-only sessions use a plain deferred ``BEGIN``,
but for the hot pages' reads (`Database.read(snapshot=False)`), which send no ``BEGIN``
at all: each statement then reads a consistent state of its own (autocommit).
On PostgreSQL the scheduler serializes its run claims with an advisory lock (see
scheduler.py). Both backends refuse a text longer than its column (`check_lengths`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, make_url, select
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from marteau.errors import MarteauError
from marteau.service.models import Node

IMMEDIATE = "marteau_immediate"
NO_BEGIN = "marteau_no_begin"
AUTH_TABLES = frozenset({"users", "login_sessions", "api_tokens"})
SQLITE_POOL = 40  # kept SQLite connections per process (one per web thread, by default)


def engine_url(url: str) -> str:
    """The SQLAlchemy URL to connect with: `postgresql://` (and `postgres://`) mean the
    psycopg 3 driver the `server` extra installs, not SQLAlchemy's default psycopg2."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def make_engine(url: str) -> Engine:
    url = engine_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Keep as many connections as the web threads use at once: a connection made for
        # the overflow and closed after each request (PRAGMAs, WAL files) cost a third
        # of a page's CPU under 20 clients.
        engine = create_engine(
            url,
            connect_args={"timeout": 60, "check_same_thread": False},
            pool_size=SQLITE_POOL,
            max_overflow=SQLITE_POOL,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, record):
            dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            options = conn.get_execution_options()
            if options.get(NO_BEGIN):
                return  # statements in autocommit: the BEGIN/ROLLBACK pair costs a read
            immediate = options.get(IMMEDIATE)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True)


def check_lengths(session: Session, flush_context: object, instances: object) -> None:
    """Refuse a text longer than its column before it is written, with the column's
    name: PostgreSQL would fail the statement (an internal error), SQLite would store it."""
    for obj in (*session.new, *session.dirty):
        state = inspect(obj)
        for attribute in state.mapper.column_attrs:
            limit = getattr(attribute.columns[0].type, "length", None)
            value = state.dict.get(attribute.key)
            if limit and isinstance(value, str) and len(value) > limit:
                raise MarteauError(
                    f"{attribute.key} is too long: {len(value)} characters (at most {limit})"
                )


def _note_auth_objects(session: Session, flush_context: object, instances: object) -> None:
    """Mark a write session that changes a user, login session or API token."""
    for obj in (*session.dirty, *session.deleted):
        if getattr(obj, "__tablename__", None) in AUTH_TABLES:
            session.info["auth_changed"] = True


def _note_auth_statement(state: ORMExecuteState) -> None:
    """The same for a bulk UPDATE or DELETE (a logout, a user's deletion)."""
    table = getattr(state.statement, "table", None)
    if (state.is_update or state.is_delete) and getattr(table, "name", None) in AUTH_TABLES:
        state.session.info["auth_changed"] = True


class Database:
    """One engine and its kinds of sessions. `auth_generation` grows after each commit
    of this process that changed users, login sessions or API tokens, and its
    `on_auth_change` listeners are called: the web's cache of who is logged in
    (auth_cache) drops what it read before and tells the other web processes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._read_each = (
            sessionmaker(self.engine.execution_options(**{NO_BEGIN: True}), expire_on_commit=False)
            if self.is_sqlite
            else self._read
        )
        self._write = sessionmaker(
            self.engine.execution_options(**{IMMEDIATE: True}), expire_on_commit=False
        )
        for factory in {self._read, self._read_each, self._write}:
            event.listen(factory, "before_flush", check_lengths)
        self.auth_generation = 0
        self._generation_lock = threading.Lock()
        event.listen(self._write, "before_flush", _note_auth_objects)
        event.listen(self._write, "do_orm_execute", _note_auth_statement)
        event.listen(self._write, "after_commit", self._after_commit)
        self._auth_listeners: list[Callable[[], None]] = []
        # the web's hot reads on a networked database; connects at first use, in the
        # event loop that uses it
        self.async_engine: AsyncEngine | None = None
        self._async: async_sessionmaker[AsyncSession] | None = None
        if not self.is_sqlite:
            self.async_engine = create_async_engine(engine_url(url), pool_pre_ping=True)
            self._async = async_sessionmaker(self.async_engine, expire_on_commit=False)

    def on_auth_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` after each commit that changed users, sessions or tokens."""
        self._auth_listeners.append(listener)

    def _after_commit(self, session: Session) -> None:
        if session.info.pop("auth_changed", False):
            with self._generation_lock:
                self.auth_generation += 1
            for listener in self._auth_listeners:
                listener()

    @contextmanager
    def read(self, snapshot: bool = True) -> Iterator[Session]:
        """A read-only session. `snapshot=False` (SQLite): no transaction, each statement
        sees the latest commit, for reads that need not agree with each other."""
        with self._read() if snapshot else self._read_each() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction, committed at the end of the block (rolled back on error)."""
        with self._write() as session, session.begin():
            # BEGIN (IMMEDIATE) now: on SQLite, times read after this are ordered
            # (on PostgreSQL only row by row, see scheduler.Scheduler._take)
            session.connection()
            yield session

    @asynccontextmanager
    async def async_read(self) -> AsyncIterator[AsyncSession]:
        """A read-only asyncio session, on a networked database (`routes.deps.run_read`)."""
        if self._async is None:
            raise RuntimeError("SQLite reads need no asyncio session: use read()")
        async with self._async() as session:
            yield session

    async def dispose_async(self) -> None:
        """Close the asyncio engine's connections, in the event loop that opened them
        (the engine stays usable: another loop opens its own)."""
        if self.async_engine is not None:
            await self.async_engine.dispose()

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(connection=None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "marteau.service:migrations")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def current_revision(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def default_node_vars() -> dict[str, str]:
    """The host variables of `marteau run`'s embedded default inventory (this machine)."""
    variables = {"ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3"}
    try:
        from marteau.orchestration import content_dir

        text = (content_dir() / "inventory" / "localhost.ini").read_text()
    except (ImportError, OSError):
        return variables
    for line in text.splitlines():
        words = line.split()
        if words and words[0] == "localhost":
            return dict(w.split("=", 1) for w in words[1:] if "=" in w) or variables
    return variables


def upgrade(db: Database, default_node: bool = True) -> tuple[str | None, str | None]:
    """Bring the schema to the newest revision; return (before, after).

    A brand-new database also gets node `localhost` (this machine, pool `marteau`),
    the embedded default of `marteau run`.
    """
    from alembic import command

    before = current_revision(db)
    fresh = before is None and not inspect(db.engine).has_table("jobs")
    if before != head_revision():
        with db.engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")
    if fresh and default_node:
        with db.write() as session:
            if session.scalar(select(Node.id).limit(1)) is None:
                session.add(
                    Node(
                        name="localhost",
                        pool="marteau",
                        vars=default_node_vars(),
                        created=time.time(),
                    )
                )
    return before, current_revision(db)
