"""The bench's side of FunkLoad's monitor servers: the conf's ``[monitor]`` hosts.

A bench conf's ``[monitor] hosts = name ...`` names monitor servers
(`fl-monitor-ctl`, Marteau's or FunkLoad's), each a section with ``port``
(required), ``host`` (default: the name) and ``description``. As FunkLoad's
bench did, each cycle calls ``startRecord("<method>:<cycle>:<cvus>")`` on
every server before its users start and ``stopRecord`` after its sleep time,
then reads the cycle's records (``getResult``); a server that does not answer
is dropped with a console line. The calls run in one thread of their own,
each bounded by `CALL_TIMEOUT`, so that a slow server never moves a cycle.
`marteau run` benches with ``--no-monitor``: there the monitored hosts are
an inventory group, sampled by the agent Ansible starts.
"""

from __future__ import annotations

import http.client
import xmlrpc.client
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from marteau.errors import MarteauError
from marteau.funkload.credentials import HOST

CALL_TIMEOUT = 5.0  # seconds one call to a monitor server may take
FINISH_TIMEOUT = 30.0  # seconds the bench waits, at its end, for the calls still queued
MAX_RECORDS = 100_000  # records kept per server and bench: a server sending more is cut


def number(path: str, section: str, key: str, value: str, kind: type) -> Any:
    """`value` as `kind`, or MarteauError naming the file, section and key."""
    try:
        return kind(value)
    except ValueError:
        raise MarteauError(f"{path}: [{section}] {key}: expected a number, got {value!r}") from None


def port_number(path: str, section: str, value: str) -> int:
    port = int(number(path, section, "port", value, int))
    if not 0 < port < 65536:
        raise MarteauError(f"{path}: [{section}] port: expected 1-65535, got {port}")
    return port


@dataclass(frozen=True)
class MonitorHost:
    """One monitored host of a bench conf's ``[monitor]`` section."""

    name: str
    host: str
    port: int
    description: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"


def bench_monitors(get: Callable[..., str], path: str) -> list[MonitorHost]:
    """The ``[monitor] hosts`` of the bench conf at `path`, in their order (none: an empty
    list); `get(section, key[, default])` reads the conf (no default: required)."""
    hosts = []
    for name in get("monitor", "hosts", "").split():
        host = get(name, "host", name).strip() or name
        if not HOST.match(host):
            raise MarteauError(f"{path}: [{name}] host: not a host name or address: {host!r}")
        port = port_number(path, name, get(name, "port").strip())
        hosts.append(MonitorHost(name, host, port, get(name, "description", "")))
    return hosts


class MonitorLink:
    """The bench's calls to its monitor servers, in a thread; `records` at the end."""

    def __init__(
        self,
        hosts: list[MonitorHost],
        say: Callable[[str], None],
        transport: Callable[[str], xmlrpc.client.Transport] | None = None,
    ) -> None:
        self.hosts = list(hosts)
        self.say = say
        self.records: list[dict[str, str]] = []
        self._transport = transport
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="monitors")
        self._pending: list[Future[None]] = []

    def _proxy(self, host: MonitorHost) -> xmlrpc.client.ServerProxy:
        transport = self._transport(host.url) if self._transport else xmlrpc.client.Transport()
        maker = transport.make_connection

        def bounded(target: tuple[str, dict[str, str]] | str) -> http.client.HTTPConnection:
            connection = maker(target)
            connection.timeout = CALL_TIMEOUT
            return connection

        # a method replaced on one instance: mypy checks it against the unbound method
        transport.make_connection = bounded  # type: ignore[method-assign, assignment]
        return xmlrpc.client.ServerProxy(host.url, transport=transport, allow_none=True)

    def _each(self, action: str, call: Callable[[xmlrpc.client.ServerProxy], object]) -> None:
        kept = []
        for host in self.hosts:
            try:
                call(self._proxy(host))
            except (OSError, xmlrpc.client.Error) as exc:
                self.say(f"* Monitor {host.name}: {action} failed ({exc}); dropped.")
            else:
                kept.append(host)
        self.hosts = kept

    def start(self, key: str) -> None:
        """Queue ``startRecord(key)`` on every server."""
        self._pending.append(self._pool.submit(self._each, "start", lambda s: s.startRecord(key)))

    def stop(self, key: str) -> None:
        """Queue ``stopRecord(key)`` then ``getResult(key)`` on every server."""

        def stop_and_read(server: xmlrpc.client.ServerProxy) -> None:
            server.stopRecord(key)
            found = server.getResult(key)
            for item in list(found)[:MAX_RECORDS] if isinstance(found, list) else []:
                if isinstance(item, dict):
                    record = {str(k): str(v) for k, v in item.items()}
                    record["key"] = key
                    self.records.append(record)

        self._pending.append(self._pool.submit(self._each, "stop", stop_and_read))

    def finish(self) -> list[dict[str, str]]:
        """Wait (bounded) for the queued calls; the records read."""
        self._pool.shutdown(wait=False, cancel_futures=False)
        for future in self._pending:
            try:
                future.result(timeout=FINISH_TIMEOUT)
            except TimeoutError:
                self.say(
                    "* Monitor: the servers did not answer in time; their last records are lost."
                )
                break
        return list(self.records)
