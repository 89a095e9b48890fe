"""The hub: users as greenlets on one event loop, their I/O, sleeps and blocking calls.

Every wait here is bounded (a few tenths of a second); the assertions on
elapsed time are loose upper bounds that a blocking implementation would
exceed many times over.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from xmlrpc.server import SimpleXMLRPCServer

import greenlet
import pytest

from marteau.engine import hub as hub_module
from marteau.engine.http import HTTPClient
from marteau.engine.hub import Hub, HubSocket, blocking, current_hub, install_sleep
from tests.servers import LocalServer, Request, ok


@pytest.fixture
def hub() -> Iterator[Hub]:
    install_sleep()
    hub = Hub()
    yield hub
    hub.close()


def gather(hub: Hub, function, count: int) -> list:
    """Run ``function(i)`` in ``count`` greenlets of ``hub``; their results in order."""

    def main() -> list:
        results: list = [None] * count
        left = [count]

        def one(i: int) -> None:
            try:
                results[i] = function(i)
            finally:
                left[0] -= 1

        for i in range(count):
            hub.spawn(one, i)
        while left[0]:
            hub.sleep(0.005)
        return results

    return hub.run(main)


def test_current_hub_only_in_hub_greenlets(hub: Hub) -> None:
    assert current_hub() is None
    assert hub.run(current_hub) is hub
    assert greenlet.greenlet(current_hub).switch() is None  # a foreign greenlet blocks as usual


def test_users_wait_for_responses_together(hub: Hub) -> None:
    def slow(request: Request) -> tuple[int, list[tuple[str, str]], bytes]:
        time.sleep(0.3)  # the server's own thread: the real sleep
        return ok("slow")

    with LocalServer(routes={"/slow": slow}) as server:

        def user(i: int) -> bytes:
            with HTTPClient(timeout=10) as http:
                return http.request("GET", server.url + "/slow", [("Host", "x")]).body

        started = time.monotonic()
        bodies = gather(hub, user, 20)
        elapsed = time.monotonic() - started
    assert bodies == [b"slow"] * 20
    assert elapsed < 3.0, f"20 requests of 0.3 s took {elapsed:.2f} s: they did not overlap"


def test_time_sleep_yields_in_hub_greenlets_and_blocks_elsewhere(hub: Hub) -> None:
    started = time.monotonic()
    gather(hub, lambda i: time.sleep(0.2), 50)
    assert time.monotonic() - started < 5.0  # 50 x 0.2 s side by side, not the 10 s in a row

    outside = [greenlet.getcurrent()]

    def plain_thread() -> None:
        outside.append(current_hub())
        time.sleep(0.01)  # the real sleep: no hub in this thread

    thread = threading.Thread(target=plain_thread)
    thread.start()
    thread.join(5)
    assert outside[1] is None


def test_blocking_runs_in_a_thread_and_raises_its_exception(hub: Hub) -> None:
    real_sleep = hub_module._real_sleep  # time.sleep before install_sleep
    main_thread = threading.get_ident()

    def work(i: int) -> int:
        real_sleep(0.2)  # really blocks, so it must not run on the hub's thread
        assert threading.get_ident() != main_thread
        return i * 2

    started = time.monotonic()
    assert gather(hub, lambda i: blocking(work, i), 20) == [i * 2 for i in range(20)]
    assert time.monotonic() - started < 2.0

    def fails() -> None:
        raise ValueError("from the thread")

    with pytest.raises(ValueError, match="from the thread"):
        hub.run(blocking, fails)
    assert blocking(threading.get_ident) == main_thread  # outside the hub: a plain call


def test_xmlrpc_from_a_hub_greenlet_does_not_hold_the_hub(hub: Hub) -> None:
    from xmlrpc.client import ServerProxy

    server = SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False)
    server.register_function(lambda x: x + 1, "incr")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        ticks = []

        def ticker(i: int) -> None:
            for _ in range(5):
                ticks.append(time.monotonic())
                time.sleep(0.01)

        def call(i: int) -> int:
            if i == 0:
                ticker(i)
                return 0
            return blocking(ServerProxy(url).incr, i)

        assert gather(hub, call, 4) == [0, 2, 3, 4]
        assert len(ticks) == 5
    finally:
        server.shutdown()
        server.server_close()


def test_idle_connection_closed_by_the_server_while_the_user_sleeps(hub: Hub) -> None:
    """The reader fires with nobody waiting: it unregisters; the next request retries once."""
    accepted = []
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        for n in range(2):
            conn, _ = listener.accept()
            accepted.append(n)
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n" + str(n).encode())
            if n == 0:
                conn.close()  # an idle keep-alive connection, closed by the server
            else:
                conn.recv(65536)
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    http = HTTPClient(timeout=5)

    def user() -> list[bytes]:
        first = http.request("GET", f"http://127.0.0.1:{port}/").body
        conn = next(iter(http._conns.values()))
        assert isinstance(conn.sock, HubSocket) and conn.sock.reading
        deadline = time.monotonic() + 10  # the EOF arrives while nobody waits on the socket
        while conn.sock.reading and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not conn.sock.reading  # unregistered, no busy loop on the EOF
        second = http.request("GET", f"http://127.0.0.1:{port}/").body
        return [first, second]

    try:
        assert hub.run(user) == [b"0", b"1"]
        assert accepted == [0, 1]
    finally:
        http.close()
        listener.close()
        thread.join(5)


def test_a_connection_is_not_shared_between_blocking_and_hub_use(hub: Hub) -> None:
    with LocalServer(routes={"/ok": lambda request: ok("OK")}) as server:
        http = HTTPClient(timeout=5)
        url = server.url + "/ok"
        http.request("GET", url, [("Host", "x")])
        blocking_conn = next(iter(http._conns.values()))
        hub.run(http.request, "GET", url, [("Host", "x")])
        hub_conn = next(iter(http._conns.values()))
        assert hub_conn is not blocking_conn and isinstance(hub_conn.sock, HubSocket)
        assert http.request("GET", url, [("Host", "x")]).status == 200
        assert not isinstance(next(iter(http._conns.values())).sock, HubSocket)
        http.close()


def listener() -> socket.socket:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # its peers take little at once
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    return server


def test_requests_of_one_turn_go_out_together_and_in_order(hub: Hub) -> None:
    """Each user's request is sent at the end of the loop's turn, whole and in order,
    a large one (past the socket's buffer) as its peer takes it."""
    server = listener()
    sizes = [10, 1000, 60_000]
    got: dict[int, bytes] = {}

    def serve() -> None:
        peers = [server.accept()[0] for _ in sizes]
        for peer in peers:
            peer.settimeout(10)
            data = b""
            while not data.endswith(b"\n"):
                data += peer.recv(65536)
            got[data[0]] = data
            peer.sendall(b"ok:%d" % len(data))
            peer.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    queued: list[int] = []
    partial: list[int] = []
    connected: list[greenlet.greenlet] = []

    def all_connected() -> None:
        """Park until the last user connected; then all go on in one loop turn
        (however slow a busy machine makes the connects)."""
        connected.append(greenlet.getcurrent())
        if len(connected) == len(sizes):
            for waiting in connected:
                hub.loop.call_soon(waiting.switch)
        hub.switch()

    def user(i: int) -> bytes:
        sock = HubSocket.connect(hub, server.getsockname(), 10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        all_connected()  # the three sends below are in one turn
        sock.sendall(bytes([i]) + b"x" * (sizes[i] - 2) + b"\n")
        queued.append(len(hub._sends))
        hub.pass_turn()  # the batch was sent: what the socket did not take waits for a writer
        if sock.writing:
            partial.append(i)
        try:
            return sock.recv(100)
        finally:
            sock.close()

    assert gather(hub, user, len(sizes)) == [b"ok:%d" % size for size in sizes]
    thread.join(10)
    server.close()
    assert max(queued) == len(sizes)  # one batch
    assert partial == [2]
    assert [len(got[i]) for i in range(len(sizes))] == sizes
    assert got[2] == b"\x02" + b"x" * 59_998 + b"\n"


def test_a_failed_deferred_send_is_raised_by_the_next_recv(hub: Hub) -> None:
    """The server reset the connection: the user's recv raises the send's error."""
    server = listener()

    def user() -> None:
        sock = HubSocket.connect(hub, server.getsockname(), 10)
        peer = server.accept()[0]
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        peer.close()  # RST
        hub.sleep(0.1)
        try:
            sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
            with pytest.raises((ConnectionResetError, BrokenPipeError)):
                sock.recv(100)
            assert sock.error is None and sock.pending is None
        finally:
            sock.close()

    hub.run(user)
    server.close()
