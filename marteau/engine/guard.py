"""Allowed hosts: with ``--allow-host``, the engine talks to those hosts only.

A public Marteau runs other people's test code on its nodes; the list of hosts
the job's owner has proven to own is the only thing those nodes may load.
`HostGuard` is that list, checked by the HTTP client (`marteau.engine.http`)
each time it is about to open a connection: a refused request opens no
socket and fails with `HostRefused`, which the FunkLoad layer records as an
Error like any other failed request. Redirect targets and auto-loaded
``<img>``/``<link>`` resources go through the same client, so they are
checked the same way. ``xmlrpc()``, ``comet()`` and the credential server
helpers use Python's ``http.client``: `pin` checks their connections and
makes them go to the pinned addresses too.

The rules, decided once here:

* Host names compare case-insensitively and without a trailing dot.
* ``HOST`` allows every port of that host; ``HOST:PORT`` allows that port only.
* Names are taken literally: a name or an IP literal that is not on the list
  is refused even when it resolves to the address of one that is (list the
  IP literal too if the tests use it).
* Every allowed name is resolved once, when the guard is built (before the
  test module is imported), and connections go to those addresses only, so
  a DNS answer that changes during the bench (rebinding) cannot point the
  nodes elsewhere.
* With ``--strict-host`` (the service's public mode), a request whose ``Host``
  header names another host or port than its URL is refused, and so is a
  header name or value holding a line break (which could add one): the
  allowed address of a shared server must not be asked for its other sites.
* A proxy from ``http_proxy``/``https_proxy`` *as set when the guard was
  built* is trusted (the node's operator set it); a proxy that test code sets
  later must itself be an allowed host.

Cost: nothing per request on a kept-alive connection; one set lookup and one
dict lookup per new connection.

Not covered: test code is Python, and code that opens its own sockets
(``socket``, ``urllib``, ``requests``...) or that uninstalls the guard is not
checked. The guard stops the FunkLoad API from reaching other hosts; it is
not a sandbox.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import xmlrpc.client
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar, cast

from marteau.engine.proxies import env_value, parse_proxy
from marteau.errors import MarteauError

__all__ = [
    "HostGuard",
    "HostRefused",
    "active",
    "guard_process",
    "install",
    "pin",
    "pinned_transport",
    "parse_entry",
    "uninstall",
]


class HostRefused(OSError):
    """A request to a host that is not allowed: nothing was sent."""


def normal_host(host: str) -> str:
    """The form hosts are compared in: lower case, no trailing dot, IPv6 compressed."""
    host = host.lower().rstrip(".")
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0]).compressed
        except ValueError:
            return host
    return host


def hostport(host: str, port: int | None) -> str:
    """``host``, ``host:port`` or ``[v6]:port``, as a user writes it."""
    if port is None:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_entry(entry: str) -> tuple[str, int | None]:
    """``HOST``, ``HOST:PORT``, ``[V6]`` or ``[V6]:PORT`` -> (normal host, port or None)."""
    text = entry.strip()
    port_text = ""
    if text.startswith("["):
        end = text.find("]")
        host, rest = (text[1:end], text[end + 1 :]) if end > 0 else ("", "")
        if rest:
            port_text = rest[1:] if rest.startswith(":") else "x"
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host = text  # a name, or a bare IPv6 literal
    if ":" in host and not text.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            host = ""
    port: int | None = None
    if port_text or text.endswith(":"):
        port = int(port_text) if port_text.isdigit() else 0
    if not host or "/" in host or " " in host or (port is not None and not 0 < port < 65536):
        raise MarteauError(
            f"--allow-host {entry!r}: expected HOST or HOST:PORT "
            "(e.g. example.com, example.com:8080, [::1]:8080)"
        )
    return normal_host(host), port


class HostGuard:
    """The allowed hosts and the addresses their names had when the bench started."""

    __slots__ = (
        "_any_port",
        "_exact",
        "_addresses",
        "_unresolved",
        "_proxies",
        "listing",
        "strict",
    )

    def __init__(
        self,
        entries: Iterable[str],
        addresses: Mapping[str, Sequence[str]],
        unresolved: dict[str, str] | None = None,
        proxies: Iterable[tuple[str, int]] = (),
        strict: bool = False,
    ) -> None:
        any_port: set[str] = set()
        exact: set[tuple[str, int]] = set()
        names: list[str] = []
        for entry in entries:
            host, port = parse_entry(entry)
            if port is None:
                any_port.add(host)
            else:
                exact.add((host, port))
            if hostport(host, port) not in names:
                names.append(hostport(host, port))
        self._any_port = frozenset(any_port)
        self._exact = frozenset(exact)
        self._addresses = {normal_host(name): tuple(ips) for name, ips in addresses.items()}
        self._unresolved = dict(unresolved or {})
        self._proxies = frozenset(proxies)
        self.listing = ", ".join(names)  # for messages and the bench header
        self.strict = strict  # --strict-host: `check_headers` on every request

    @classmethod
    def resolve(cls, entries: Sequence[str], strict: bool = False) -> HostGuard:
        """Parse the entries and resolve each allowed name now, once."""
        hosts = {parse_entry(entry)[0] for entry in entries}
        addresses: dict[str, list[str]] = {}
        unresolved: dict[str, str] = {}
        for host in sorted(hosts):
            try:
                found = socket.getaddrinfo(host, None, 0, socket.SOCK_STREAM)
            except OSError as exc:
                unresolved[host] = str(exc)
                continue
            ips = addresses.setdefault(host, [])
            for *_, sockaddr in found:
                address = cast(str, sockaddr[0])  # AF_INET(6): a text address
                if address not in ips:
                    ips.append(address)
        proxies = []
        for variable in ("http_proxy", "https_proxy"):
            proxy = parse_proxy(variable, env_value(variable))
            if proxy is not None:
                proxies.append((proxy.host, proxy.port))
        return cls(entries, addresses, unresolved, proxies, strict)

    def allows(self, host: str, port: int) -> bool:
        """Whether ``host:port`` is on the list (`host` as the URL spelled it)."""
        host = normal_host(host)
        return host in self._any_port or (host, port) in self._exact

    def refusal(self, host: str, port: int, what: str = "") -> str:
        """The message of a refused request: what was refused, and what is allowed."""
        return (
            f"refused: {what}{hostport(host, port)} is not an allowed host "
            f"(allowed: {self.listing})"
        )

    def addresses(self, host: str, port: int, connect: tuple[str, int]) -> list[tuple[str, int]]:
        """Where a new connection for ``host:port`` may go, via `connect` (the server or a proxy).

        Raises `HostRefused` when the host, or the proxy, is not allowed.
        """
        if not self.allows(host, port):
            raise HostRefused(self.refusal(host, port))
        if connect != (host, port):  # through a proxy
            if connect in self._proxies:
                return [connect]  # the node's own, from the environment at start
            if not self.allows(*connect):
                raise HostRefused(self.refusal(*connect, what="proxy "))
            host, port = connect  # an allowed host as proxy: its pinned addresses
        name = normal_host(host)
        ips = self._addresses.get(name)
        if ips is None:
            try:
                ipaddress.ip_address(name)
            except ValueError:
                why = self._unresolved.get(name, "not resolved")
                raise HostRefused(
                    f"refused: allowed host {name} did not resolve when the bench started ({why})"
                ) from None
            ips = (name,)
        return [(ip, port) for ip in ips]

    def check_headers(
        self, headers: Iterable[tuple[str, str]], host: str, port: int, default_port: int
    ) -> None:
        """`--strict-host`: `HostRefused` unless every ``Host`` header names the URL's
        ``host`` and ``port`` (the port may be left out when it is the scheme's
        default), and no header holds a line break."""
        for name, value in headers:
            if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
                raise HostRefused(f"refused: header {name!r} holds a line break (--strict-host)")
            if name.lower() != "host":
                continue
            named = value.strip()
            try:
                named_host, named_port = parse_entry(named)
            except MarteauError:
                named_host, named_port = "", None
            if (named_host, named_port or default_port) != (normal_host(host), port):
                raise HostRefused(
                    f"refused: Host header {named!r} names another host than the URL's "
                    f"{hostport(normal_host(host), port)} (--strict-host)"
                )

    def describe(self) -> str:
        """``a.example (192.0.2.1), b.example:8080 (192.0.2.2)`` for the bench header."""
        parts = []
        for name in self.listing.split(", "):
            host = parse_entry(name)[0]
            ips = self._addresses.get(host)
            if ips is not None and ips != (host,):
                parts.append(f"{name} ({', '.join(ips)})")
            elif host in self._unresolved:
                parts.append(f"{name} (did not resolve: {self._unresolved[host]})")
            else:
                parts.append(name)
        return ", ".join(parts)


active: HostGuard | None = None  # read by the HTTP client when it opens a connection


def install(guard: HostGuard) -> None:
    """Check every later connection of this process against `guard`."""
    global active
    active = guard


def guard_process(entries: Sequence[str], strict: bool = False) -> HostGuard:
    """Resolve `entries` and install the guard: call before any test code runs."""
    guard = HostGuard.resolve(entries, strict)
    install(guard)
    return guard


def uninstall() -> None:
    global active
    active = None


_Connection = TypeVar("_Connection", bound=http.client.HTTPConnection)


def pin(connection: _Connection, host: str | None = None) -> _Connection:
    """Make an ``http.client`` connection (XML-RPC, comet, the credential server) obey
    the guard: `HostRefused` now if its host (`host` as the URL spelled it, if the
    connection was made for another name) is not allowed, and its socket opened to
    that host's pinned addresses only (TLS still names the connection's host).
    Without a guard, the connection as it is."""
    guard = active
    if guard is None:
        return connection
    endpoint = (host or connection.host, connection.port)
    targets = guard.addresses(*endpoint, endpoint)

    def create_connection(
        address: tuple[str, int], timeout: Any = None, source_address: Any = None
    ) -> socket.socket:
        failure: OSError | None = None
        for target in targets:  # as socket.create_connection does: the first that connects
            try:
                return socket.create_connection(target, timeout, source_address)
            except OSError as exc:
                failure = exc
        raise failure or OSError(f"no address for {hostport(*endpoint)}")

    connection._create_connection = create_connection  # type: ignore[attr-defined]
    return connection


# What ``xmlrpc.client``'s transports take as a host: "host[:port]" or (host, x509 options).
_XmlRpcHost = tuple[str, dict[str, str]] | str


class PinnedTransport(xmlrpc.client.Transport):
    """An ``xmlrpc.client`` transport whose connections go through `pin`."""

    def make_connection(self, host: _XmlRpcHost) -> http.client.HTTPConnection:
        return pin(super().make_connection(host))


class PinnedSafeTransport(xmlrpc.client.SafeTransport):
    """`PinnedTransport` over TLS."""

    def make_connection(self, host: _XmlRpcHost) -> http.client.HTTPSConnection:
        return pin(super().make_connection(host))


def pinned_transport(url: str) -> xmlrpc.client.Transport:
    """The transport for an ``xmlrpc.client.ServerProxy`` of `url`."""
    return PinnedSafeTransport() if url.lower().startswith("https:") else PinnedTransport()
