"""The credential server: `fl-credential-ctl CONF start|startd|stop|restart|status|test`.

An XML-RPC server (stdlib `xmlrpc.server`) with FunkLoad's methods:
``getCredential(group)``, ``listCredentials(group)``, ``listGroups()``,
``getSeq()``, ``getStatus()`` and ``stopServer()``, bound to the conf's
``[server] host`` and ``port`` only (default host ``localhost``).  ``start``
runs it detached (``startd`` in the foreground) and returns once it answers;
its pid goes to ``pid_path`` and its log to ``log_path``.  `marteau bench
--credentials` runs one in a thread for the bench's duration, on a Unix
socket (`serve_in_thread`; `marteau.funkload.utils.rpc_transport` sends the
test's calls for the conf's host and port there).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
import xmlrpc.client
from socketserver import ThreadingMixIn
from typing import Any
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

import click

from marteau import exits
from marteau.errors import MarteauError
from marteau.funkload.credentials import (
    SERVER_NAME,
    CredentialConf,
    CredentialSet,
    CredentialStore,
    read_conf,
)

START_TIMEOUT = 15.0  # seconds `start` waits for the detached server to answer
CALL_TIMEOUT = 5.0  # seconds one control call may take
ACTIONS = ("start", "startd", "stop", "restart", "status", "test")
log = logging.getLogger("marteau.credentials")


class _Quiet(SimpleXMLRPCRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib's name)
        log.debug(format, *args)


class _QuietUnix(_Quiet):
    disable_nagle_algorithm = False  # a TCP option: a Unix socket refuses it


class CredentialServer(ThreadingMixIn, SimpleXMLRPCServer):
    """FunkLoad's file credential server: one thread per call, the store locks itself."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(
        self, conf: CredentialConf, credentials: CredentialSet, socket_path: str | None = None
    ) -> None:
        address: Any = (conf.host, conf.port)
        handler: type[_Quiet] = _Quiet
        if socket_path:
            self.address_family = socket.AF_UNIX
            address, handler = socket_path, _QuietUnix
        try:
            super().__init__(address, handler, logRequests=False, allow_none=True)
        except OSError as exc:
            where = socket_path or f"{conf.host}:{conf.port}"
            raise MarteauError(
                f"{conf.path}: cannot serve credentials on {where}: {exc.strerror or exc}"
            ) from None
        self.conf = conf
        self.store = CredentialStore(credentials)
        for name in ("getCredential", "listCredentials", "listGroups", "getSeq"):
            self.register_function(self._logged(getattr(self.store, name)), name)
        self.register_function(self.getStatus, "getStatus")
        self.register_function(self.stopServer, "stopServer")

    @staticmethod
    def _logged(method: Any) -> Any:
        def call(*args: Any) -> Any:
            result = method(*args)
            log.debug("%s%r return %r", method.__name__, args, result)
            return result

        return call

    def getStatus(self) -> str:  # noqa: N802 (RPC name)
        return f"{SERVER_NAME} running pid = {os.getpid()}"

    def stopServer(self) -> int:  # noqa: N802 (RPC name)
        """Stop after this answer (shutdown waits for the serving loop: another thread)."""
        log.info("stopServer request.")
        threading.Thread(target=self.shutdown, daemon=True).start()
        return 1


def serve_in_thread(
    conf: CredentialConf, credentials: CredentialSet, socket_path: str | None = None
) -> CredentialServer:
    """A running server in a daemon thread; the caller ends it with ``shutdown()``."""
    server = CredentialServer(conf, credentials, socket_path)
    threading.Thread(target=server.serve_forever, name="credentials", daemon=True).start()
    return server


def proxy(conf: CredentialConf) -> xmlrpc.client.ServerProxy:
    """A client for the conf's server, each call bounded by `CALL_TIMEOUT`."""

    class Transport(xmlrpc.client.Transport):
        def make_connection(self, host: Any) -> Any:
            connection = super().make_connection(host)
            connection.timeout = CALL_TIMEOUT
            return connection

    return xmlrpc.client.ServerProxy(conf.url, transport=Transport(), allow_none=True)


def status(conf: CredentialConf) -> str | None:
    """The server's ``getStatus()`` answer, or None when nothing answers there."""
    try:
        return str(proxy(conf).getStatus())
    except (OSError, xmlrpc.client.Error):
        return None


