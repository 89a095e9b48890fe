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
* A head seen before is not parsed again: `HeadCache` keeps the parsed heads
  by their bytes, as a server's responses mostly repeat theirs, and rests
  where they never do.
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

The client is three modules: this one sends requests and parses the common
response inline; `marteau.engine.http_connect` opens connections (routes,
proxies, TLS, the allowed hosts) and `marteau.engine.http_wire` holds the
rarer parts of a response (folded or split heads, interim responses,
chunked bodies and bodies delimited by the close) and the error type.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence

from marteau.engine import guard
from marteau.engine.http_connect import Conn, Connector, Route
from marteau.engine.http_error import HTTPClientError, caused_by, client_error
from marteau.engine.http_wire import (
    RECV_SIZE,
    RawResponse,
    Sock,
    after_interim,
    connection_keep,
    encode_slow,
    read_body,
    read_head,
    status_slow,
    unfold,
)
from marteau.engine.hub import current_hub

__all__ = ["HTTPClient", "HTTPClientError", "RawResponse"]

_SMALL_BODY = 65536  # bodies up to this size go in the same send as the head
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


class _Stale(Exception):
    """A reused connection failed before any response byte: retry once."""


class Head:
    """A response head, parsed: what `HTTPClient._read_response` needs of it."""

    __slots__ = ("version", "status", "reason", "keep", "headers", "length", "coding")

    def __init__(
        self,
        version: str,
        status: int,
        reason: str,
        keep: bool,
        headers: tuple[tuple[str, str], ...],
        length: str | None,
        coding: str | None,
    ) -> None:
        self.version = version
        self.status = status
        self.reason = reason
        self.keep = keep  # keep-alive, from the version and the Connection header
        self.headers = headers  # as received, original case, in order
        self.length = length  # Content-Length
        self.coding = coding  # Transfer-Encoding, its values joined


class HeadCache:
    """Parsed heads by their bytes, shared by the process's clients.

    A server's responses mostly repeat their head (nginx's changes with its
    Date, once a second): a repeated head costs a dict lookup instead of its
    parse (about 1.5 µs for nginx's five headers). Where heads never repeat (a
    request id, a timing, a session cookie in each), a cache only costs: when
    it fills having served fewer hits than it holds, it rests for `REST`
    heads, parsing them directly, then tries again. Races between threads
    only blur its counts (a dict's get and set hold under the GIL).
    """

    SIZE = 32
    REST = 4096
    LARGEST = 8192  # bytes: a larger head is parsed each time, never kept

    def __init__(self) -> None:
        self.heads: dict[bytes, Head] = {}
        self.hits = 0  # since the cache was last emptied
        self.resting = 0  # heads still to parse without the cache

    def parse(self, buf: bytes, end: int, url: str) -> Head:
        """The head `buf[:end]` (CRLF lines), from the cache when it repeats."""
        key = buf[:end]
        kept = not self.resting and end <= self.LARGEST
        head = self.heads.get(key) if kept else None
        if head is not None:
            self.hits += 1
            return head
        head = parse_head(key.decode("latin-1").split("\r\n"), url)
        if not kept:
            if self.resting:
                self.resting -= 1
            return head
        if len(self.heads) >= self.SIZE:
            if self.hits < self.SIZE:
                self.resting = self.REST
            self.heads.clear()
            self.hits = 0
        self.heads[key] = head
        return head


_heads = HeadCache()


