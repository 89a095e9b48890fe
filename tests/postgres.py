"""A private PostgreSQL server for the service tests (tests/conftest_postgres.py).

The cluster lives in a temporary folder (data, socket, log), listens on 127.0.0.1 on a
free port with trust authentication, and is stopped and removed at the end of the
session: the tests never touch a PostgreSQL the machine may already run. `initdb`
refuses to run as root, so under root the server runs as Debian's `postgres` user.
The postmaster is a child of the test session that gets SIGINT (fast shutdown) when the
session dies, even by SIGKILL, so no server outlives it.
Each test gets its own database (`create_database`), dropped afterwards.
"""

from __future__ import annotations

import functools
import glob
import itertools
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

SERVER_USER = "postgres"  # the system user Debian's postgresql package creates
# A throwaway server: durability traded for speed, room for every worker's connections.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "32MB",
}


def server_bin_dir() -> Path | None:
    """The newest installed server's bin folder (Debian keeps initdb off the PATH)."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if found:
        newest = max(found, key=lambda p: int(re.sub(r"\D", "", p.split("/")[4]) or 0))
        return Path(newest).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def missing() -> str | None:
    """Why a cluster cannot start here, or None."""
    if server_bin_dir() is None:
        return (
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): "
            "install Debian's `postgresql` package (`make system-deps` does it as root)"
        )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "the psycopg driver is not installed: .venv/bin/pip install -e '.[server]'"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return f"running as root and there is no `{SERVER_USER}` user to run initdb as"
    return None


class PostgresCluster:
    """One postmaster on 127.0.0.1:<port>, its files under a temporary folder."""

    def __init__(self) -> None:
        self.bin = server_bin_dir()
        self.base = Path(tempfile.mkdtemp(prefix="marteau-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.port = 0
        self.server: subprocess.Popen | None = None
        self._names = itertools.count(1)
        self._as_user: dict[str, object] = {}
        if os.geteuid() == 0:
            account = pwd.getpwnam(SERVER_USER)
            os.chown(self.base, account.pw_uid, account.pw_gid)
            self._as_user = {
                "user": account.pw_uid,
                "group": account.pw_gid,
                "extra_groups": [],
                "env": {**os.environ, "HOME": str(self.base), "USER": SERVER_USER},
            }

    def _run(self, *command: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.bin / command[0]), *command[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.base,
            **self._as_user,  # type: ignore[arg-type]
        )

    def start(self, attempts: int = 3) -> PostgresCluster:
        """initdb, then the postmaster on a free port (another one if it was taken)."""
        # here, not at the top: the conftest imports this module, even without the service
        from marteau.service.worker import die_with_parent
        from tests.servers import free_port

        made = self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        if made.returncode != 0:
            self.remove()
            raise RuntimeError(f"initdb failed ({made.returncode}): {made.stderr or made.stdout}")
        conf = self.data / "postgresql.conf"
        base_conf = conf.read_text()
        for _ in range(attempts):
            self.port = free_port()
            settings = {**SETTINGS, "port": str(self.port)}
            settings["unix_socket_directories"] = f"'{self.base}'"
            conf.write_text(base_conf + "".join(f"{k} = {v}\n" for k, v in settings.items()))
            with open(self.log, "ab") as log:
                self.server = subprocess.Popen(
                    [str(self.bin / "postgres"), "-D", str(self.data)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.base,
                    preexec_fn=functools.partial(die_with_parent, signal.SIGINT),
                    **self._as_user,  # type: ignore[arg-type]
                )
            if self._ready():
                return self
            self._halt()
        log = self.log.read_text()
        self.stop()
        raise RuntimeError(f"PostgreSQL did not start on 127.0.0.1:\n{log}")

    def _ready(self, timeout: float = 60) -> bool:
        """True once the server takes connections; False if it exited (port taken)."""
        import psycopg

        deadline = time.monotonic() + timeout
        while self.server is not None and self.server.poll() is None:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return True
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.1)
        return False

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(statement)  # type: ignore[arg-type]

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = f"marteau_test_{next(self._names)}"
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def database(self) -> Iterator[str]:
        """A new empty database's URL, dropped when the generator ends."""
        url = self.create_database()
        try:
            yield url
        finally:
            self.drop_database(url)

    def drop_database(self, url: str) -> None:
        """Drop it, closing what is still connected (the workers of a killed service)."""
        name = url.rsplit("/", 1)[1]
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _halt(self) -> None:
        """Stop the server: fast shutdown, then immediate."""
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGINT)
            try:
                self.server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.server.send_signal(signal.SIGQUIT)
                self.server.wait(timeout=60)

    def stop(self) -> None:
        """Stop the server and remove its files."""
        self._halt()
        self.remove()

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


def lock_waits(connection) -> int:  # type: ignore[no-untyped-def]
    """Sessions of the connection's PostgreSQL database waiting for a lock: how a test
    knows a transaction reached the row another one holds."""
    from sqlalchemy import text

    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    count = connection.execute(query).scalar_one()
    connection.rollback()  # a fresh snapshot at the next look
    return count


def wait_until_answered_or_blocked(
    engine: Engine, answered: Callable[[], object], what: str
) -> None:
    """Wait until `answered()` (the other thread finished) or one of the database's
    sessions waits for a lock (it reached the row this test holds)."""
    from tests.service_helpers import wait_for

    with engine.connect() as watcher:
        wait_for(lambda: answered() or lock_waits(watcher), timeout=30, what=what)
