"""FunkLoad's monitor server (`fl-monitor-ctl CONF start|startd|stop|restart|status|test`)
and the `marteau monitor` command.

The server is an XML-RPC server bound to the conf's ``[server] host`` and
``port`` with FunkLoad's methods: ``startRecord(key)`` and
``stopRecord(key)`` (it samples while at least one key is open),
``getResult(key)`` (that key's samples, as structs of strings),
``getXmlResult(key)`` (the same as ``<monitor key= ... />`` lines),
``getMonitorsConfig()`` (empty: FunkLoad's answer was pickled plot
definitions, which Marteau's report neither needs nor unpickles),
``getStatus()`` and ``stopServer()``. It keeps at most ``max_samples``
samples and stops itself after ``max_duration`` seconds.

``marteau monitor --record FILE`` is the agent without a server: it writes
samples to FILE from its start until a signal or a bound (`agent.record`);
`marteau run` starts it on the monitored hosts through Ansible.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from socketserver import ThreadingMixIn
from typing import Any
from xmlrpc.server import SimpleXMLRPCServer

import click

from marteau import exits
from marteau.errors import MarteauError
from marteau.funkload import rpc_daemon
from marteau.monitor.agent import Bounds, record, sample_loop
from marteau.monitor.conf import MonitorConf, read_conf
from marteau.monitor.sampler import PLUGINS, Sampler, check_plugins
from marteau.results.funkload_writer import format_monitor

TEST_KEY = "internal_test_monitor"
TEST_SECONDS = 2.0
log = logging.getLogger("marteau.monitor")


class MonitorServer(ThreadingMixIn, SimpleXMLRPCServer):
    """Samples while a key is open; keys map to slices of one bounded list of samples."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, conf: MonitorConf) -> None:
        try:
            super().__init__(
                (conf.host, conf.port), rpc_daemon.QuietHandler, logRequests=False, allow_none=True
            )
        except OSError as exc:
            raise MarteauError(
                f"{conf.path}: cannot serve on {conf.host}:{conf.port}: {exc.strerror or exc}"
            ) from None
        self.conf = conf
        self.sampler = Sampler(conf.plugins, conf.interface)
        self.samples: list[dict[str, str]] = []
        self.keys: dict[str, list[int | None]] = {}  # key -> [first sample, end or None]
        self.open = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        for name in ("startRecord", "stopRecord", "getResult", "getXmlResult"):
            self.register_function(getattr(self, name), name)
        for name in ("getMonitorsConfig", "getStatus", "stopServer"):
            self.register_function(getattr(self, name), name)

    def sample_until_stopped(self) -> None:
        """The sampling thread: ends the server at a bound."""
        reason = sample_loop(
            self.sampler, self.conf.host, self.conf.bounds, self.stopping, self._keep,
            active=lambda: self.open > 0,
        )  # fmt: skip
        if reason != "stopped":
            log.warning("monitor server: %s, stopping.", reason)
            self.shutdown()

    def _keep(self, sample: dict[str, str]) -> None:
        with self.lock:
            self.samples.append(sample)

    def startRecord(self, key: str) -> int:  # noqa: N802 (RPC name)
        log.debug("startRecord %s", key)
        with self.lock:
            if key not in self.keys or self.keys[key][1] is not None:
                self.open += 1
            self.keys[key] = [len(self.samples), None]
        return 1

    def stopRecord(self, key: str) -> int:  # noqa: N802 (RPC name)
        log.debug("stopRecord %s", key)
        with self.lock:
            span = self.keys.get(key)
            if span is None or span[1] is not None:
                return 0
            span[1] = len(self.samples)
            self.open -= 1
        return 1

    def getResult(self, key: str) -> list[dict[str, str]]:  # noqa: N802 (RPC name)
        with self.lock:
            span = self.keys.get(key)
            if span is None:
                return []
            return [dict(s) for s in self.samples[span[0] : span[1]]]

    def getXmlResult(self, key: str) -> str:  # noqa: N802 (RPC name)
        return "\n".join(format_monitor({"key": key, **s}) for s in self.getResult(key))

    def getMonitorsConfig(self) -> dict[str, str]:  # noqa: N802 (RPC name)
        return {}

    def getStatus(self) -> str:  # noqa: N802 (RPC name)
        return f"monitor running pid = {os.getpid()}"

    def stopServer(self) -> int:  # noqa: N802 (RPC name)
        """Stop after this answer (shutdown waits for the serving loop: another thread)."""
        log.info("stopServer request.")
        self.stopping.set()
        threading.Thread(target=self.shutdown, daemon=True).start()
        return 1


