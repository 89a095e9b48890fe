"""The `marteau serve` and `marteau worker` commands."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from marteau.errors import MarteauError
from marteau.service.settings import MARTEAU, Settings, env_name, setting_help
from marteau.service.worker import die_with_parent

F = TypeVar("F", bound=Callable[..., Any])


def setting_option(name: str, **kwargs: Any) -> Callable[[F], F]:
    """`--NAME` for setting `name`; its help (what, default, variable) from `Settings`."""
    return click.option(f"--{name.replace('_', '-')}", help=setting_help(name), **kwargs)


def _settings_options(function: F) -> F:
    options = [
        click.option(
            "--config", type=click.Path(path_type=Path, exists=True), help="TOML settings file."
        ),
        setting_option("data_dir", type=click.Path(path_type=Path)),
        setting_option("database_url"),
        setting_option("run_command"),
        setting_option("poll_interval", type=float),
        setting_option("lease_ttl", type=float),
        setting_option("kill_grace", type=float),
        setting_option("lock_timeout", type=float),
        setting_option("public", is_flag=True, default=None),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _load(**options: object):
    from marteau.service.settings import load_settings

    try:
        return load_settings(**options)  # type: ignore[arg-type]
    except MarteauError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)


def bootstrap_admin(db, settings) -> str | None:
    """A database without users gets an admin (MARTEAU_ADMIN_EMAIL / MARTEAU_ADMIN_PASSWORD,
    else admin@localhost with a generated password written to <data>/admin-password)."""
    from sqlalchemy import select

    from marteau.service.accounts import create_user
    from marteau.service.models import User

    with db.write() as session:
        if session.scalar(select(User.id).limit(1)) is not None:
            return None
        email = os.environ.get("MARTEAU_ADMIN_EMAIL", "admin@localhost")
        password = os.environ.get("MARTEAU_ADMIN_PASSWORD")
        message = f"created admin user {email}"
        if not password:
            password = secrets.token_urlsafe(12)
            path = settings.data_dir / "admin-password"
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(password + "\n")
            message += f", password in {path}"
        create_user(session, email, password, admin=True)
    return message


def refuse_local_nodes(db, settings: Settings) -> None:
    """`--public` with an enabled node of local connection would run other people's
    tests on this machine, next to the service's secrets: exit 2, saying what to change."""
    from marteau.service.node_pool import local_nodes

    names = local_nodes(db) if settings.public else []
    if names:
        db.dispose()
        click.echo(
            f"Error: marteau serve --public: node(s) {', '.join(names)} have a local "
            "connection (ansible_connection=local): their jobs' test code would run on this "
            "machine. Disable or remove them on the Nodes page (start without --public to "
            "reach it), or give them an SSH connection, then start --public again.",
            err=True,
        )
        sys.exit(2)


def private_data_dir(settings: Settings) -> None:
    """The data folder 0700 (consoles, reports and uploads are the users' business), and
    an SQLite database in it 0600 from its creation (SQLite gives its -wal and -shm
    files the database's mode): it holds password and token hashes."""
    from sqlalchemy.engine import make_url

    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(settings.data_dir, 0o700)
    url = make_url(settings.db_url)
    if not url.drivername.startswith("sqlite") or not url.database or url.database == ":memory:":
        return
    database = Path(url.database)
    database.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(database, os.O_WRONLY | os.O_CREAT, 0o600))
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        if path.exists():
            os.chmod(path, 0o600)


WEB_PROCESS_APP = "marteau.service.serve:web_process_app"


def settings_environment(settings: Settings, environ: dict[str, str]) -> dict[str, str]:
    """`environ` with `settings` as its MARTEAU_<NAME> variables and no others: a
    variable that an option set back to the default must not reach a web process."""
    names = {env_name(name) for name in Settings.model_fields}
    kept = {name: value for name, value in environ.items() if name not in names}
    return {**kept, **settings.worker_env()}


def web_process_app():
    """The app of one of `serve --web-processes N`'s processes (uvicorn starts them and
    calls this): settings from the MARTEAU_* variables serve set; it ends with serve."""
    from marteau.service.app import create_app
    from marteau.service.settings import load_settings

    die_with_parent()
    return create_app(load_settings())