def parse_head(lines: list[str], url: str) -> Head:
    """A response head from its lines (the status line first); malformed raises
    `HTTPClientError`. Only header names of the length of a framing header are
    lower-cased."""
    first = lines[0]
    parts = first.split(" ", 2)
    if len(parts) == 3:
        version, code, reason = parts
    else:
        version, code, reason = first, "", ""
    keep = _VERSIONS.get(version)
    if keep is None or len(code) != 3 or not code.isdigit() or code[0] == "0":
        version, status, keep = status_slow(first, url)
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
        if not colon:  # obsolete line folding, or malformed
            name, value = unfold(headers, line, url)
        else:
            value = value.strip()
        append((name, value))
        if len(name) in _FRAMING_LENGTHS:
            lname = name.lower()
            if lname == "content-length":
                if length is not None and length != value:
                    raise client_error(url, f"conflicting Content-Length in response {status}")
                length = value
            elif lname == "transfer-encoding":
                coding = value if coding is None else f"{coding},{value}"
            elif lname == "connection":
                connection = value if connection is None else f"{connection},{value}"
    if connection is not None:
        connection = connection.lower()
        if connection == "keep-alive":
            keep = True
        elif connection == "close":
            keep = False
        else:
            keep = connection_keep(connection, keep)
    return Head(version, status, reason, keep, tuple(headers), length, coding)


class HTTPClient(Connector):
    """One per virtual user: keeps one keep-alive connection per (scheme, host, port)."""

    def __init__(
        self, *, timeout: float | None = None, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        super().__init__(timeout, ssl_context)
        self._conns: dict[tuple[str, str, int], Conn] = {}

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
                raise caused_by(client_error(url, exc), None)  # noqa: B904 - the cause set by caused_by
        text = f"{method} {route.target} HTTP/1.1\r\n"
        if headers:
            text += "".join([f"{name}: {value}\r\n" for name, value in headers])
        if route.proxy_auth is not None and not route.tunnel:
            text += f"Proxy-Authorization: {route.proxy_auth}\r\n"
        text += "\r\n"
        try:
            data = text.encode("latin-1")
        except UnicodeEncodeError:
            data = encode_slow(text)
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
            raise caused_by(client_error(url, "connection closed before any response"), None)  # noqa: B904 - the cause set by caused_by

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
    # -- one exchange -------------------------------------------------------------

    def _exchange(
        self,
        conn: Conn,
        route: Route,
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
            buf = sock.recv(RECV_SIZE)
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
                raise caused_by(_Stale(), None)  # noqa: B904 - the cause set by caused_by
            raise caused_by(client_error(url, "connection closed before any response"), None)  # noqa: B904 - the cause set by caused_by
        except OSError as exc:
            self._discard(conn, None)
            if conn.reused and not received and isinstance(exc, _STALE_ERRORS):
                raise caused_by(_Stale(), exc)  # noqa: B904 - the cause set by caused_by
            raise caused_by(client_error(url, exc), exc)  # noqa: B904 - the cause set by caused_by
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
        self, sock: Sock, buf: bytes, url: str, head_only: bool
    ) -> tuple[RawResponse, bytes, bool]:
        """Read one final response from `buf` + the socket: (response, leftover, keep-alive).

        A head is parsed once per process while it repeats (`_heads`).
        """
        while True:
            end = buf.find(b"\r\n\r\n")
            sep = 4
            if end < 0:
                buf, end, sep = read_head(sock, buf, url)
            if sep == 4:
                head = _heads.parse(buf, end, url)
            else:  # bare-LF head from an old server
                lines = buf[:end].decode("latin-1").split("\n")
                head = parse_head([line.rstrip("\r") for line in lines], url)
            start = end + sep
            status = head.status
            if status < 200 and status != 101:  # interim response (100-continue, 103): read on
                buf = after_interim(sock, buf[start:], url)
                continue
            break
        headers = list(head.headers)
        reason = head.reason
        version = head.version
        keep = head.keep
        length = head.length
        coding = head.coding
        if head_only or status in _NO_BODY_STATUS or status < 200:
            if status == 101:
                keep = False
            return RawResponse(status, reason, headers, b"", version), buf[start:], keep
        if coding is None and length is not None and length.isdigit():
            stop = start + int(length)
            if len(buf) >= stop:  # the common case: the whole body came with the head
                body = buf[start:stop] if start or stop != len(buf) else buf
                return RawResponse(status, reason, headers, body, version), buf[stop:], keep
        body, leftover, framed = read_body(sock, buf, start, url, status, coding, length, headers)
        return RawResponse(status, reason, headers, body, version), leftover, keep and framed
