"""The hub: one event loop per process that runs the virtual users as greenlets.

A virtual user runs synchronous FunkLoad code (``self.get(url)`` blocks and
returns a response).  In bench mode each user is a `HubGreenlet`, and one
event loop (uvloop when it is importable, else asyncio) runs in the greenlet
that called `Hub.run`, the *hub greenlet*.  A user runs until it would block,
then switches to the hub; the loop switches back when what it waits for is
ready.  There is one OS thread per process: no GIL hand-off, no thread
wake-up per response, and an idle user costs a greenlet and its socket.

What blocks, and how it yields to the hub (only when called from a hub
greenlet; anywhere else everything blocks as usual):

* HTTP (`marteau.engine.http.HTTPClient`): non-blocking sockets; a socket's
  reader stays registered with the loop while the connection is in use and
  wakes the greenlet waiting on it (`HubSocket`).
* ``time.sleep`` (FunkLoad's ``sleep()``, ``sleep_time`` between tests,
  and user code): `install_sleep` replaces ``time.sleep`` with a function
  that sleeps on a loop timer in a hub greenlet and calls the real sleep
  anywhere else.
* Other blocking calls (FunkLoad's ``xmlrpc()`` through
  ``xmlrpc.client``, or a library of the test's own): `blocking` runs them
  in a thread of the hub's pool and switches to the hub until they end.
  User code that blocks the hub some other way (``requests``, a database
  driver) still works but stalls every user of the process meanwhile; the
  runner's watchdog says so on the console (`LAG_WARNING`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import os
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import greenlet

from marteau.engine.greenlets import HubGreenlet

__all__ = ["Hub", "HubGreenlet", "HubSocket", "blocking", "current_hub", "install_sleep"]

T = TypeVar("T")
LAG_WARNING = 0.1  # seconds the loop may be held by user code before a warning
BLOCKING_THREADS = 256  # threads for `blocking` calls (created on demand)
DEFERRED_SEND = 65536  # bytes: a request up to this size is sent at the end of the loop's turn

getcurrent = greenlet.getcurrent
_real_sleep = time.sleep
_WOULD_READ = (BlockingIOError, ssl.SSLWantReadError)
_WOULD_WRITE = (BlockingIOError, ssl.SSLWantWriteError)


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when it is importable, else asyncio's default loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a node dependency
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def current_hub() -> Hub | None:
    """The hub of the calling greenlet, or None (a plain thread: block as usual)."""
    return getattr(getcurrent(), "hub", None)


class Hub:
    """An event loop and the greenlets it runs; everything happens in one thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop or new_loop()
        self.greenlet: greenlet.greenlet | None = None  # runs the loop, while `run` runs
        self.switches = 0  # times a greenlet gave the loop the hand (see `pass_turn`)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._sends: list[HubSocket] = []  # sockets with a request to send at this turn's end

    # -- running ------------------------------------------------------------------------

    def spawn(self, function: Callable[..., Any], *args: Any) -> HubGreenlet:
        """Start ``function(*args)`` in a new greenlet at the loop's next turn."""
        child = HubGreenlet(function, parent=self.greenlet)
        child.hub = self
        self.loop.call_soon(child.switch, *args)
        return child

    def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run the loop until ``function(*args)``, run in a hub greenlet, returns.

        Can be called again (the loop and its registered sockets persist).
        The exception of ``function`` is raised here.
        """
        loop = self.loop
        outcome: list[tuple[bool, Any]] = []  # (True, the result) or (False, the exception)

        def main() -> None:
            try:
                outcome.append((True, function(*args)))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                outcome.append((False, exc))
            finally:
                loop.stop()

        previous = self.greenlet
        self.greenlet = getcurrent()
        try:
            self.spawn(main)
            loop.run_forever()
        finally:
            self.greenlet = previous
        if not outcome:  # pragma: no cover - the loop stopped by other means
            raise RuntimeError("hub stopped before its main greenlet ended")
        ok, value = outcome[0]
        if not ok:
            raise value
        return cast(T, value)

    def close(self) -> None:
        """Close the loop and the thread pool (do not wait for blocking calls)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self.loop.close()

    # -- sending ------------------------------------------------------------------------

    def queue_send(self, sock: HubSocket) -> None:
        """Send ``sock.pending`` with the other requests of this loop turn (`HubSocket.sendall`)."""
        if not self._sends:
            self.loop.call_soon(self._flush_sends)
        self._sends.append(sock)

    def _flush_sends(self) -> None:
        batch, self._sends = self._sends, []
        for sock in batch:
            sock.flush()

    # -- waiting (from a hub greenlet) --------------------------------------------------

    def switch(self) -> Any:
        """Give the loop the hand until someone switches back to this greenlet."""
        assert self.greenlet is not None, "the hub is not running"
        self.switches += 1
        return self.greenlet.switch()

    def wait(self) -> Any:
        """`switch`, as a user parked in a network or blocking wait (`HubGreenlet.waits`)."""
        me = cast(HubGreenlet, getcurrent())
        me.waits += 1
        try:
            return self.switch()
        finally:
            me.waits += 1

    def pass_turn(self) -> None:
        """Let the loop run once (its timers, the other greenlets), then go on."""
        self.loop.call_soon(getcurrent().switch)
        self.switch()

    def sleep(self, seconds: float) -> None:
        """``time.sleep`` for a hub greenlet: a loop timer."""
        handle = self.loop.call_later(max(seconds, 0.0), getcurrent().switch)
        try:
            self.switch()
        finally:
            handle.cancel()

    def blocking(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking ``function(*args)`` in a thread; this greenlet waits for it."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                BLOCKING_THREADS, thread_name_prefix="marteau-blocking"
            )
        future = self.loop.run_in_executor(self._pool, function, *args)
        me = getcurrent()

        def done(_: Any) -> None:
            me.switch()

        future.add_done_callback(done)
        try:
            self.wait()
        except BaseException:
            future.remove_done_callback(done)
            raise
        return future.result()


