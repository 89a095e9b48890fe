"""HTTP/1.1 messages off the client's fast path: the response, its rarer forms, bodies.

`marteau.engine.http` parses the common response (a head and a whole body
in one ``recv``) inline, for its per-request cost; everything rarer lives
here: heads split over several reads or with bare LFs,
unusual status lines and Content-Length values, header folding, interim
responses, and bodies that are chunked, delimited by the close or longer
than the first read.  The readers only call ``recv`` and ``recv_into``, so
they work on a blocking socket and on a hub's `HubSocket` alike.
"""

from __future__ import annotations

import socket

from marteau.engine.http_error import caused_by, client_error
from marteau.engine.hub import HubSocket

RECV_SIZE = 65536  # per recv call; allocated per call, never kept per connection
MAX_HEAD = 256 * 1024  # a response head larger than this is malformed


Sock = socket.socket | HubSocket  # what the parser reads from: blocking or on the hub


class RawResponse:
    """What the server sent: the browser layer builds FunkLoad's response on it.

    A plain class, not a dataclass: compiled, a dataclass keeps the
    ``__init__`` that `dataclasses` writes at run time, interpreted, with a
    generic attribute store per field (about 0.3 µs of every response).
    """

    __slots__ = ("status", "reason", "headers", "body", "version")

    def __init__(
        self,
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        body: bytes,
        version: str,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers  # as received, original case, in order; chunked trailers last
        self.body = body  # raw (not decompressed); b"" when none
        self.version = version  # "HTTP/1.1" or "HTTP/1.0"

    def __repr__(self) -> str:
        return (
            f"RawResponse(status={self.status}, reason={self.reason!r}, version={self.version!r})"
        )

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


def read_head(sock: Sock, buf: bytes, url: str) -> tuple[bytes, int, int]:
    """Read until the end of a head; accept bare-LF heads as old servers send them."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            return buf, end, 4
        end = buf.find(b"\n\n")
        if end >= 0:
            return buf, end, 2
        if len(buf) > MAX_HEAD:
            raise client_error(url, "response head too large")
        data = sock.recv(RECV_SIZE)
        if not data:
            raise client_error(url, "connection closed in the middle of the response head")
        buf += data


def encode_slow(text: str) -> bytes:
    """latin-1 per line, utf-8 for a line latin-1 cannot encode."""
    out = []
    for line in text.split("\r\n"):
        try:
            out.append(line.encode("latin-1"))
        except UnicodeEncodeError:
            out.append(line.encode("utf-8"))
    return b"\r\n".join(out)


def status_slow(first: str, url: str) -> tuple[str, int, bool]:
    """A status line off the fast path: a future HTTP/1.x (read as 1.1) or malformed."""
    parts = first.split(" ", 2)
    if (
        len(parts) < 2
        or not parts[0].startswith("HTTP/1.")
        or len(parts[1]) != 3
        or not parts[1].isdigit()
        or int(parts[1]) < 100
    ):
        raise client_error(url, f"malformed status line {first[:200]!r}")
    if len(first) > 12 and first[12] != " ":
        raise client_error(url, f"malformed status line {first[:200]!r}")
    return "HTTP/1.1", int(parts[1]), True


def content_length_slow(value: str, url: str, status: int) -> str:
    """``Content-Length: 5, 5`` (folded by a proxy) is 5; anything else is malformed."""
    values = {part.strip() for part in value.split(",")}
    if len(values) != 1 or not (text := values.pop()).isdigit():
        raise client_error(url, f"malformed Content-Length {value[:40]!r} in response {status}")
    return text


def unfold(headers: list[tuple[str, str]], line: str, url: str) -> tuple[str, str]:
    """A head line without a colon: the continuation of the last header (obsolete
    line folding), which it replaces; anything else is malformed."""
    if line[:1] in (" ", "\t") and headers:
        name, value = headers.pop()
        return name, f"{value} {line.strip()}"
    raise client_error(url, f"malformed header line {line[:200]!r}")


def after_interim(sock: Sock, rest: bytes, url: str) -> bytes:
    """What follows an interim response (100-continue, 103): the next response's bytes."""
    if rest:
        return rest
    rest = sock.recv(RECV_SIZE)
    if not rest:
        raise client_error(url, "connection closed after an interim response")
    return rest


def connection_keep(tokens: str, keep: bool) -> bool:
    """Keep-alive from a ``Connection`` value of several tokens (lower case): ``close``
    wins, then ``keep-alive``, else the version's default `keep`."""
    listed = [token.strip() for token in tokens.split(",")]
    if "close" in listed:
        return False
    if "keep-alive" in listed:
        return True
    return keep


def read_body(
    sock: Sock,
    buf: bytes,
    start: int,
    url: str,
    status: int,
    coding: str | None,
    length: str | None,
    headers: list[tuple[str, str]],
) -> tuple[bytes, bytes, bool]:
    """A body the fast path does not take, from ``buf[start:]`` and the socket:
    (body, leftover, whether its end is framed so the connection may be kept)."""
    if coding is not None:
        if coding.lower().rsplit(",", 1)[-1].strip() == "chunked":
            body, leftover = read_chunked(sock, buf, start, url, headers)
            return body, leftover, True
        return read_to_close(sock, buf[start:]), b"", False
    if length is not None:
        if not length.isdigit():
            length = content_length_slow(length, url, status)
        size = int(length)
        stop = start + size
        if len(buf) >= stop:
            body = buf[start:stop] if start or stop != len(buf) else buf
            return body, buf[stop:], True
        return read_exact(sock, size, buf[start:], url), b"", True
    return read_to_close(sock, buf[start:]), b"", False


def read_exact(sock: Sock, length: int, have: bytes, url: str) -> bytes:
    """`length` bytes starting with `have`, the rest read straight into place."""
    out = bytearray(length)
    view = memoryview(out)
    pos = len(have)
    view[:pos] = have
    while pos < length:
        count = sock.recv_into(view[pos:], min(length - pos, 1 << 20))
        if not count:
            raise client_error(url, f"connection closed after {pos} of {length} body bytes")
        pos += count
    view.release()
    return bytes(out)


def read_to_close(sock: Sock, have: bytes) -> bytes:
    """A body delimited by the end of the connection."""
    parts = [have]
    while True:
        data = sock.recv(RECV_SIZE)
        if not data:
            return b"".join(parts)
        parts.append(data)


def read_chunked(
    sock: Sock,
    buf: bytes,
    pos: int,
    url: str,
    headers: list[tuple[str, str]],
) -> tuple[bytes, bytes]:
    """A chunked body; trailer fields are appended to `headers`. Returns (body, leftover)."""
    parts: list[bytes] = []

    def more(buf: bytes, pos: int, what: str) -> tuple[bytes, int]:
        data = sock.recv(RECV_SIZE)
        if not data:
            raise client_error(url, f"connection closed in a chunked body ({what})")
        return buf[pos:] + data, 0

    while True:
        while (eol := buf.find(b"\r\n", pos)) < 0:
            if len(buf) - pos > 4096:
                raise client_error(url, "malformed chunk size line")
            buf, pos = more(buf, pos, "size line")
        size_text = buf[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise caused_by(client_error(url, f"malformed chunk size {size_text[:40]!r}"), None)  # noqa: B904 - the cause set by caused_by
        if size < 0 or size_text[:1] in (b"+", b"-"):
            raise client_error(url, f"malformed chunk size {size_text[:40]!r}")
        pos = eol + 2
        if size == 0:
            break
        have = len(buf) - pos
        if have >= size:
            parts.append(buf[pos : pos + size])
            pos += size
        else:
            parts.append(read_exact(sock, size, buf[pos:], url))
            buf, pos = b"", 0
        while len(buf) - pos < 2:
            buf, pos = more(buf, pos, "chunk end")
        if buf[pos : pos + 2] != b"\r\n":
            raise client_error(url, "malformed chunk: no CRLF after the data")
        pos += 2
    while True:  # trailer section, ends with an empty line
        while (eol := buf.find(b"\r\n", pos)) < 0:
            if len(buf) - pos > MAX_HEAD:
                raise client_error(url, "chunked trailers too large")
            buf, pos = more(buf, pos, "trailers")
        if eol == pos:
            return b"".join(parts), buf[eol + 2 :]
        name, colon, value = buf[pos:eol].decode("latin-1").partition(":")
        if not colon:
            raise client_error(url, "malformed trailer line")
        headers.append((name, value.strip()))
        pos = eol + 2
