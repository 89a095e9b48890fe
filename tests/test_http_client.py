"""The engine's HTTP/1.1 client against real servers on 127.0.0.1.

`LocalServer` (tests/servers.py) covers ordinary exchanges; `RawServer` below
sends exact bytes for framing edge cases and counts the TCP connections it
accepts, which is how reuse, close and the single retry are proven.

Every test runs three times (the `context` fixture): blocking, as in
``marteau test``, and from a greenlet of a bench hub on uvloop and on
asyncio, where the same requests go through non-blocking sockets.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from marteau.engine import http
from marteau.engine.http import HeadCache, HTTPClient, HTTPClientError, RawResponse
from marteau.engine.hub import Hub
from marteau.errors import MarteauError
from tests.servers import LocalServer, Request, free_port, ok

# -- a raw server ---------------------------------------------------------------

Reply = Callable[[int, bytes], "bytes | list[bytes] | None"]
CLOSE = b"<close>"  # a reply part that makes the server close the connection


def read_request(conn: socket.socket, buf: bytes) -> tuple[bytes, bytes, bytes] | None:
    """One request (head, body, rest of buffer) or None at EOF."""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        data = conn.recv(65536)
        if not data:
            return None
        rest += data
    return head, rest[:length], rest[length:]


class RawServer:
    """Answers each request with `reply(index, head)`: bytes, a list of parts
    sent separately (CLOSE closes), or None to close without answering."""

    def __init__(self, reply: Reply, tls: ssl.SSLContext | None = None) -> None:
        self.reply = reply
        self.tls = tls
        self.accepted = 0
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.closed = threading.Event()  # set each time the server closes a connection
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def url(self, path: str = "/") -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self._thread.join(5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            buf = b""
            while True:
                got = read_request(conn, buf)
                if got is None:
                    return
                head, body, buf = got
                self.heads.append(head)
                self.bodies.append(body)
                out = self.reply(len(self.heads), head)
                if out is None:
                    return
                for part in [out] if isinstance(out, bytes) else out:
                    if part == CLOSE:
                        return
                    conn.sendall(part)
                    time.sleep(0.01)
        except OSError:
            return
        finally:
            conn.close()
            self.closed.set()


def response(body: bytes = b"ok", *headers: str, status: str = "200 OK") -> bytes:
    lines = [f"HTTP/1.1 {status}", *headers, f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode() + body


@pytest.fixture
def client() -> Iterator[HTTPClient]:
    with HTTPClient(timeout=10) as http:
        yield http


@pytest.fixture(autouse=True, params=["blocking", "uvloop", "asyncio"])
def context(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run every `HTTPClient.request` of a test blocking, or in a greenlet of one hub."""
    if request.param == "blocking":
        yield request.param
        return
    import asyncio

    import uvloop

    hub = Hub(uvloop.new_event_loop() if request.param == "uvloop" else asyncio.new_event_loop())
    plain = HTTPClient.request

    def on_hub(self: HTTPClient, *args: object, **kwargs: object) -> RawResponse:
        return hub.run(plain, self, *args, **kwargs)

    monkeypatch.setattr(HTTPClient, "request", on_hub)
    try:
        yield request.param
    finally:
        monkeypatch.undo()
        hub.close()


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Proxy variables of the machine must not leak into these tests."""
    for name in ("http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


# -- basic exchanges ----------------------------------------------------------------


def test_get_returns_status_reason_headers_body(server: LocalServer, client: HTTPClient) -> None:
    def route(request: Request) -> tuple[int, list[tuple[str, str]], bytes]:
        return 201, [("X-Thing", "a b"), ("Set-Cookie", "a=1"), ("set-cookie", "b=2")], b"made"

    server.routes["/make"] = route
    result = client.request("GET", server.url + "/make?x=1", [("Host", "example")])
    assert isinstance(result, RawResponse)
    assert (result.status, result.reason, result.version) == (201, "Created", "HTTP/1.1")
    assert result.body == b"made"
    assert result.header("x-thing") == "a b"
    assert result.header("X-THING") == "a b"
    assert result.header("missing") is None
    assert result.header_all("SET-COOKIE") == ["a=1", "b=2"]
    assert ("set-cookie", "b=2") in result.headers  # original case kept
    assert server.requests[0].path == "/make?x=1"


def test_exact_request_bytes_on_the_wire(client: HTTPClient) -> None:
    with RawServer(lambda n, head: response()) as raw:
        headers = [("Host", "h.example"), ("X-B", "2"), ("x-a", "1"), ("Cookie", "a=1; b=2;")]
        client.request("GET", raw.url("/p/q?k=v&z=1#frag"), headers)
        client.request("GET", f"http://127.0.0.1:{raw.port}")
        client.request("GET", f"http://127.0.0.1:{raw.port}?only=query")
    assert raw.heads[0] == (
        b"GET /p/q?k=v&z=1 HTTP/1.1\r\nHost: h.example\r\nX-B: 2\r\nx-a: 1\r\nCookie: a=1; b=2;"
    )
    # No Host, no User-Agent, nothing the caller did not give.
    assert raw.heads[1] == b"GET / HTTP/1.1"
    assert raw.heads[2] == b"GET /?only=query HTTP/1.1"


def test_header_values_latin1_then_utf8(client: HTTPClient) -> None:
    with RawServer(lambda n, head: response()) as raw:
        client.request("GET", raw.url(), [("X-L", "café"), ("X-U", "€uro"), ("X-A", "plain")])
    assert raw.heads[0].split(b"\r\n")[1:] == [
        b"X-L: caf\xe9",
        "X-U: €uro".encode(),
        b"X-A: plain",
    ]


def test_post_body_sent_as_given(server: LocalServer, client: HTTPClient) -> None:
    server.routes["/echo"] = lambda request: ok(request.body[::-1])
    data = b"a=1&b=2"
    headers = [("Content-type", "application/x-www-form-urlencoded"), ("Content-length", "7")]
    result = client.request("POST", server.url + "/echo", headers, data)
    assert result.body == b"2=b&1=a"
    assert server.requests[0].method == "POST"
    assert server.requests[0].headers == headers


def test_big_bodies_both_ways(server: LocalServer, client: HTTPClient) -> None:
    big = bytes(range(256)) * (5 * 4096)  # 5 MiB
    server.routes["/big"] = lambda request: ok(big, "application/octet-stream")
    server.routes["/size"] = lambda request: ok(str(len(request.body)).encode() + request.body[-3:])
    assert client.request("GET", server.url + "/big").body == big
    upload = b"x" * (3 * 1024 * 1024) + b"end"
    result = client.request(
        "PUT", server.url + "/size", [("Content-Length", str(len(upload)))], upload
    )
    assert result.body == str(len(upload)).encode() + b"end"


def test_head_204_304_have_no_body_and_keep_the_connection(client: HTTPClient) -> None:
    def reply(n: int, head: bytes) -> bytes:
        if head.startswith(b"HEAD"):
            return b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
        if b"/204" in head:
            return b"HTTP/1.1 204 No Content\r\n\r\n"
        if b"/304" in head:
            return b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n"
        return response(b"after")

    with RawServer(reply) as raw:
        head = client.request("HEAD", raw.url("/"))
        assert (head.status, head.body, head.header("content-length")) == (200, b"", "1000")
        assert client.request("GET", raw.url("/204")).body == b""
        assert client.request("GET", raw.url("/304")).status == 304
        assert client.request("GET", raw.url("/")).body == b"after"
    assert raw.accepted == 1


# -- keep-alive and framing -----------------------------------------------------------


def test_keep_alive_reuses_one_connection(client: HTTPClient) -> None:
    with RawServer(lambda n, head: response(str(n).encode())) as raw:
        bodies = [client.request("GET", raw.url(f"/{i}")).body for i in range(5)]
    assert bodies == [b"1", b"2", b"3", b"4", b"5"]
    assert raw.accepted == 1


def test_request_saying_connection_close_is_not_reused(client: HTTPClient) -> None:
    # The server keeps the connection open, but the request asked to close it.
    with RawServer(lambda n, head: response(b"x")) as raw:
        for _ in range(3):
            client.request("GET", raw.url(), [("Connection", "close")])
    assert raw.accepted == 3


def test_one_connection_per_server(client: HTTPClient) -> None:
    with (
        RawServer(lambda n, head: response(b"a")) as one,
        RawServer(lambda n, head: response(b"b")) as two,
    ):
        for _ in range(3):
            assert client.request("GET", one.url()).body == b"a"
            assert client.request("GET", two.url()).body == b"b"
    assert (one.accepted, two.accepted) == (1, 1)


def test_connection_close_opens_a_new_connection(client: HTTPClient) -> None:
    with RawServer(lambda n, head: [response(b"x", "Connection: close"), CLOSE]) as raw:
        for _ in range(3):
            assert client.request("GET", raw.url()).body == b"x"
    assert raw.accepted == 3


def test_http10_closes_unless_keep_alive(client: HTTPClient) -> None:
    def plain(n: int, head: bytes) -> list[bytes]:
        return [b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", CLOSE]

    def kept(n: int, head: bytes) -> bytes:
        return b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok"

    with RawServer(plain) as raw:
        for _ in range(2):
            result = client.request("GET", raw.url())
            assert (result.version, result.body) == ("HTTP/1.0", b"ok")
    assert raw.accepted == 2
    with RawServer(kept) as raw:
        for _ in range(3):
            assert client.request("GET", raw.url()).body == b"ok"
    assert raw.accepted == 1


def test_close_delimited_body(client: HTTPClient) -> None:
    def reply(n: int, head: bytes) -> list[bytes]:
        return [
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst part, ",
            b"second",
            CLOSE,
        ]

    with RawServer(reply) as raw:
        assert client.request("GET", raw.url()).body == b"first part, second"
        assert client.request("GET", raw.url()).body == b"first part, second"
    assert raw.accepted == 2


def test_chunked_with_extensions_and_trailers(client: HTTPClient) -> None:
    def reply(n: int, head: bytes) -> list[bytes]:
        return [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Before: 1\r\n\r\n",
            b"5;name=value\r\nhello\r\n",
            b"7\r\n, world\r\n1",
            b"0\r\n" + b"z" * 16 + b"\r\n0\r\nX-Trailer: done\r\nX-Sum: 42\r\n\r\n",
        ]

    with RawServer(reply) as raw:
        for _ in range(2):
            result = client.request("GET", raw.url())
            assert result.body == b"hello, world" + b"z" * 16
            assert result.header("x-trailer") == "done"
            assert result.header("X-Sum") == "42"
            assert result.headers[1] == ("X-Before", "1")
    assert raw.accepted == 1


def test_big_chunked_body(client: HTTPClient) -> None:
    chunk = b"0123456789abcdef" * 65536  # 1 MiB per chunk

    def reply(n: int, head: bytes) -> bytes:
        size = f"{len(chunk):x}\r\n".encode()
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + (
            (size + chunk + b"\r\n") * 3 + b"0\r\n\r\n"
        )

    with RawServer(reply) as raw:
        assert client.request("GET", raw.url()).body == chunk * 3


def test_interim_100_continue_is_skipped(client: HTTPClient) -> None:
    def reply(n: int, head: bytes) -> list[bytes]:
        return [
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n" + response(b"final"),
        ]

    with RawServer(reply) as raw:
        result = client.request("POST", raw.url(), [("Content-Length", "1")], b"x")
        assert (result.status, result.body, result.header("link")) == (200, b"final", None)
        assert client.request("GET", raw.url()).body == b"final"
    assert raw.accepted == 1


@pytest.fixture
def heads(monkeypatch: pytest.MonkeyPatch) -> HeadCache:
    """A fresh cache of parsed heads for this test (the process shares one)."""
    cache = HeadCache()
    monkeypatch.setattr(http, "_heads", cache)
    return cache


def test_a_repeated_head_is_parsed_once_and_each_response_owns_its_headers(
    client: HTTPClient, heads: HeadCache
) -> None:
    with RawServer(lambda n, head: response(b"same", "X-Same: 1")) as raw:
        first = client.request("GET", raw.url())
        second = client.request("GET", raw.url())
        first.headers.append(("X-Added", "by the test"))
        third = client.request("GET", raw.url())
    assert (len(heads.heads), heads.hits) == (1, 2)
    assert second.headers == third.headers == [("X-Same", "1"), ("Content-Length", "4")]
    assert first.headers is not second.headers and third.body == b"same"


def test_heads_that_never_repeat_rest_the_cache_and_stay_right(
    client: HTTPClient, heads: HeadCache
) -> None:
    sent: list[str] = []

    def reply(n: int, head: bytes) -> bytes:
        sent.append(f"id-{n}")
        return response(b"ok", f"X-Request-Id: {sent[-1]}")

    with RawServer(reply) as raw:
        for _ in range(heads.SIZE + 3):
            assert client.request("GET", raw.url()).header("x-request-id") == sent[-1]
    assert len(set(sent)) == heads.SIZE + 3
    # the cache filled without a hit: it rests, and the last two heads were parsed directly
    assert (heads.hits, heads.resting, len(heads.heads)) == (0, heads.REST - 2, 1)


def test_the_cache_rests_for_its_count_then_tries_again(heads: HeadCache) -> None:
    def head(n: int) -> bytes:
        return f"HTTP/1.1 200 OK\r\nX-Request-Id: {n}\r\n\r\n".encode()

    for n in range(heads.SIZE + 1 + heads.REST):
        data = head(n)
        parsed = heads.parse(data, len(data) - 4, "http://127.0.0.1/")
        assert parsed.headers == (("X-Request-Id", str(n)),)
    assert (heads.resting, len(heads.heads)) == (0, 1)
    data = head(-1)
    heads.parse(data, len(data) - 4, "http://127.0.0.1/")
    assert len(heads.heads) == 2  # trying again


def test_a_large_head_is_parsed_each_time_and_never_kept(
    client: HTTPClient, heads: HeadCache
) -> None:
    big = "b" * heads.LARGEST
    with RawServer(lambda n, head: response(b"ok", f"X-Big: {big}")) as raw:
        for _ in range(2):
            assert client.request("GET", raw.url()).header("x-big") == big
    assert (len(heads.heads), heads.hits) == (0, 0)


def test_a_malformed_head_is_never_cached(client: HTTPClient, heads: HeadCache) -> None:
    reply = b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"
    for _ in range(2):
        with RawServer(lambda n, head: [reply, CLOSE]) as raw, pytest.raises(HTTPClientError):
            client.request("GET", raw.url())
    assert (len(heads.heads), heads.hits) == (0, 0)


def test_head_split_over_many_packets_and_bare_lf(client: HTTPClient) -> None:
    parts = [b"HTTP/1.1 2", b"00 OK\r\nContent-", b"Length: 3\r\n", b"\r\n", b"abc"]
    with RawServer(lambda n, head: parts) as raw:
        assert client.request("GET", raw.url()).body == b"abc"
    with RawServer(lambda n, head: b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok") as raw:
        result = client.request("GET", raw.url())
        assert (result.body, result.header("content-length")) == (b"ok", "2")


@pytest.mark.parametrize(
    "reply, cause",
    [
        (b"HTTP/1.1 OK\r\n\r\n", "malformed status line"),
        (b"ICY 200 OK\r\nContent-Length: 0\r\n\r\n", "malformed status line"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            "Content-Length",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "header"),
    ],
)
def test_malformed_responses_name_the_url(client: HTTPClient, reply: bytes, cause: str) -> None:
    raw = RawServer(lambda n, head: [reply, CLOSE])
    with raw, pytest.raises(HTTPClientError) as info:
        client.request("GET", raw.url("/bad?q=1"))
    assert str(info.value).startswith(f"Can't load {raw.url('/bad?q=1')}: ")
    assert cause.lower() in str(info.value).lower()
    assert info.value.url == raw.url("/bad?q=1")


def test_truncated_body_is_an_error(client: HTTPClient) -> None:
    with (
        RawServer(
            lambda n, head: [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", CLOSE]
        ) as raw,
        pytest.raises(HTTPClientError, match="3 of 10"),
    ):
        client.request("GET", raw.url())


# -- the single retry -------------------------------------------------------------------


def test_reused_connection_closed_by_server_is_retried_once(client: HTTPClient) -> None:
    with RawServer(lambda n, head: [response(str(n).encode()), CLOSE]) as raw:
        assert client.request("GET", raw.url()).body == b"1"
        assert raw.closed.wait(5)  # the server closed the idle keep-alive connection
        assert client.request("POST", raw.url(), [("Content-Length", "2")], b"hi").body == b"2"
    assert raw.accepted == 2
    assert raw.bodies == [b"", b"hi"]


def test_reused_connection_reset_is_retried_once(client: HTTPClient) -> None:
    with RawServer(lambda n, head: response(str(n).encode())) as raw:
        assert client.request("GET", raw.url()).body == b"1"
        # Reset the client's idle connection from the client side of the kernel:
        # an RST arrives as ECONNRESET or EOF on the next use.
        conn = next(iter(client._conns.values()))
        sock = getattr(conn.sock, "sock", conn.sock)  # the socket under a HubSocket
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.shutdown(socket.SHUT_RDWR)
        assert client.request("GET", raw.url()).body == b"2"
    assert raw.accepted == 2


def test_fresh_connection_is_never_retried(client: HTTPClient) -> None:
    raw = RawServer(lambda n, head: None)
    with raw, pytest.raises(HTTPClientError, match="closed before any response"):
        client.request("GET", raw.url("/x"))
    assert raw.accepted == 1
    assert len(raw.heads) == 1


def test_no_retry_after_response_bytes_arrived(client: HTTPClient) -> None:
    def reply(n: int, head: bytes) -> bytes | list[bytes]:
        return response() if n == 1 else [b"HTTP/1.1 200 OK\r\nContent-Le", CLOSE]

    with RawServer(reply) as raw:
        client.request("GET", raw.url())
        with pytest.raises(HTTPClientError, match="head"):
            client.request("GET", raw.url())
    assert raw.accepted == 1


def test_retry_fails_too_then_error(client: HTTPClient) -> None:
    with RawServer(lambda n, head: [response(), CLOSE] if n == 1 else None) as raw:
        client.request("GET", raw.url())
        assert raw.closed.wait(5)
        with pytest.raises(HTTPClientError, match="closed before any response"):
            client.request("GET", raw.url("/again"))
    assert raw.accepted == 2


# -- network errors ---------------------------------------------------------------------------


def test_connection_refused(client: HTTPClient) -> None:
    url = f"http://127.0.0.1:{free_port()}/x"
    with pytest.raises(HTTPClientError) as info:
        client.request("GET", url)
    assert str(info.value) == f"Can't load {url}: [Errno 111] Connection refused"
    assert isinstance(info.value, OSError)


def test_dns_failure(client: HTTPClient) -> None:
    with pytest.raises(HTTPClientError, match=r"^Can't load http://no-such-host\.invalid/p: "):
        client.request("GET", "http://no-such-host.invalid/p")


def test_timeout() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/slow"
        with HTTPClient(timeout=0.2) as http, pytest.raises(HTTPClientError) as info:
            http.request("GET", url)  # accepted by the kernel, never answered
        assert str(info.value) == f"Can't load {url}: timed out"
        assert http._conns == {}  # the timed-out connection is not kept
    finally:
        listener.close()


def test_timeout_in_the_middle_of_a_body() -> None:
    def reply(n: int, head: bytes) -> list[bytes]:
        return [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"]  # then silence

    raw = RawServer(reply)
    with raw, HTTPClient(timeout=0.3) as http, pytest.raises(HTTPClientError, match="timed out"):
        http.request("GET", raw.url())
    assert raw.accepted == 1


def test_default_timeout_comes_from_socket_module() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(0.2)
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        with HTTPClient() as http, pytest.raises(HTTPClientError, match="timed out"):
            http.request("GET", url)
    finally:
        socket.setdefaulttimeout(old)
        listener.close()


def test_not_an_http_url(client: HTTPClient) -> None:
    with pytest.raises(HTTPClientError, match="ftp://x/"):
        client.request("GET", "ftp://x/")
    with pytest.raises(HTTPClientError, match="bad host or port"):
        client.request("GET", "http://127.0.0.1:99999/")


def test_tcp_nodelay_is_on(client: HTTPClient) -> None:
    with RawServer(lambda n, head: response()) as raw:
        client.request("GET", raw.url())
        conn = next(iter(client._conns.values()))
        sock = getattr(conn.sock, "sock", conn.sock)  # the socket under a HubSocket
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        client.close()
        assert client._conns == {}
        assert client.request("GET", raw.url()).status == 200  # usable after close()
    assert raw.accepted == 2


# -- TLS --------------------------------------------------------------------------------------


def server_context(certs: dict[str, Path], sni: list[str | None]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs["server"], certs["server_key"])

    def record(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        sni.append(name)

    context.sni_callback = record  # type: ignore[assignment]
    return context


def test_https_does_not_verify_by_default_and_sends_sni(certs: dict[str, Path]) -> None:
    sni: list[str | None] = []
    raw = RawServer(lambda n, head: response(b"secret"), tls=server_context(certs, sni))
    with raw, HTTPClient(timeout=10) as http:
        url = f"https://localhost:{raw.port}/s"
        for _ in range(3):
            assert http.request("GET", url, [("Host", "x")]).body == b"secret"
    assert raw.accepted == 1
    assert sni == ["localhost"]
    assert raw.heads[0] == b"GET /s HTTP/1.1\r\nHost: x"


def test_https_connection_close_reconnects_with_the_saved_session(certs: dict[str, Path]) -> None:
    sni: list[str | None] = []
    reply = [response(b"bye", "Connection: close"), CLOSE]
    raw = RawServer(lambda n, head: reply, tls=server_context(certs, sni))
    with raw, HTTPClient(timeout=10) as http:
        for _ in range(3):
            assert http.request("GET", raw.url()).body == b"bye"
        assert list(http._tls_sessions) == [("https", "127.0.0.1", raw.port)]
    assert raw.accepted == 3


def test_https_with_a_verifying_context(certs: dict[str, Path]) -> None:
    sni: list[str | None] = []
    with RawServer(lambda n, head: response(b"v"), tls=server_context(certs, sni)) as raw:
        trusting = ssl.create_default_context(cafile=str(certs["server"]))
        trusting.check_hostname = False
        with HTTPClient(timeout=10, ssl_context=trusting) as http:
            assert http.request("GET", raw.url()).body == b"v"
        strict = ssl.create_default_context()  # system CAs: the self-signed cert fails
        with HTTPClient(timeout=10, ssl_context=strict) as http:
            with pytest.raises(HTTPClientError, match="CERTIFICATE_VERIFY_FAILED") as info:
                http.request("GET", raw.url("/v"))
            assert str(info.value).startswith(f"Can't load {raw.url('/v')}: ")


def test_https_with_a_client_certificate(certs: dict[str, Path]) -> None:
    sni: list[str | None] = []
    context = server_context(certs, sni)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(certs["client"])
    peers: list[str] = []

    def reply(n: int, head: bytes) -> bytes:
        return response(b"hello client")

    with RawServer(reply, tls=context) as raw:
        mine = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        mine.check_hostname = False
        mine.verify_mode = ssl.CERT_NONE
        mine.load_cert_chain(certs["client"], certs["client_key"])
        with HTTPClient(timeout=10, ssl_context=mine) as http:
            assert http.request("GET", raw.url()).body == b"hello client"
            peers.append("ok")
        with HTTPClient(timeout=10) as http, pytest.raises(HTTPClientError):
            http.request("GET", raw.url())  # no client certificate: refused
    assert peers == ["ok"]


# -- proxies ---------------------------------------------------------------------------------


class Proxy:
    """A forwarding proxy: records each first request line, relays to `backend_port`."""

    def __init__(self, backend_port: int, refuse_connect: bool = False) -> None:
        self.backend_port = backend_port
        self.refuse_connect = refuse_connect
        self.lines: list[str] = []
        self.heads: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self._thread.join(5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, _, rest = buf.partition(b"\r\n\r\n")
            self.heads.append(head)
            self.lines.append(head.split(b"\r\n")[0].decode())
            if head.startswith(b"CONNECT") and self.refuse_connect:
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            backend = socket.create_connection(("127.0.0.1", self.backend_port), 10)
            with backend:
                if head.startswith(b"CONNECT"):
                    conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                else:
                    backend.sendall(head + b"\r\n\r\n" + rest)
                pump = threading.Thread(target=self._pipe, args=(backend, conn), daemon=True)
                pump.start()
                self._pipe(conn, backend)
                pump.join(10)

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def test_http_proxy_gets_the_absolute_url(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.routes["/via"] = lambda request: ok("proxied " + request.path)
    with Proxy(server.port) as proxy:
        monkeypatch.setenv("http_proxy", f"127.0.0.1:{proxy.port}")
        with HTTPClient(timeout=10) as http:
            # The host does not resolve: only the proxy may look it up.
            result = http.request("GET", "http://backend.invalid:8080/via?a=1", [("X", "1")])
    assert result.body == b"proxied http://backend.invalid:8080/via?a=1"
    assert proxy.lines == ["GET http://backend.invalid:8080/via?a=1 HTTP/1.1"]
    assert proxy.heads[0].split(b"\r\n")[1:] == [b"X: 1"]  # no Host added


def test_proxy_url_form_with_credentials_upper_case(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.routes["/"] = lambda request: ok("root")
    with Proxy(server.port) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://user:p%40ss@127.0.0.1:{proxy.port}/")
        with HTTPClient(timeout=10) as http:
            assert http.request("GET", "http://backend.invalid").body == b"root"
    assert proxy.lines == ["GET http://backend.invalid/ HTTP/1.1"]
    # base64("user:p@ss")
    assert proxy.heads[0].split(b"\r\n")[1:] == [b"Proxy-Authorization: Basic dXNlcjpwQHNz"]


@pytest.mark.parametrize(
    "no_proxy", ["127.0.0.1", "localhost, 127.0.0.1", "*", "example.org,.0.0.1"]
)
def test_no_proxy_bypasses(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, no_proxy: str
) -> None:
    server.routes["/"] = lambda request: ok("direct")
    with Proxy(server.port) as proxy:
        monkeypatch.setenv("http_proxy", f"127.0.0.1:{proxy.port}")
        monkeypatch.setenv("no_proxy", no_proxy)
        with HTTPClient(timeout=10) as http:
            assert http.request("GET", server.url + "/").body == b"direct"
    assert proxy.lines == []
    assert server.requests[0].path == "/"


def test_no_proxy_does_not_match_other_hosts(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.routes["/"] = lambda request: ok("via")
    with Proxy(server.port) as proxy:
        monkeypatch.setenv("http_proxy", f"127.0.0.1:{proxy.port}")
        monkeypatch.setenv("NO_PROXY", "other.invalid,ackend.invalid")
        with HTTPClient(timeout=10) as http:
            assert http.request("GET", "http://backend.invalid/").body == b"via"
    assert proxy.lines == ["GET http://backend.invalid/ HTTP/1.1"]


def test_https_through_a_connect_tunnel(
    certs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sni: list[str | None] = []
    with (
        RawServer(lambda n, head: response(b"tunnelled"), tls=server_context(certs, sni)) as raw,
        Proxy(raw.port) as proxy,
    ):
        monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("http_proxy", "127.0.0.1:1")  # not used for https
        with HTTPClient(timeout=10) as http:
            for _ in range(2):
                assert http.request("GET", "https://secure.invalid:8443/t?x").body == b"tunnelled"
    assert proxy.lines == ["CONNECT secure.invalid:8443 HTTP/1.1"]
    assert proxy.heads[0].split(b"\r\n")[1:] == [b"Host: secure.invalid:8443"]
    assert sni == ["secure.invalid"]
    assert raw.heads == [b"GET /t?x HTTP/1.1", b"GET /t?x HTTP/1.1"]


def test_refused_connect_is_an_error(
    certs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    with Proxy(free_port(), refuse_connect=True) as proxy:
        monkeypatch.setenv("https_proxy", f"127.0.0.1:{proxy.port}")
        with HTTPClient(timeout=10) as http, pytest.raises(HTTPClientError, match="403") as info:
            http.request("GET", "https://secure.invalid/")
    assert str(info.value).startswith("Can't load https://secure.invalid/: ")


def test_bad_proxy_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "127.0.0.1:notaport")
    with pytest.raises(MarteauError, match="http_proxy"):
        HTTPClient()


# -- memory -------------------------------------------------------------------------------------


def test_idle_clients_with_open_connections_are_small() -> None:
    """Python-level memory held by 100 idle users, each with one open connection.

    Only allocations made under this test's calls count (the server's
    threads run in this process too; a compiled client has no frames of its
    own to filter on); a first request warms imports up.
    """
    with RawServer(lambda n, head: response()) as raw:
        url = raw.url()
        with HTTPClient(timeout=10) as warm:
            warm.request("GET", url)
        tracemalloc.start(30)
        try:
            before = tracemalloc.take_snapshot()
            clients = []
            for _ in range(100):
                http = HTTPClient(timeout=10)
                http.request("GET", url, [("Host", "x")])
                clients.append(http)
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        mine = [  # this test's calls, not the server's threads (in this file too)
            tracemalloc.Filter(True, __file__, all_frames=True),
            tracemalloc.Filter(False, threading.__file__, all_frames=True),
        ]
        grown = sum(
            stat.size_diff
            for stat in after.filter_traces(mine).compare_to(before.filter_traces(mine), "filename")
        )
        for http in clients:
            http.close()
    assert raw.accepted == 101
    assert 0 < grown / 100 < 8 * 1024, f"{grown / 100:.0f} bytes per idle client"