def serve_in_thread(conf: MonitorConf) -> MonitorServer:
    """A running server and its sampler in daemon threads; end it with ``stopServer()``."""
    server = MonitorServer(conf)
    threading.Thread(target=server.serve_forever, name="monitor", daemon=True).start()
    threading.Thread(target=server.sample_until_stopped, name="sampler", daemon=True).start()
    return server


def daemon(conf_path: str) -> rpc_daemon.Daemon:
    """The monitor server of the conf at `conf_path`, for `rpc_daemon.control`."""
    conf = read_conf(conf_path)

    def serve(verbose: bool, console: bool) -> int:
        server = MonitorServer(conf)
        threading.Thread(target=server.sample_until_stopped, name="sampler", daemon=True).start()
        banner = f"every {conf.bounds.interval:g}s: {' '.join(conf.plugins)}"
        try:
            return rpc_daemon.serve_foreground(server, found, log, verbose, console, banner)
        finally:
            server.stopping.set()

    def self_test(say: Any) -> None:
        """FunkLoad's `test` action: record for two seconds, print the records."""
        server = rpc_daemon.proxy(conf.url)
        server.startRecord(TEST_KEY)
        time.sleep(TEST_SECONDS)
        server.stopRecord(TEST_KEY)
        say(server.getXmlResult(TEST_KEY))

    found = rpc_daemon.Daemon(
        title="monitor server",
        conf_path=conf_path,
        url=conf.url,
        pid_path=conf.pid_path,
        log_path=conf.log_path,
        module="marteau.monitor.server",
        check=lambda: Sampler(conf.plugins, conf.interface),
        serve=serve,
        self_test=self_test,
    )
    return found


@click.command("monitor")
@click.argument("conf", metavar="CONF", required=False)
@click.argument("action", type=click.Choice(rpc_daemon.ACTIONS), required=False)
@click.option("-q", "--quiet", is_flag=True, help="Suppress console output.")
@click.option("-v", "--verbose", is_flag=True, help="Log every call (debug level).")
@click.option(
    "--record", "record_path", metavar="FILE",
    help="No server: write samples to FILE (JSON lines) until a signal or a bound.",
)  # fmt: skip
@click.option(
    "--interval",
    type=float,
    default=1.0,
    show_default=True,
    help="With --record: seconds between samples.",
)
@click.option(
    "--max-duration", type=float, default=3600.0, show_default=True,
    help="With --record: stop after this many seconds even if never signalled.",
)  # fmt: skip
@click.option(
    "--max-samples",
    type=int,
    default=100_000,
    show_default=True,
    help="With --record: stop after this many samples.",
)
@click.option(
    "--interface", help="With --record: the network interface (default: all but the loopback)."
)
@click.option(
    "--host", "host_name", help="With --record: the name the samples carry (default: this host's)."
)
@click.option("--plugins", help="With --record: space-separated plugins (default: all).")
@click.option("--pid-file", help="With --record: write the agent's pid there while it runs.")
def monitor_command(
    conf: str | None,
    action: str | None,
    quiet: bool,
    verbose: bool,
    record_path: str | None,
    interval: float,
    max_duration: float,
    max_samples: int,
    interface: str | None,
    host_name: str | None,
    plugins: str | None,
    pid_file: str | None,
) -> None:
    """Monitor this host: CPU, load, memory, network, disk (FunkLoad's fl-monitor-ctl).

    CONF ACTION controls the monitor server of CONF: start (detached), startd
    (in the foreground), stop, restart, status, or test (record two seconds
    and print them). --record FILE samples without a server.
    """
    if record_path is None:
        if conf is None or action is None:
            raise click.UsageError("give CONF and ACTION, or --record FILE")
        rpc_daemon.run_control(lambda: daemon(conf), action, quiet, verbose)
    if conf is not None:
        raise click.UsageError("--record takes no CONF or ACTION")
    try:
        names = check_plugins((plugins or "").split(), "--plugins") or list(PLUGINS)
        bounds = Bounds(interval, max_duration, max_samples).check("marteau monitor --record")
        sampler = Sampler(names, interface)
        import socket

        reason = record(record_path, host_name or socket.gethostname(), bounds, sampler, pid_file)
    except (MarteauError, OSError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exits.BAD_INPUT)
    if not quiet:
        click.echo(f"{record_path}: {reason}.")
    sys.exit(exits.OK)


if __name__ == "__main__":  # the detached server `start` runs
    monitor_command.main(prog_name="fl-monitor-ctl")
