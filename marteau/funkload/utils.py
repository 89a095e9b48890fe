"""`funkload.utils` as tests import it: `Data`, `extract_token`, credentials, ...

`Upload` lives here too (re-exported by the `webunit.utility` shim) so that
the browser needs no import from a shim package.
"""

from __future__ import annotations

import http.client
import socket
import sys
from typing import Any
from urllib.parse import urlsplit
from xmlrpc.client import ServerProxy, Transport

from marteau.engine.guard import pinned_transport

FUNKLOAD_VERSION = "1.17.2"  # the FunkLoad release whose API and formats we follow


class Data:
    """A request body sent verbatim, with its Content-type (FunkLoad's ``Data``)."""

    def __init__(self, content_type: str | None, data: str | bytes) -> None:
        self.content_type = content_type
        self.data = data

    def __repr__(self) -> str:
        return f"[User data {self.content_type}]"


class Upload:
    """webunit's file-upload marker: the file is read when the request is sent."""

    def __init__(self, filename: str) -> None:
        self.filename = filename

    def __repr__(self) -> str:
        return f"<Upload {self.filename!r}>"


def extract_token(text: str, tag_start: str, tag_end: str) -> str | None:
    """The text between the first ``tag_start`` and the next ``tag_end``, else None."""
    start = text.find(tag_start)
    if start < 0:
        return None
    start += len(tag_start)
    end = text.find(tag_end, start)
    if end < 0:
        return None
    return text[start:end]


# The bench's own credential service (`marteau bench --credentials`): the conf's
# (host, port) and the Unix socket it is served on; None when there is none.
_local_credentials: tuple[str, int, str] | None = None


def _loopback(host: str) -> str:
    return "127.0.0.1" if host.lower() == "localhost" else host.lower()


def serve_credentials_locally(host: str, port: int, socket_path: str | None) -> None:
    """Send this process's XML-RPC calls for ``host:port`` to ``socket_path`` (None: stop).

    Why a Unix socket: each node serves its own slice of the logins, and nodes
    sharing one machine (or a firewall closing loopback ports to the job's
    user) must neither collide on nor open the conf's TCP port.
    """
    global _local_credentials
    _local_credentials = (_loopback(host), int(port), socket_path) if socket_path else None


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.socket_path = socket_path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


class _UnixTransport(Transport):
    def __init__(self, socket_path: str) -> None:
        super().__init__()
        self.socket_path = socket_path

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        return _UnixConnection(self.socket_path)


def rpc_transport(url: str) -> Transport:
    """The transport of an XML-RPC call to ``url``: the bench's credential service for
    its host and port, else Python's own (checked and pinned under ``--allow-host``)."""
    service = _local_credentials
    if service is not None:
        parts = urlsplit(url)
        try:
            port = parts.port or 80
        except ValueError:
            port = None
        if (_loopback(parts.hostname or ""), port) == service[:2]:
            return _UnixTransport(service[2])
    return pinned_transport(url)


def _credential_server(host: str, port: int | str) -> tuple[str, ServerProxy]:
    url = f"http://{host}:{port}"
    return url, ServerProxy(url, allow_none=True, transport=rpc_transport(url))


def _call(url: str, method: Any, *args: Any) -> Any:
    try:
        return method(*args)
    except OSError as exc:
        raise OSError(
            f"No credential server reachable at {url}, use fl-credential-ctl to start "
            f"the credential server ({exc})."
        ) from exc


def xmlrpc_get_credential(host: str, port: int | str, group: str | None = None) -> tuple:
    """A ``(login, password)`` from the credential server (round-robin per group)."""
    url, server = _credential_server(host, port)
    args = () if group is None else (group,)
    login, password = _call(url, server.getCredential, *args)
    return login, password


def xmlrpc_list_credentials(host: str, port: int | str, group: str | None = None) -> Any:
    """Logins (no group) or ``[login, password]`` pairs (with a group)."""
    url, server = _credential_server(host, port)
    args = () if group is None else (group,)
    return _call(url, server.listCredentials, *args)


def xmlrpc_list_groups(host: str, port: int | str) -> Any:
    url, server = _credential_server(host, port)
    return _call(url, server.listGroups)


def xmlrpc_get_seq(host: str, port: int | str) -> Any:
    """The credential server's next sequence number."""
    url, server = _credential_server(host, port)
    return _call(url, server.getSeq)


def trace(message: str) -> None:
    """Write to stdout at once (FunkLoad's progress dots and messages)."""
    sys.stdout.write(message)
    sys.stdout.flush()


def get_version() -> str:
    """The FunkLoad version Marteau is compatible with (``FunkLoad/<v>`` user agent)."""
    return FUNKLOAD_VERSION


def is_html(text: str | None) -> bool:
    """FunkLoad's test: ``<html`` in the first 300 characters, case-insensitive."""
    return bool(text) and "<html" in text[:300].lower()  # type: ignore[index]


def truncate(message: str, max_size: int = 128) -> str:
    """Cut a long message for one log line."""
    if len(message) > max_size:
        return message[: max_size - 3] + "..."
    return message