class WorkerPool:
    """`--workers N` worker processes, restarted when one dies."""

    def __init__(self, settings, count: int) -> None:
        self.settings = settings
        self.count = count
        self.procs: list[subprocess.Popen] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="marteau-workers", daemon=True)

    def _spawn(self) -> subprocess.Popen:
        command = [*MARTEAU, "worker", *self.settings.worker_args()]
        # A worker whose `marteau serve` was killed must not keep claiming jobs.
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.settings.worker_env()},
            preexec_fn=die_with_parent,
        )

    def start(self) -> None:
        self.procs = [self._spawn() for _ in range(self.count)]
        self.thread.start()

    def _watch(self) -> None:
        while not self.stopping.wait(0.5):
            for i, proc in enumerate(self.procs):
                if proc.poll() is not None and not self.stopping.is_set():
                    click.echo(
                        f"marteau serve: worker {proc.pid} ended ({proc.returncode}), restarting",
                        err=True,
                    )
                    self.procs[i] = self._spawn()

    def stop(self) -> None:
        self.stopping.set()
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.kill_grace + 5
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@click.command("serve", context_settings={"help_option_names": ["-h", "--help"]})
@_settings_options
@setting_option("host")
@setting_option("port", type=int)
@setting_option("workers", type=click.IntRange(min=0))
@setting_option("web_processes", type=click.IntRange(min=1))
@setting_option("web_threads", type=click.IntRange(min=1))
@setting_option("nodes_command")
@setting_option("base_url")
def serve_command(**options: object) -> None:
    """The web app, its JSON API and its workers: a queue of load tests run with
    `marteau run` on disjoint nodes. Upgrades the database schema first."""
    import uvicorn

    from marteau.service.app import create_app
    from marteau.service.db import Database, upgrade
    from marteau.service.scheduler import reap

    settings = _load(**options)
    private_data_dir(settings)
    db = Database(settings.db_url)
    # public mode runs no test on this machine: no embedded `localhost` node
    before, after = upgrade(db, settings.default_node and not settings.public)
    if before != after:
        click.echo(f"marteau serve: database schema {before or 'empty'} -> {after}")
    refuse_local_nodes(db, settings)
    message = bootstrap_admin(db, settings)
    if message:
        click.echo(f"marteau serve: {message}")
    reap(db)
    pool = WorkerPool(settings, settings.workers)
    pool.start()
    click.echo(
        f"marteau serve: http://{settings.host}:{settings.port}/ (data in {settings.data_dir}, "
        f"{settings.workers} worker(s))"
    )
    if settings.web_processes > 1:
        # uvicorn's workers import the app and read these settings from the environment
        environment = settings_environment(settings, dict(os.environ))
        for name in set(os.environ) - set(environment):
            del os.environ[name]
        os.environ.update(environment)
    try:
        uvicorn.run(
            WEB_PROCESS_APP if settings.web_processes > 1 else create_app(settings, db),
            factory=settings.web_processes > 1,
            workers=settings.web_processes,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            timeout_graceful_shutdown=3,
        )
    finally:
        pool.stop()
        db.dispose()


@click.command("worker", context_settings={"help_option_names": ["-h", "--help"]})
@_settings_options
@setting_option("base_url")
@click.option("--once", is_flag=True, help="Stop when the queue has nothing to do.")
def worker_command(once: bool, **options: object) -> None:
    """A worker for `marteau serve`'s queue (on this machine or another one sharing
    the database and the data folder): prepares job sources and runs the jobs."""
    from marteau.service.db import Database, current_revision, head_revision
    from marteau.service.worker import JobWorker

    settings = _load(**options)
    db = Database(settings.db_url)
    if current_revision(db) != head_revision():
        click.echo(
            f"Error: database schema {current_revision(db)} is not {head_revision()}: "
            "start `marteau serve` (it upgrades the schema) first",
            err=True,
        )
        sys.exit(2)
    JobWorker(settings, db).run_forever(once=once)