def blocking(function: Callable[..., T], *args: Any) -> T:
    """Call ``function(*args)``; from a hub greenlet, in a thread so that the hub goes on.

    For blocking calls the hub cannot see (``xmlrpc.client``, a database
    driver, ``subprocess``): wrap them in a test as ``blocking(call, args...)``.
    """
    hub = current_hub()
    if hub is None:
        return function(*args)
    return hub.blocking(function, *args)


def _hub_sleep(seconds: float) -> None:
    """``time.sleep`` replacement: a loop timer in a hub greenlet, else the real sleep."""
    hub = getattr(getcurrent(), "hub", None)
    if hub is None:
        _real_sleep(seconds)
    else:
        hub.sleep(seconds)


def install_sleep() -> None:
    """Make ``time.sleep`` yield to the hub when a hub greenlet calls it (idempotent)."""
    # typeshed's time.sleep also takes SupportsIndex; the replacement passes any number on
    time.sleep = _hub_sleep  # type: ignore[assignment]


# What getaddrinfo gives as an address: (host, port) or (host, port, flowinfo, scope_id).
_SocketAddress = tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes]


class HubSocket:
    """A non-blocking socket used from hub greenlets with the interface the client needs.

    ``recv``, ``recv_into`` and ``sendall`` switch to the hub instead of
    blocking.  The reader stays registered with the loop between requests
    (no epoll add/remove per request); when it fires while nobody waits (the
    server closed an idle connection, say), it unregisters itself and the
    next wait registers it again.  After a send on a plain socket the next
    receive waits for readability first, saving a failed ``recv`` call.

    Cheaper wake-ups: on a plain socket a request of up to `DEFERRED_SEND`
    bytes is not sent at once but at the end of the loop's turn, with the
    requests of the other users woken in the same turn (`Hub.queue_send`),
    so that the target, woken by the first, finds the rest without a
    wake-up each; its user waits for the response meanwhile, and a send
    that fails is raised by its next ``recv`` as it would have been by
    ``sendall``. Bare client against nginx, 10 users, 2 rounds each on a
    loaded machine (load average 3.6-5): system CPU per request 7.5-9.5 µs
    sent at once, 5.7-6.5 µs deferred; at 100 users 5.4-6.3 and 4.6-6.2.

    Measured against nginx on the other core (HTTPClient alone, 10 and 100
    users, 3 rounds): CPU per request with the reader kept registered,
    uvloop 17.6-20.0 µs (10 users) and 12.4-12.7 µs (100 users), asyncio
    18.5-21.4 and 12.8-15.0; with ``add_reader``/``remove_reader`` around
    every wait, uvloop 24.7-26.3 and 17.3-17.8, asyncio 33.1-34.3 and
    20.9-26.3.  The prototype's asyncio Protocol with a push parser cost
    about as much as the kept reader, and would have needed a second parser.
    """

    __slots__ = (
        "sock",
        "fd",
        "hub",
        "loop",
        "timeout",
        "waiter",
        "reading",
        "sent",
        "tls",
        "pending",
        "writing",
        "error",
    )

    def __init__(self, sock: socket.socket, hub: Hub, timeout: float | None) -> None:
        sock.setblocking(False)
        self.sock: socket.socket = sock
        self.fd = sock.fileno()
        self.hub = hub
        self.loop = hub.loop
        self.timeout = timeout
        self.waiter: greenlet.greenlet | None = None
        self.reading = False
        self.sent = False
        self.tls = False
        self.pending: bytes | memoryview | None = None  # a deferred send, not yet all sent
        self.writing = False  # a writer is registered to send the rest of `pending`
        self.error: OSError | None = None  # a deferred send's failure, for the next recv

    # -- opening ------------------------------------------------------------------------

    @classmethod
    def connect(cls, hub: Hub, address: tuple[str, int], timeout: float | None) -> HubSocket:
        """``socket.create_connection`` without blocking the hub (name lookup in a thread)."""
        host, port = address
        infos: list[tuple[int, _SocketAddress]]
        try:
            infos = [(_family(host), (host, port))]
        except ValueError:
            found = hub.blocking(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
            infos = [(family, addr) for family, _, _, _, addr in found]
        error: OSError | None = None
        for family, addr in infos:
            sock = socket.socket(family, socket.SOCK_STREAM)
            hsock = cls(sock, hub, timeout)
            try:
                code = sock.connect_ex(addr)
                if code in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
                    hsock._wait_writable()
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    raise OSError(code, os.strerror(code))
                return hsock
            except OSError as exc:
                hsock.close()
                error = exc
            except BaseException:
                hsock.close()
                raise
        raise error or OSError("getaddrinfo returned an empty list")

    def start_tls(
        self, context: ssl.SSLContext, server_hostname: str, session: ssl.SSLSession | None
    ) -> None:
        """Wrap in TLS and do the handshake without blocking the hub."""
        self.sock = context.wrap_socket(
            self.sock, server_hostname=server_hostname, do_handshake_on_connect=False
        )
        self.tls = True
        if session is not None:
            with contextlib.suppress(ValueError):  # a session of another context: full handshake
                self.sock.session = session
        while True:
            try:
                self.sock.do_handshake()
                return
            except ssl.SSLWantReadError:
                self._wait_readable()
            except ssl.SSLWantWriteError:
                self._wait_writable()

    @property
    def session(self) -> ssl.SSLSession | None:
        return self.sock.session if self.tls else None  # type: ignore[attr-defined]

    def setsockopt(self, *args: Any) -> None:
        self.sock.setsockopt(*args)

    def close(self) -> None:
        self.pending = None
        if self.reading or self.writing:
            if not self.loop.is_closed():
                if self.reading:
                    self.loop.remove_reader(self.fd)
                if self.writing:
                    self.loop.remove_writer(self.fd)
            self.reading = self.writing = False
        self.sock.close()

    # -- I/O ----------------------------------------------------------------------------

    def sendall(self, data: bytes) -> None:
        if not self.tls and len(data) <= DEFERRED_SEND:
            if self.pending is None:
                self.pending = data
                self.sent = True
                self.hub.queue_send(self)
                return
            self._send_now()  # a second send (a large body): in order, at once
        elif self.pending is not None:
            self._send_now()
        sock = self.sock
        self.sent = not self.tls
        try:
            count = sock.send(data)
        except _WOULD_WRITE:
            count = 0
        except ssl.SSLWantReadError:  # pragma: no cover - TLS renegotiation
            count = 0
            self._wait_readable()
        if count == len(data):
            return
        view = memoryview(data)[count:]
        while view:
            try:
                sent = sock.send(view)  # not inside the slice: mypyc evaluates its start twice
            except _WOULD_WRITE:
                self._wait_writable()
            except ssl.SSLWantReadError:  # pragma: no cover - TLS renegotiation
                self._wait_readable()
            else:
                view = view[sent:]

    def recv(self, size: int) -> bytes:
        if self.sent:
            self.sent = False
            self._wait_readable()
        if self.error is not None:
            self._raise_error()
        sock = self.sock
        while True:
            try:
                return sock.recv(size)
            except _WOULD_READ:
                self._wait_readable()
            except ssl.SSLWantWriteError:  # pragma: no cover - TLS renegotiation
                self._wait_writable()

    def recv_into(self, buffer: memoryview, size: int) -> int:
        if self.sent:
            self.sent = False
            self._wait_readable()
        if self.error is not None:
            self._raise_error()
        sock = self.sock
        while True:
            try:
                return sock.recv_into(buffer, size)
            except _WOULD_READ:
                self._wait_readable()
            except ssl.SSLWantWriteError:  # pragma: no cover - TLS renegotiation
                self._wait_writable()

    # -- deferred sends -----------------------------------------------------------------

    def flush(self) -> None:
        """Send what is pending (the hub's end of turn, or a writer's callback).

        What the socket does not take now is sent when it is writable; a
        failure wakes the user waiting for the response, whose ``recv``
        raises it.
        """
        data = self.pending
        if data is None:
            return
        try:
            count = self.sock.send(data)
        except BlockingIOError:
            count = 0
        except OSError as exc:
            self.pending = None
            self._stop_writing()
            self.error = exc
            waiter = self.waiter
            if waiter is not None:
                self.waiter = None
                waiter.switch()
            return
        if count == len(data):
            self.pending = None
            self._stop_writing()
            return
        self.pending = memoryview(data)[count:]
        if not self.writing:
            self.writing = True
            self.loop.add_writer(self.fd, self.flush)

    def _stop_writing(self) -> None:
        if self.writing:
            self.writing = False
            self.loop.remove_writer(self.fd)

    def _send_now(self) -> None:
        """A pending send, finished before anything else is sent (from the user)."""
        data = self.pending
        assert data is not None
        self.pending = None
        self._stop_writing()
        view = memoryview(data)
        while view:
            try:
                sent = self.sock.send(view)  # not inside the slice (`sendall`)
            except BlockingIOError:
                self._wait_writable()
            else:
                view = view[sent:]

    def _raise_error(self) -> None:
        error, self.error = self.error, None
        assert error is not None
        raise error

    # -- waiting ------------------------------------------------------------------------

    def _on_readable(self) -> None:
        waiter = self.waiter
        if waiter is None:  # nobody waits: stop watching until the next wait
            self.reading = False
            self.loop.remove_reader(self.fd)
            return
        self.waiter = None
        waiter.switch()

    def _on_writable(self) -> None:
        waiter = self.waiter
        self.waiter = None
        if waiter is not None:
            waiter.switch()

    def _expire(self, waiter: greenlet.greenlet) -> None:
        if self.waiter is waiter:
            self.waiter = None
            waiter.throw(TimeoutError("timed out"))

    def _park(self) -> None:
        self.waiter = getcurrent()
        try:
            if self.timeout is None:
                self.hub.wait()
            else:
                handle = self.loop.call_later(self.timeout, self._expire, self.waiter)
                try:
                    self.hub.wait()
                finally:
                    handle.cancel()
        finally:
            self.waiter = None

    def _wait_readable(self) -> None:
        if not self.reading:
            self.reading = True
            self.loop.add_reader(self.fd, self._on_readable)
        self._park()

    def _wait_writable(self) -> None:
        self.loop.add_writer(self.fd, self._on_writable)
        try:
            self._park()
        finally:
            self.loop.remove_writer(self.fd)


def _family(host: str) -> int:
    """The address family of an IP literal; ValueError for a name."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return family
        except OSError:
            continue
    raise ValueError(host)
