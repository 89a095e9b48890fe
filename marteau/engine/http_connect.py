"""Where the HTTP client connects, and how: routes, proxies, TLS, allowed hosts.

`Connector` is the part of `marteau.engine.http.HTTPClient` that opens and
closes connections: it parses a URL once into a `Route` (direct, through a
plain proxy, or through a ``CONNECT`` tunnel; ``no_proxy`` honoured), asks
the `--allow-host` guard (`marteau.engine.guard`) where a new connection may
go, opens it blocking or on the bench's hub, tunnels, wraps TLS with SNI and
resumes the last TLS session to the same server.  None of it runs for a
request on a kept-alive connection.
"""

from __future__ import annotations

import socket
import ssl

from marteau.engine import guard
from marteau.engine.http_error import HTTPClientError, caused_by, client_error
from marteau.engine.http_wire import MAX_HEAD, RECV_SIZE
from marteau.engine.hub import Hub, HubSocket, current_hub
from marteau.engine.proxies import env_value, parse_proxy, split_hostport

_URL_CACHE_SIZE = 512


class Route:
    """A parsed URL with where to connect and what to put on the request line."""

    __slots__ = ("key", "tls", "host", "port", "target", "connect", "tunnel", "proxy_auth")

    def __init__(
        self,
        key: tuple[str, str, int],
        tls: bool,
        host: str,
        port: int,
        target: str,
        connect: tuple[str, int],
        tunnel: bool,
        proxy_auth: str | None,
    ) -> None:
        self.key = key
        self.tls = tls
        self.host = host
        self.port = port
        self.target = target  # path+query, or the absolute URL through a plain proxy
        self.connect = connect  # (host, port) of the server or of the proxy
        self.tunnel = tunnel  # https through a proxy: CONNECT first
        self.proxy_auth = proxy_auth  # Proxy-Authorization value, if any


class Conn:
    """One open connection: the socket, its hub (None: blocking) and whether it was used."""

    __slots__ = ("sock", "hub", "reused")

    def __init__(self, sock: socket.socket | HubSocket, hub: Hub | None) -> None:
        self.sock = sock
        self.hub = hub
        self.reused = False


_default_context: ssl.SSLContext | None = None


def _unverified_context() -> ssl.SSLContext:
    """FunkLoad's TLS behaviour: encrypt, but do not check the certificate."""
    global _default_context
    if _default_context is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        _default_context = context
    return _default_context