def run_foreground(conf: CredentialConf, verbose: bool, console: bool) -> int:
    """Serve until `stopServer` or a signal; pid and log files as FunkLoad kept them."""
    credentials = conf.load()
    server = CredentialServer(conf, credentials)
    handlers: list[logging.Handler] = [logging.FileHandler(conf.log_path)]
    if console:
        handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        handlers=handlers,
        force=True,
    )
    with open(conf.pid_path, "w", encoding="ascii") as handle:
        handle.write(str(os.getpid()))
    groups = len(credentials.groups) - 1
    log.info(
        "XML/RPC server pid=%i running on %s (%i logins, %i groups).",
        os.getpid(),
        conf.url,
        len(credentials.passwords),
        groups,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:  # pid file and log first: `stop` returns once the socket is closed
        if os.path.exists(conf.pid_path):
            os.remove(conf.pid_path)
        log.info("XML/RPC server pid=%i stopped.", os.getpid())
        server.server_close()
    return exits.OK


def start_detached(conf_path: str, conf: CredentialConf, verbose: bool) -> None:
    """Start ``startd`` in a new session and wait (bounded) until it answers."""
    conf.load()  # a bad file is reported here, on the console, not in a log
    command = [
        sys.executable,
        "-m",
        "marteau.funkload.credential_server",
        conf_path,
        "startd",
        "-q",
    ]
    if verbose:
        command.append("-v")
    with open(conf.log_path, "ab") as log_file:
        child = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
            start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT
    while status(conf) is None:
        code = child.poll()
        if code is not None:
            raise MarteauError(
                f"the credential server stopped at once (exit {code}): see {conf.log_path}"
            )
        if time.monotonic() > deadline:
            raise MarteauError(f"the credential server did not answer on {conf.url} in time")
        time.sleep(0.1)


def self_test(conf: CredentialConf, say: Any) -> None:
    """FunkLoad's `test` action: groups, ten credentials, each group's content, the sequence."""
    server = proxy(conf)
    groups = server.listGroups()
    say(repr(groups))
    for index in range(10):
        say(f"{index} getCredential() ... return {tuple(server.getCredential())}")
    for group in groups:
        say(f"group {group}")
        say(f"  content: {server.listCredentials(group)}")
    for _ in range(5):
        say(f"seq : {server.getSeq()}")


def control(conf_path: str, action: str, quiet: bool = False, verbose: bool = False) -> int:
    """One `fl-credential-ctl` action; the exit status."""

    def say(text: str) -> None:
        if not quiet:
            click.echo(text)

    conf = read_conf(conf_path)
    running = status(conf)
    if action == "status":
        say(f"{conf.url} {running}." if running else f"No server reachable at {conf.url}.")
        return exits.OK
    if action in ("stop", "restart"):
        if running:
            proxy(conf).stopServer()
            _wait_stopped(conf)
            say(f"Server {conf.url} is stopped.")
            running = None
        elif action == "stop":
            say(f"No server reachable at {conf.url}.")
        if action == "stop":
            return exits.OK
        action = "start"
    if action in ("start", "startd"):
        if running:
            say(f"Server {conf.url} is already running.")
            return exits.OK
        if action == "startd":
            return run_foreground(conf, verbose, console=not quiet)
        start_detached(conf_path, conf, verbose)
        say(f"Server {conf.url} started ({status(conf)}).")
        return exits.OK
    if not running:
        say(f"No server reachable at {conf.url}.")
        return exits.ERRORS
    self_test(conf, say)
    return exits.OK


def _wait_stopped(conf: CredentialConf) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while status(conf) is not None and time.monotonic() < deadline:
        time.sleep(0.1)


@click.command("credentials")
@click.argument("conf", metavar="CONF")
@click.argument("action", type=click.Choice(ACTIONS))
@click.option("-q", "--quiet", is_flag=True, help="Suppress console output.")
@click.option("-v", "--verbose", is_flag=True, help="Log every call (debug level).")
def credentials_command(conf: str, action: str, quiet: bool, verbose: bool) -> None:
    """Control the credential server of CONF (FunkLoad's fl-credential-ctl).

    ACTION: start (detached), startd (in the foreground), stop, restart,
    status, or test (call every method and print the answers).
    """
    try:
        code = control(conf, action, quiet, verbose)
    except MarteauError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exits.BAD_INPUT)
    sys.exit(code)


if __name__ == "__main__":  # the detached server `start` runs
    credentials_command.main(prog_name="fl-credential-ctl")
