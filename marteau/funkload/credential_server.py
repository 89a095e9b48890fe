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
import threading
from socketserver import ThreadingMixIn
from typing import Any, cast
from xmlrpc.server import SimpleXMLRPCServer

import click

from marteau.errors import MarteauError
from marteau.funkload import rpc_daemon
from marteau.funkload.credentials import (
    SERVER_NAME,
    CredentialConf,
    CredentialSet,
    CredentialStore,
    read_conf,
)
from marteau.funkload.rpc_daemon import ACTIONS

log = logging.getLogger("marteau.credentials")


class _QuietUnix(rpc_daemon.QuietHandler):
    disable_nagle_algorithm = False  # a TCP option: a Unix socket refuses it


class CredentialServer(ThreadingMixIn, SimpleXMLRPCServer):
    """FunkLoad's file credential server: one thread per call, the store locks itself."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(
        self, conf: CredentialConf, credentials: CredentialSet, socket_path: str | None = None
    ) -> None:
        address: Any = (conf.host, conf.port)
        handler: type[rpc_daemon.QuietHandler] = rpc_daemon.QuietHandler
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


def status(conf: CredentialConf) -> str | None:
    """The server's ``getStatus()`` answer, or None when nothing answers there."""
    return rpc_daemon.status(conf.url)


def daemon(conf_path: str) -> rpc_daemon.Daemon:
    """The credential server of the conf at `conf_path`, for `rpc_daemon.control`."""
    conf = read_conf(conf_path)

    def serve(verbose: bool, console: bool) -> int:
        credentials = conf.load()
        server = CredentialServer(conf, credentials)
        groups = len(credentials.groups) - 1
        banner = f"{len(credentials.passwords)} logins, {groups} groups"
        return rpc_daemon.serve_foreground(server, found, log, verbose, console, banner)

    def self_test(say: Any) -> None:
        """FunkLoad's `test` action: groups, ten credentials, each group's content, the sequence."""
        server = rpc_daemon.proxy(conf.url)
        groups = cast(list[str], server.listGroups())
        say(repr(groups))
        for index in range(10):
            credential = cast(list[str], server.getCredential())
            say(f"{index} getCredential() ... return {tuple(credential)}")
        for group in groups:
            say(f"group {group}")
            say(f"  content: {cast(list[str], server.listCredentials(group))}")
        for _ in range(5):
            say(f"seq : {cast(int, server.getSeq())}")

    found = rpc_daemon.Daemon(
        title="credential server",
        conf_path=conf_path,
        url=conf.url,
        pid_path=conf.pid_path,
        log_path=conf.log_path,
        module="marteau.funkload.credential_server",
        check=conf.load,
        serve=serve,
        self_test=self_test,
    )
    return found


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
    rpc_daemon.run_control(lambda: daemon(conf), action, quiet, verbose)


if __name__ == "__main__":  # the detached server `start` runs
    credentials_command.main(prog_name="fl-credential-ctl")
