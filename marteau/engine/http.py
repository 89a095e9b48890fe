"""The engine's HTTP/1.1 client: one per virtual user, synchronous.

This is the hot path of the load generator. Virtual users run synchronous
FunkLoad code, so the client is built for a small, constant per-request
Python cost rather than for generality:

* The request head is one f-string joined and encoded once (latin-1, utf-8
  for a header that latin-1 cannot encode) and sent with the body in a single
  ``sendall`` when the body is small. The client sends *exactly* the headers
  it is given, in order: Host, Content-Length, cookies and the rest are the
  FunkLoad browser's job (``marteau/funkload/browser.py``). The only header it
  ever adds is ``Proxy-Authorization``, when the proxy variable carries
  credentials.
* The response is parsed by hand at the bytes level: one ``recv`` usually
  holds the whole response; ``bytes.find`` locates the end of the head, the
  head is decoded once (latin-1) and split into lines, and only header names
  as long as a framing header (Connection, Content-Length,
  Transfer-Encoding) are lower-cased. Measured here on a typical nginx
  response (5 headers, 2-byte body), best of 20 runs: this parser 2.3-2.5 µs
  per response, a complete ``httptools.HttpResponseParser`` path (one parser
  per connection; on_status, on_header, on_body callbacks; status, version
  and keep-alive read in on_headers_complete) 2.1-2.8 µs; under load against
  nginx both cost the same CPU per request within noise (~21 µs on a busy
  machine). The hand parser is kept because it is as fast and handles what
  httptools cannot be told about without workarounds: responses to HEAD
  (llhttp would wait for a Content-Length body), bodies delimited by the
  close (no ``finish`` in httptools), bare-LF heads from old servers, and
  error messages that say what was wrong.
* Trailer fields of a chunked body are appended to ``headers``.
* Parsed URLs, with the proxy decision, are cached per client (bounded).
* No buffer is kept per connection: an idle connection is a socket and a
  few slots, so 1,000 idle users with one connection each stay small.

Connections are kept alive per (scheme, host, port) and closed after a
response that says ``Connection: close``, an HTTP/1.0 response without
``keep-alive``, or a body delimited by the close. When a *reused* connection
fails before any byte of the response arrives (the server closed it while it
was idle), the request is retried once on a fresh connection; a fresh
connection is never retried.

TLS: when no ``ssl_context`` is given, certificates are **not verified**, as
FunkLoad did with Python 2's ``httplib``; SNI is still sent. Pass a context
(for example one with a client certificate loaded, or with verification on)
to change this. TLS sessions are resumed on reconnection.

Proxies: ``http_proxy`` / ``https_proxy`` (or upper case) and ``no_proxy``
are read once per client. Plain HTTP goes to the proxy with the absolute URL
on the request line; HTTPS goes through a ``CONNECT`` tunnel.

Allowed hosts: when `marteau.engine.guard` has a guard installed
(``--allow-host``), `_open` asks it where a new connection may go and
refuses, without opening a socket, any other host (`marteau/engine/guard.py`);
with ``--strict-host`` each request's headers are checked first (its ``Host``).

Timeouts: ``timeout=None`` means ``socket.getdefaulttimeout()`` at the time a
connection opens (FunkLoad's FAQ tells users to set it). Every failure
(refused, DNS, reset, timeout, TLS, malformed response) raises
`HTTPClientError` whose message names the full URL and the cause.

Blocking or on the hub: called from a greenlet of the bench's hub
(`marteau.engine.hub`), a connection is a non-blocking `HubSocket` whose
waits switch to the hub's event loop; called from anywhere else (``marteau
test``, a script, a thread) it is a plain blocking socket. The parser is the
same pull parser for both: it only calls ``recv``, ``recv_into`` and
``sendall``. A connection opened in one context is not reused in the other.

A client belongs to one thread (or one greenlet); it has no locks.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from marteau.engine import guard
from marteau.engine.hub import Hub, HubSocket, current_hub
from marteau.engine.proxies import env_value, parse_proxy, split_hostport

__all__ = ["HTTPClient", "HTTPClientError", "RawResponse"]

_RECV_SIZE = 65536  # per recv call; allocated per call, never kept per connection
_MAX_HEAD = 256 * 1024  # a response head larger than this is malformed
_SMALL_BODY = 65536  # bodies up to this size go in the same send as the head
_URL_CACHE_SIZE = 512
_STALE_ERRORS = (
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
)
_NO_BODY_STATUS = frozenset((204, 304))
_VERSIONS = {"HTTP/1.1": True, "HTTP/1.0": False}  # version -> keep-alive by default
_FRAMING_LENGTHS = frozenset((10, 14, 17))  # connection, content-length, transfer-encoding


class HTTPClientError(OSError):
    """Connection refused, DNS failure, reset, timeout, TLS or protocol error.

    The message names the full URL and the cause, e.g.
    ``Can't load http://127.0.0.1:1/x: [Errno 111] Connection refused``;
    ``url`` holds the URL.
    """

    url: str = ""


def _error(url: str, cause: object) -> HTTPClientError:
    """Build the one error type with the message format callers rely on."""
    err = HTTPClientError(f"Can't load {url}: {cause}")
    err.url = url
    return err


_Sock = socket.socket | HubSocket  # what the parser reads from: blocking or on the hub


class _Stale(Exception):
    """A reused connection failed before any response byte: retry once."""


@dataclass(slots=True)
class RawResponse:
    """What the server sent: the browser layer builds FunkLoad's response on it."""

    status: int
    reason: str
    headers: list[tuple[str, str]]  # as received, original case, in order; chunked trailers last
    body: bytes  # raw (not decompressed); b"" when none
    version: str  # "HTTP/1.1" or "HTTP/1.0"

    def header(self, name: str) -> str | None:
        """The first header called `name` (case-insensitive), or None."""
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        """Every header called `name` (case-insensitive), in order (Set-Cookie repeats)."""
        name = name.lower()
        return [value for key, value in self.headers if key.lower() == name]


