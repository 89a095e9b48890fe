"""FunkLoad's XML-RPC daemons: the `*-ctl CONF start|startd|stop|restart|status|test` control.

The credential server (`fl-credential-ctl`) and the monitor server
(`fl-monitor-ctl`) share FunkLoad's daemon behaviour (its `XmlRpcBase`):
``start`` runs ``startd`` detached in a new session and returns once the
server answers ``getStatus()``; ``stop`` calls ``stopServer()``; the pid goes
to ``pid_path`` and the log to ``log_path``. Every call to a server is bounded
by `CALL_TIMEOUT`, every wait by `START_TIMEOUT`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol
from xmlrpc.server import SimpleXMLRPCRequestHandler

import click

from marteau import exits
from marteau.errors import MarteauError

START_TIMEOUT = 15.0  # seconds `start` waits for the detached server to answer
CALL_TIMEOUT = 5.0  # seconds one control call may take
ACTIONS = ("start", "startd", "stop", "restart", "status", "test")


class QuietHandler(SimpleXMLRPCRequestHandler):
    """Requests go to the debug log, not to stderr."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib's name)
        logging.getLogger("marteau.rpc").debug(format, *args)


class Serving(Protocol):
    def serve_forever(self) -> None: ...
    def server_close(self) -> None: ...


@dataclass
class Daemon:
    """One server of a conf: where it answers, its files, and its own parts."""

    title: str  # "credential server", "monitor server"
    conf_path: str
    url: str
    pid_path: str
    log_path: str
    module: str  # `python -m module CONF startd -q` runs it in the foreground
    check: Callable[
        [], object
    ]  # reads what the server needs: a bad file fails here, on the console
    serve: Callable[[bool, bool], int]  # (verbose, console) -> exit status, in the foreground
    self_test: Callable[[Callable[[str], None]], None]  # the `test` action, given `say`


def proxy(url: str) -> xmlrpc.client.ServerProxy:
    """A client for the server at `url`, each call bounded by `CALL_TIMEOUT`."""

    class Transport(xmlrpc.client.Transport):
        def make_connection(self, host: Any) -> Any:
            connection = super().make_connection(host)
            connection.timeout = CALL_TIMEOUT
            return connection

    return xmlrpc.client.ServerProxy(url, transport=Transport(), allow_none=True)


def status(url: str) -> str | None:
    """The server's ``getStatus()`` answer, or None when nothing answers there."""
    try:
        return str(proxy(url).getStatus())
    except (OSError, xmlrpc.client.Error):
        return None


def serve_foreground(
    server: Serving, daemon: Daemon, log: logging.Logger, verbose: bool, console: bool, banner: str
) -> int:
    """Serve until `stopServer` or a signal; pid and log files as FunkLoad kept them."""
    handlers: list[logging.Handler] = [logging.FileHandler(daemon.log_path)]
    if console:
        handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        handlers=handlers,
        force=True,
    )
    with open(daemon.pid_path, "w", encoding="ascii") as handle:
        handle.write(str(os.getpid()))
    log.info("XML/RPC server pid=%i running on %s (%s).", os.getpid(), daemon.url, banner)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:  # pid file and log first: `stop` returns once the socket is closed
        if os.path.exists(daemon.pid_path):
            os.remove(daemon.pid_path)
        log.info("XML/RPC server pid=%i stopped.", os.getpid())
        server.server_close()
    return exits.OK


def start_detached(daemon: Daemon, verbose: bool) -> None:
    """Start ``startd`` in a new session and wait (bounded) until it answers."""
    daemon.check()
    command = [sys.executable, "-m", daemon.module, daemon.conf_path, "startd", "-q"]
    if verbose:
        command.append("-v")
    with open(daemon.log_path, "ab") as log_file:
        child = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
            start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT
    while status(daemon.url) is None:
        code = child.poll()
        if code is not None:
            raise MarteauError(
                f"the {daemon.title} stopped at once (exit {code}): see {daemon.log_path}"
            )
        if time.monotonic() > deadline:
            raise MarteauError(f"the {daemon.title} did not answer on {daemon.url} in time")
        time.sleep(0.1)


def _wait_stopped(url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while status(url) is not None and time.monotonic() < deadline:
        time.sleep(0.1)


def control(daemon: Daemon, action: str, quiet: bool = False, verbose: bool = False) -> int:
    """One `*-ctl` action; the exit status."""

    def say(text: str) -> None:
        if not quiet:
            click.echo(text)

    url = daemon.url
    running = status(url)
    if action == "status":
        say(f"{url} {running}." if running else f"No server reachable at {url}.")
        return exits.OK
    if action in ("stop", "restart"):
        if running:
            # a busy server may not answer in time: whether it stops is what counts
            with contextlib.suppress(OSError, xmlrpc.client.Error):
                proxy(url).stopServer()
            _wait_stopped(url)
            if status(url) is not None:
                raise MarteauError(
                    f"the {daemon.title} at {url} did not stop; see {daemon.log_path}"
                )
            say(f"Server {url} is stopped.")
            running = None
        elif action == "stop":
            say(f"No server reachable at {url}.")
        if action == "stop":
            return exits.OK
        action = "start"
    if action in ("start", "startd"):
        if running:
            say(f"Server {url} is already running.")
            return exits.OK
        if action == "startd":
            return daemon.serve(verbose, not quiet)
        start_detached(daemon, verbose)
        say(f"Server {url} started ({status(url)}).")
        return exits.OK
    if not running:
        say(f"No server reachable at {url}.")
        return exits.ERRORS
    daemon.self_test(say)
    return exits.OK


def run_control(make: Callable[[], Daemon], action: str, quiet: bool, verbose: bool) -> NoReturn:
    """The click command's body: a bad conf is exit 2 with its message."""
    try:
        code = control(make(), action, quiet, verbose)
    except MarteauError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exits.BAD_INPUT)
    sys.exit(code)