class Connector:
    """A client's connections: where each URL goes, opening, tunnelling, TLS, closing."""

    def __init__(self, timeout: float | None, ssl_context: ssl.SSLContext | None) -> None:
        self._timeout = timeout
        self._ssl_context = ssl_context or _unverified_context()
        self._routes: dict[str, Route] = {}
        self._tls_sessions: dict[tuple[str, str, int], ssl.SSLSession] = {}
        self._http_proxy = parse_proxy("http_proxy", env_value("http_proxy"))
        self._https_proxy = parse_proxy("https_proxy", env_value("https_proxy"))
        self._no_proxy = [
            entry.strip().lstrip(".").lower()
            for entry in env_value("no_proxy").split(",")
            if entry.strip()
        ]

    def _route(self, url: str) -> Route:
        """Parse an absolute URL once and decide direct, proxy or tunnel."""
        scheme, sep, rest = url.partition("://")
        scheme = scheme.lower()
        if not sep or scheme not in ("http", "https"):
            raise client_error(url, "not an absolute http:// or https:// URL")
        end = len(rest)
        for char in "/?#":
            found = rest.find(char)
            if 0 <= found < end:
                end = found
        authority, target = rest[:end], rest[end:]
        target = target.partition("#")[0]
        if not target.startswith("/"):
            target = "/" + target
        hostport = authority.rpartition("@")[2]
        tls = scheme == "https"
        try:
            host, port = split_hostport(hostport, 443 if tls else 80)
        except ValueError:
            raise caused_by(client_error(url, f"bad host or port {hostport!r}"), None)  # noqa: B904 - the cause set by caused_by
        if not host:
            raise client_error(url, "no host")
        proxy = self._https_proxy if tls else self._http_proxy
        if proxy is not None and self._bypass(host, port):
            proxy = None
        key = (scheme, host, port)
        if proxy is None:
            route = Route(key, tls, host, port, target, (host, port), False, None)
        elif tls:
            route = Route(key, tls, host, port, target, (proxy.host, proxy.port), True, proxy.auth)
        else:
            absolute = f"http://{authority.rpartition('@')[2]}{target}"
            route = Route(
                key, tls, host, port, absolute, (proxy.host, proxy.port), False, proxy.auth
            )
        if len(self._routes) >= _URL_CACHE_SIZE:
            self._routes.clear()
        self._routes[url] = route
        return route

    def _bypass(self, host: str, port: int) -> bool:
        """`no_proxy`: ``*``, a host, ``host:port``, or a domain suffix."""
        for entry in self._no_proxy:
            if entry == "*" or entry == host or entry == f"{host}:{port}":
                return True
            if host.endswith("." + entry):
                return True
        return False

    def _open(self, route: Route, url: str) -> Conn:
        """A fresh connection; with `--allow-host`, only to the addresses the guard gives."""
        timeout = self._timeout if self._timeout is not None else socket.getdefaulttimeout()
        hub = current_hub()
        host_guard = guard.active
        if host_guard is None:
            return self._open_at(hub, route, url, route.connect, timeout)
        try:
            addresses = host_guard.addresses(route.host, route.port, route.connect)
        except guard.HostRefused as exc:
            raise caused_by(client_error(url, exc), None)  # noqa: B904 - the cause set by caused_by
        failure: HTTPClientError | None = None
        for address in addresses:  # as create_connection does: the first that connects
            try:
                return self._open_at(hub, route, url, address, timeout)
            except HTTPClientError as exc:
                failure = exc
        raise failure or client_error(url, "no address")

    def _open_at(
        self,
        hub: Hub | None,
        route: Route,
        url: str,
        address: tuple[str, int],
        timeout: float | None,
    ) -> Conn:
        """A fresh connection to `address` (through the proxy tunnel, then TLS, as needed);
        on a hub greenlet (`hub`) its waits switch to the hub."""
        sock: socket.socket | HubSocket | None = None
        try:
            if hub is None:
                sock = socket.create_connection(address, timeout)
            else:
                sock = HubSocket.connect(hub, address, timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if route.tunnel:
                self._connect_tunnel(sock, route, url)
            if route.tls:
                if isinstance(sock, HubSocket):
                    session = self._tls_sessions.pop(route.key, None)
                    sock.start_tls(self._ssl_context, route.host, session)
                else:
                    sock = self._wrap(sock, route)
        except HTTPClientError:
            if sock is not None:
                sock.close()
            raise
        except OSError as exc:
            if sock is not None:
                sock.close()
            raise caused_by(client_error(url, exc), exc)  # noqa: B904 - the cause set by caused_by
        except BaseException:
            if sock is not None:
                sock.close()
            raise
        return Conn(sock, hub)

    def _wrap(self, sock: socket.socket, route: Route) -> ssl.SSLSocket:
        """TLS with SNI, resuming the last session to this server when there is one."""
        session = self._tls_sessions.pop(route.key, None)
        if session is not None:
            try:
                return self._ssl_context.wrap_socket(
                    sock, server_hostname=route.host, session=session
                )
            except ValueError:
                pass  # session from another context: full handshake
        return self._ssl_context.wrap_socket(sock, server_hostname=route.host)

    def _connect_tunnel(self, sock: socket.socket | HubSocket, route: Route, url: str) -> None:
        """``CONNECT host:port`` through the proxy; any status but 2xx fails."""
        hostport = (
            f"[{route.host}]:{route.port}" if ":" in route.host else f"{route.host}:{route.port}"
        )
        text = f"CONNECT {hostport} HTTP/1.1\r\nHost: {hostport}\r\n"
        if route.proxy_auth is not None:
            text += f"Proxy-Authorization: {route.proxy_auth}\r\n"
        sock.sendall((text + "\r\n").encode("latin-1"))
        buf = b""
        while (end := buf.find(b"\r\n\r\n")) < 0:
            # read byte-wise-bounded chunks; the proxy sends nothing after the head
            data = sock.recv(RECV_SIZE)
            if not data:
                raise client_error(url, "proxy closed the connection during CONNECT")
            buf += data
            if len(buf) > MAX_HEAD:
                raise client_error(url, "proxy CONNECT response too large")
        end = buf.find(b"\r\n")  # not in the slice: mypyc would call it twice
        line = buf[:end].decode("latin-1")
        parts = line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].startswith("2"):
            raise client_error(url, f"proxy refused CONNECT {hostport}: {line!r}")
        if len(buf) > end + 4:
            raise client_error(url, "proxy sent data after its CONNECT response")

    def _discard(self, conn: Conn, key: tuple[str, str, int] | None) -> None:
        """Close a connection, keeping its TLS session for the next one."""
        sock = conn.sock
        if key is not None and isinstance(sock, (ssl.SSLSocket, HubSocket)):
            try:
                session = sock.session
            except (ssl.SSLError, ValueError):  # pragma: no cover - defensive
                session = None
            if session is not None:
                self._tls_sessions[key] = session
        sock.close()
