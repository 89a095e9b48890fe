"""Real HTTP servers on 127.0.0.1 for the tests.

`LocalServer` runs a threaded stdlib HTTP/1.1 server with keep-alive in a
background thread. Routes map a path (without query) to a function taking
the `Request` and returning `(status, headers, body)`; every request is kept
in `server.requests` so tests can assert what was really sent on the wire.
`HangingServer` accepts connections and never answers. `CountingListener` counts the
connections it accepts. `DnsServer` answers A and TXT queries over UDP from its
dictionaries. `free_port` is a port with nothing listening.
"""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


@dataclass
class Request:
    method: str
    path: str  # path + query, as sent
    headers: list[tuple[str, str]]  # in the order received
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


Reply = tuple[int, list[tuple[str, str]], bytes]
Route = Callable[[Request], Reply]


def ok(body: bytes | str = b"OK", content_type: str = "text/plain") -> Reply:
    data = body.encode() if isinstance(body, str) else body
    return 200, [("Content-Type", content_type)], data


class _HTTPServer(ThreadingHTTPServer):
    """socketserver's listen backlog is 5: users connecting at once would see SYNs
    dropped and retried a second later, a delay the tests would take for the engine's."""

    request_queue_size = 128
    daemon_threads = True


@dataclass
class LocalServer:
    routes: dict[str, Route] = field(default_factory=dict)
    host: str = "127.0.0.1"
    requests: list[Request] = field(default_factory=list)
    port: int = 0  # 0: a free one

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else Nagle + delayed ACK add 40 ms

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(self.command, self.path, list(self.headers.items()), body)
                server.requests.append(request)
                route = server.routes.get(urlsplit(self.path).path)
                status, headers, data = route(request) if route else (404, [], b"not found")
                self.send_response(status)
                names = {name.lower() for name, _ in headers}
                for name, value in headers:
                    self.send_header(name, value)
                if "content-length" not in names and "transfer-encoding" not in names:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = _handle
            do_PROPFIND = do_LOCK = do_PATCH = _handle

        self._httpd = _HTTPServer((self.host, self.port), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class HangingServer:
    """Accepts connections, reads what comes, never answers (until the test ends)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # closed by __exit__
                return
            self.accepted.append(conn)

    def __enter__(self) -> HangingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.listener.close()
        self._thread.join(5)
        for conn in self.accepted:
            conn.close()


class DnsServer:
    """A DNS server on 127.0.0.1 (UDP) answering TXT queries from `records` and A queries
    from `addresses`; NXDOMAIN for a name in neither."""

    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}
        self.addresses: dict[str, list[str]] = {}
        self.queries: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            question = query.question[0]
            name = question.name.to_text().rstrip(".").lower()
            self.queries.append(name)
            response = dns.message.make_response(query)
            values = self.records.get(name)
            addresses = self.addresses.get(name)
            if values is None and addresses is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif question.rdtype == dns.rdatatype.TXT and values:
                response.answer.append(
                    dns.rrset.from_text_list(question.name, 60, "IN", "TXT", values)
                )
            elif question.rdtype == dns.rdatatype.A and addresses:
                response.answer.append(
                    dns.rrset.from_text_list(question.name, 0, "IN", "A", addresses)
                )
            self.sock.sendto(response.to_wire(), peer)

    def __enter__(self) -> DnsServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.sock.close()


def free_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound once, then closed), below the
    kernel's ephemeral range: no other test's outgoing connection takes it as its
    source port between this check and the bind of whoever asked for it."""
    ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(1000):
        port = ephemeral // 2 + secrets.randbelow(ephemeral - ephemeral // 2)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port on 127.0.0.1 below {ephemeral}")


class CountingListener:
    """A TCP listener that counts the connections it accepts and answers 200."""

    def __init__(self, host: str, port: int = 0) -> None:
        self.sock = socket.create_server((host, port))
        self.sock.settimeout(0.2)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def url(self, host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            with conn:
                self.answer(conn)

    def answer(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno")

    def __enter__(self) -> CountingListener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