class _Route:
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


class _Conn:
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


class HTTPClient:
    """One per virtual user: keeps one keep-alive connection per (scheme, host, port)."""

    def __init__(
        self, *, timeout: float | None = None, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._timeout = timeout
        self._ssl_context = ssl_context or _unverified_context()
        self._conns: dict[tuple[str, str, int], _Conn] = {}
        self._routes: dict[str, _Route] = {}
        self._tls_sessions: dict[tuple[str, str, int], ssl.SSLSession] = {}
        self._http_proxy = parse_proxy("http_proxy", env_value("http_proxy"))
        self._https_proxy = parse_proxy("https_proxy", env_value("https_proxy"))
        self._no_proxy = [
            entry.strip().lstrip(".").lower()
            for entry in env_value("no_proxy").split(",")
            if entry.strip()
        ]

    # -- public ---------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
    ) -> RawResponse:
        """Send one request and read its whole response (keep-alive, retry once if stale)."""
        route = self._routes.get(url)
        if route is None:
            route = self._route(url)
        host_guard = guard.active
        if host_guard is not None and host_guard.strict:
            try:
                host_guard.check_headers(headers, route.host, route.port, 443 if route.tls else 80)
            except guard.HostRefused as exc:
                raise _error(url, exc) from None
        text = f"{method} {route.target} HTTP/1.1\r\n"
        if headers:
            text += "".join([f"{name}: {value}\r\n" for name, value in headers])
        if route.proxy_auth is not None and not route.tunnel:
            text += f"Proxy-Authorization: {route.proxy_auth}\r\n"
        text += "\r\n"
        try:
            data = text.encode("latin-1")
        except UnicodeEncodeError:
            data = _encode_slow(text)
        if body and len(body) <= _SMALL_BODY:
            data += body
            body = None
        head_only = method == "HEAD"
        # A request that says `Connection: close` (FunkLoad sends it after a 303)
        # must not leave its connection in the pool, whatever the server answers.
        closing = "\r\nconnection: close\r\n" in text.lower()
        conn = self._conns.pop(route.key, None)
        if conn is not None and conn.hub is not current_hub():
            self._discard(conn, route.key)  # opened in the other context (hub or blocking)
            conn = None
        if conn is not None:
            try:
                return self._exchange(conn, route, url, data, body, head_only, closing)
            except _Stale:
                pass  # the server closed the idle connection: one fresh try
        conn = self._open(route, url)
        try:
            return self._exchange(conn, route, url, data, body, head_only, closing)
        except _Stale:  # pragma: no cover - _exchange never raises it for a fresh conn
            raise _error(url, "connection closed before any response") from None

    def close(self) -> None:
        """Close every kept connection (the client stays usable)."""
        conns = list(self._conns.values())
        self._conns.clear()
        for conn in conns:
            self._discard(conn, None)

    def __enter__(self) -> HTTPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connection -----------------------------------------------------------

    def _route(self, url: str) -> _Route:
        """Parse an absolute URL once and decide direct, proxy or tunnel."""
        scheme, sep, rest = url.partition("://")
        scheme = scheme.lower()
        if not sep or scheme not in ("http", "https"):
            raise _error(url, "not an absolute http:// or https:// URL")
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
            raise _error(url, f"bad host or port {hostport!r}") from None
        if not host:
            raise _error(url, "no host")
        proxy = self._https_proxy if tls else self._http_proxy
        if proxy is not None and self._bypass(host, port):
            proxy = None
        key = (scheme, host, port)
        if proxy is None:
            route = _Route(key, tls, host, port, target, (host, port), False, None)
        elif tls:
            route = _Route(key, tls, host, port, target, (proxy.host, proxy.port), True, proxy.auth)
        else:
            absolute = f"http://{authority.rpartition('@')[2]}{target}"
            route = _Route(
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

    def _open(self, route: _Route, url: str) -> _Conn:
        """A fresh connection; with `--allow-host`, only to the addresses the guard gives."""
        timeout = self._timeout if self._timeout is not None else socket.getdefaulttimeout()
        hub = current_hub()
        host_guard = guard.active
        if host_guard is None:
            return self._open_at(hub, route, url, route.connect, timeout)
        try:
            addresses = host_guard.addresses(route.host, route.port, route.connect)
        except guard.HostRefused as exc:
            raise _error(url, exc) from None
        failure: HTTPClientError | None = None
        for address in addresses:  # as create_connection does: the first that connects
            try:
                return self._open_at(hub, route, url, address, timeout)
            except HTTPClientError as exc:
                failure = exc
        raise failure or _error(url, "no address")

    def _open_at(
        self,
        hub: Hub | None,
        route: _Route,
        url: str,
        address: tuple[str, int],
        timeout: float | None,
    ) -> _Conn:
        """A fresh connection to `address` (through the proxy tunnel, then TLS, as needed)."""
        if hub is not None:
            return self._open_on_hub(hub, route, url, address, timeout)
        sock: socket.socket | None = None
        try:
            sock = socket.create_connection(address, timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if route.tunnel:
                self._connect_tunnel(sock, route, url)
            if route.tls:
                sock = self._wrap(sock, route)
        except HTTPClientError:
            if sock is not None:
                sock.close()
            raise
        except OSError as exc:
            if sock is not None:
                sock.close()
            raise _error(url, exc) from exc
        return _Conn(sock, None)

    def _open_on_hub(
        self, hub: Hub, route: _Route, url: str, address: tuple[str, int], timeout: float | None
    ) -> _Conn:
        """`_open_at` for a hub greenlet: the waits switch to the hub."""
        sock: HubSocket | None = None
        try:
            sock = HubSocket.connect(hub, address, timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if route.tunnel:
                self._connect_tunnel(sock, route, url)
            if route.tls:
                session = self._tls_sessions.pop(route.key, None)
                sock.start_tls(self._ssl_context, route.host, session)
        except HTTPClientError:
            if sock is not None:
                sock.close()
            raise
        except OSError as exc:
            if sock is not None:
                sock.close()
            raise _error(url, exc) from exc
        except BaseException:
            if sock is not None:
                sock.close()
            raise
        return _Conn(sock, hub)

    def _wrap(self, sock: socket.socket, route: _Route) -> ssl.SSLSocket:
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

    def _connect_tunnel(self, sock: socket.socket | HubSocket, route: _Route, url: str) -> None:
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
            data = sock.recv(_RECV_SIZE)
            if not data:
                raise _error(url, "proxy closed the connection during CONNECT")
            buf += data
            if len(buf) > _MAX_HEAD:
                raise _error(url, "proxy CONNECT response too large")
        line = buf[: buf.find(b"\r\n")].decode("latin-1")
        parts = line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].startswith("2"):
            raise _error(url, f"proxy refused CONNECT {hostport}: {line!r}")
        if len(buf) > end + 4:
            raise _error(url, "proxy sent data after its CONNECT response")

    def _discard(self, conn: _Conn, key: tuple[str, str, int] | None) -> None:
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

    # -- one exchange -------------------------------------------------------------

    def _exchange(
        self,
        conn: _Conn,
        route: _Route,
        url: str,
        data: bytes,
        body: bytes | None,
        head_only: bool,
        closing: bool,
    ) -> RawResponse:
        """Send, read the response, and put the connection back if it can be reused."""
        received = False
        try:
            sock = conn.sock
            sock.sendall(data)
            if body:
                sock.sendall(body)
            buf = sock.recv(_RECV_SIZE)
            if not buf:
                raise EOFError
            received = True
            response, leftover, keep = self._read_response(sock, buf, url, head_only)
        except HTTPClientError:
            self._discard(conn, None)
            raise
        except EOFError:
            self._discard(conn, None)
            if conn.reused:
                raise _Stale from None
            raise _error(url, "connection closed before any response") from None
        except OSError as exc:
            self._discard(conn, None)
            if conn.reused and not received and isinstance(exc, _STALE_ERRORS):
                raise _Stale from exc
            raise _error(url, exc) from exc
        except BaseException:
            self._discard(conn, None)
            raise
        if keep and not leftover and not closing:
            conn.reused = True
            old = self._conns.get(route.key)
            if old is not None:  # pragma: no cover - one thread, one request at a time
                self._discard(old, None)
            self._conns[route.key] = conn
        else:
            self._discard(conn, route.key)
        return response

    def _read_response(
        self, sock: _Sock, buf: bytes, url: str, head_only: bool
    ) -> tuple[RawResponse, bytes, bool]:
        """Read one final response from `buf` + the socket: (response, leftover, keep-alive).

        Inlined on purpose: this is most of the client's per-request cost. Only
        header names of the length of a framing header are lower-cased.
        """
        while True:
            end = buf.find(b"\r\n\r\n")
            sep = 4
            if end < 0:
                buf, end, sep = self._read_head(sock, buf, url)
            text = buf[:end].decode("latin-1")
            if sep == 4:
                lines = text.split("\r\n")
            else:  # bare-LF head from an old server
                lines = [line.rstrip("\r") for line in text.split("\n")]
            first = lines[0]
            parts = first.split(" ", 2)
            if len(parts) == 3:
                version, code, reason = parts
            else:
                version, code, reason = first, "", ""
            keep = _VERSIONS.get(version)
            if keep is None or len(code) != 3 or not code.isdigit() or code[0] == "0":
                version, status, keep = _status_slow(first, url)
                reason = first[13:]
            else:
                status = int(code)
            headers: list[tuple[str, str]] = []
            append = headers.append
            length: str | None = None
            coding: str | None = None
            connection: str | None = None
            for line in lines[1:]:
                name, colon, value = line.partition(":")
                if not colon:
                    if line[:1] in (" ", "\t") and headers:  # obsolete line folding
                        last = headers.pop()
                        name, value = last[0], f"{last[1]} {line.strip()}"
                    else:
                        raise _error(url, f"malformed header line {line[:200]!r}")
                else:
                    value = value.strip()
                append((name, value))
                if len(name) in _FRAMING_LENGTHS:
                    lname = name.lower()
                    if lname == "content-length":
                        if length is not None and length != value:
                            raise _error(url, f"conflicting Content-Length in response {status}")
                        length = value
                    elif lname == "transfer-encoding":
                        coding = value if coding is None else f"{coding},{value}"
                    elif lname == "connection":
                        connection = value if connection is None else f"{connection},{value}"
            start = end + sep
            if status < 200 and status != 101:
                buf = buf[start:]  # interim response (100-continue, 103): read on
                if not buf:
                    buf = sock.recv(_RECV_SIZE)
                    if not buf:
                        raise _error(url, "connection closed after an interim response")
                continue
            break
        if connection is not None:
            connection = connection.lower()
            if connection == "keep-alive":
                keep = True
            elif connection == "close":
                keep = False
            else:
                tokens = [token.strip() for token in connection.split(",")]
                if "close" in tokens:
                    keep = False
                elif "keep-alive" in tokens:
                    keep = True
        if head_only or status in _NO_BODY_STATUS or status < 200:
            if status == 101:
                keep = False
            return RawResponse(status, reason, headers, b"", version), buf[start:], keep
        if coding is not None:
            if coding.lower().rsplit(",", 1)[-1].strip() == "chunked":
                body, leftover = _read_chunked(sock, buf, start, url, headers)
                return RawResponse(status, reason, headers, body, version), leftover, keep
            body = _read_to_close(sock, buf[start:])
            return RawResponse(status, reason, headers, body, version), b"", False
        if length is not None:
            if not length.isdigit():
                length = _content_length_slow(length, url, status)
            size = int(length)
            stop = start + size
            if len(buf) >= stop:
                body = buf[start:stop] if start or stop != len(buf) else buf
                return RawResponse(status, reason, headers, body, version), buf[stop:], keep
            body = _read_exact(sock, size, buf[start:], url)
            return RawResponse(status, reason, headers, body, version), b"", keep
        body = _read_to_close(sock, buf[start:])
        return RawResponse(status, reason, headers, body, version), b"", False

    def _read_head(self, sock: _Sock, buf: bytes, url: str) -> tuple[bytes, int, int]:
        """Read until the end of a head; accept bare-LF heads as old servers send them."""
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                return buf, end, 4
            end = buf.find(b"\n\n")
            if end >= 0:
                return buf, end, 2
            if len(buf) > _MAX_HEAD:
                raise _error(url, "response head too large")
            data = sock.recv(_RECV_SIZE)
            if not data:
                raise _error(url, "connection closed in the middle of the response head")
            buf += data


def _encode_slow(text: str) -> bytes:
    """latin-1 per line, utf-8 for a line latin-1 cannot encode."""
    out = []
    for line in text.split("\r\n"):
        try:
            out.append(line.encode("latin-1"))
        except UnicodeEncodeError:
            out.append(line.encode("utf-8"))
    return b"\r\n".join(out)


def _status_slow(first: str, url: str) -> tuple[str, int, bool]:
    """A status line off the fast path: a future HTTP/1.x (read as 1.1) or malformed."""
    parts = first.split(" ", 2)
    if (
        len(parts) < 2
        or not parts[0].startswith("HTTP/1.")
        or len(parts[1]) != 3
        or not parts[1].isdigit()
        or int(parts[1]) < 100
    ):
        raise _error(url, f"malformed status line {first[:200]!r}")
    if len(first) > 12 and first[12] != " ":
        raise _error(url, f"malformed status line {first[:200]!r}")
    return "HTTP/1.1", int(parts[1]), True


def _content_length_slow(value: str, url: str, status: int) -> str:
    """``Content-Length: 5, 5`` (folded by a proxy) is 5; anything else is malformed."""
    values = {part.strip() for part in value.split(",")}
    if len(values) != 1 or not (text := values.pop()).isdigit():
        raise _error(url, f"malformed Content-Length {value[:40]!r} in response {status}")
    return text


def _read_exact(sock: _Sock, length: int, have: bytes, url: str) -> bytes:
    """`length` bytes starting with `have`, the rest read straight into place."""
    out = bytearray(length)
    view = memoryview(out)
    pos = len(have)
    view[:pos] = have
    while pos < length:
        count = sock.recv_into(view[pos:], min(length - pos, 1 << 20))
        if not count:
            raise _error(url, f"connection closed after {pos} of {length} body bytes")
        pos += count
    view.release()
    return bytes(out)


def _read_to_close(sock: _Sock, have: bytes) -> bytes:
    """A body delimited by the end of the connection."""
    parts = [have]
    while True:
        data = sock.recv(_RECV_SIZE)
        if not data:
            return b"".join(parts)
        parts.append(data)


def _read_chunked(
    sock: _Sock,
    buf: bytes,
    pos: int,
    url: str,
    headers: list[tuple[str, str]],
) -> tuple[bytes, bytes]:
    """A chunked body; trailer fields are appended to `headers`. Returns (body, leftover)."""
    parts: list[bytes] = []

    def more(buf: bytes, pos: int, what: str) -> tuple[bytes, int]:
        data = sock.recv(_RECV_SIZE)
        if not data:
            raise _error(url, f"connection closed in a chunked body ({what})")
        return buf[pos:] + data, 0

    while True:
        while (eol := buf.find(b"\r\n", pos)) < 0:
            if len(buf) - pos > 4096:
                raise _error(url, "malformed chunk size line")
            buf, pos = more(buf, pos, "size line")
        size_text = buf[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _error(url, f"malformed chunk size {size_text[:40]!r}") from None
        if size < 0 or size_text[:1] in (b"+", b"-"):
            raise _error(url, f"malformed chunk size {size_text[:40]!r}")
        pos = eol + 2
        if size == 0:
            break
        have = len(buf) - pos
        if have >= size:
            parts.append(buf[pos : pos + size])
            pos += size
        else:
            parts.append(_read_exact(sock, size, buf[pos:], url))
            buf, pos = b"", 0
        while len(buf) - pos < 2:
            buf, pos = more(buf, pos, "chunk end")
        if buf[pos : pos + 2] != b"\r\n":
            raise _error(url, "malformed chunk: no CRLF after the data")
        pos += 2
    while True:  # trailer section, ends with an empty line
        while (eol := buf.find(b"\r\n", pos)) < 0:
            if len(buf) - pos > _MAX_HEAD:
                raise _error(url, "chunked trailers too large")
            buf, pos = more(buf, pos, "trailers")
        if eol == pos:
            return b"".join(parts), buf[eol + 2 :]
        name, colon, value = buf[pos:eol].decode("latin-1").partition(":")
        if not colon:
            raise _error(url, "malformed trailer line")
        headers.append((name, value.strip()))
        pos = eol + 2
