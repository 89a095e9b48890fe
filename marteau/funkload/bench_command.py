"""``marteau bench FILE Class.method`` (alias ``fl-run-bench``): FunkLoad's bench runner.

This module is the command line of a bench: FunkLoad's options (same names,
same ``<section>_<key>`` option attributes; the shared ones in
`marteau.funkload.bench_options`), and Marteau's own: the start barrier,
the credential service, the allowed hosts, the safety fuse, the live
metrics.  `marteau.funkload.bench_setup` turns the test and its conf into
the engine's `BenchSetup`; the engine (`marteau.engine.controller`,
`marteau.engine.runner`) does the rest.

Bad input (conf, cycles, test file, class, method, arguments) is a
`MarteauError`: ``Error: <message>`` on stderr and exit status 2.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import sys
import tempfile
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import click

from marteau import exits
from marteau.engine.bench_contract import BenchSetup, Outcome
from marteau.engine.fuse import FuseLimits, fuse_limits, fuse_options
from marteau.engine.metrics import metrics_options
from marteau.errors import MarteauError
from marteau.funkload.bench_options import (
    allow_host_option,
    install_guard,
    make_options,
    max_users_option,
    rates_options,
    strict_host_option,
)
from marteau.funkload.bench_setup import prepare


def _fresh_start_file(path: str) -> str:
    """The absolute start file path, with any instant or marker a previous bench left removed."""
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        raise MarteauError(f"--start-file {path}: {directory} is not a writable directory")
    for stale in (path, path + ".ready"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(stale)
    return path


@click.command(
    "bench",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=exits.HELP,
)
@click.argument("arguments", nargs=-1, metavar="FILE Class.method")
@click.option("--config", metavar="PATH", help="Alternative conf file (default ./<Class>.conf).")
@click.option("-l", "--label", help="Stored as config 'label' and in the report name.")
@click.option("-u", "--url", "main_url", metavar="URL", help="Override [main] url.")
@click.option("-c", "--cycles", "bench_cycles", metavar="5:10:20", help="Users per cycle.")
@rates_options("bench_")
@click.option("-D", "--duration", "bench_duration", metavar="S", help="Seconds per cycle.")
@click.option("-m", "--sleep-time-min", "bench_sleep_time_min", metavar="S", help="Min think time.")
@click.option("-M", "--sleep-time-max", "bench_sleep_time_max", metavar="S", help="Max think time.")
@click.option(
    "-t", "--test-sleep-time", "bench_sleep_time", metavar="S", help="Sleep between tests."
)
@click.option(
    "-s", "--startup-delay", "bench_startup_delay", metavar="S", help="Delay between user starts."
)
@click.option("-f", "--as-fast-as-possible", is_flag=True, help="Same as -m0 -M0 -t0.")
@click.option("--simple-fetch", "bench_simple_fetch", is_flag=True, help="Do not fetch img/css.")
@click.option("--accept-invalid-links", is_flag=True, help="Do not fail on broken img/css.")
@click.option("--no-color", is_flag=True, help="Monochrome output.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Worker processes (default: one per CPU core); users are split by thread id.",
)
@click.option(
    "--start-at",
    type=float,
    metavar="EPOCH",
    help="Start cycle 0 at this instant (epoch seconds), the same on every node.",
)
@max_users_option
@click.option(
    "--start-file",
    metavar="PATH",
    help="Arm (hooks run, users built), write PATH.ready, then start at the epoch "
    "instant written to PATH (a start barrier for several nodes).",
)
@click.option(
    "--start-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=300.0,
    show_default=True,
    metavar="S",
    help="With --start-file: give up (exit 4) when PATH holds no instant after S seconds.",
)
@click.option(
    "--credentials",
    "credentials_conf",
    metavar="CONF",
    help="Serve the logins of this credential server conf (fl-credential-ctl's) to the "
    "bench's users at the conf's host:port, for the bench's duration.",
)
@click.option(
    "--credential-slice",
    metavar="I/N",
    help="With --credentials: serve only slice I of N (every N-th login from the I-th, "
    "0 <= I < N): the nodes of a run never hand out the same login.",
)
@click.option(
    "--rate-share",
    metavar="K/N",
    help="With --rates: this node is node K (from 0) of N running the rates; it starts "
    "1/N of them, interleaved with the other nodes' (marteau run passes it).",
)
@click.option(
    "--no-monitor",
    is_flag=True,
    help="Leave the conf's [monitor] hosts alone (FunkLoad's distributed workers did: "
    "`marteau run` monitors its own inventory group instead).",
)
@fuse_options
@metrics_options
@allow_host_option
@strict_host_option
def bench_command(
    arguments: tuple[str, ...],
    workers: int | None,
    start_at: float | None,
    max_users: int | None,
    start_file: str | None,
    start_timeout: float,
    rate_share: str | None,
    allow_hosts: tuple[str, ...],
    strict_host: bool,
    fuse_error_rate: float | None,
    fuse_median: float | None,
    fuse_window: float | None,
    credentials_conf: str | None,
    credential_slice: str | None,
    no_monitor: bool,
    metrics_port: int | None,
    metrics_host: str,
    **values: Any,
) -> None:
    """Bench FILE's Class.method in cycles of concurrent users, as fl-run-bench."""
    try:
        if len(arguments) != 2:
            got = " ".join(arguments) or "nothing"
            raise MarteauError(f"expected 2 arguments, FILE Class.method; got {got}")
        if start_at is not None and start_file is not None:
            raise MarteauError("--start-at and --start-file: give one start instant, not two")
        from marteau.engine.arrivals import parse_share

        share = parse_share(rate_share) if rate_share else (0, 1)
        options = make_options(**values)
        options.marteau_guard = install_guard(allow_hosts, strict_host)
        with _credential_service(credentials_conf, credential_slice, options) as served:
            setup = prepare(
                arguments[0],
                arguments[1],
                options,
                workers,
                start_at,
                max_users or 0,
                share,
                monitor=not no_monitor,
            )
            if served:
                setup.header.append(served)
            if allow_hosts:
                _allowed_hosts(setup, options.marteau_guard, strict_host)
            if start_file is not None:
                setup.start_file = _fresh_start_file(start_file)
                setup.start_timeout = start_timeout
                setup.header.append(f"* Start at: the instant written to {setup.start_file}")
            fuse = fuse_limits(fuse_error_rate, fuse_median, fuse_window)
            if fuse.enabled:
                _arm_fuse(setup, fuse)
            outcome = _run(setup, options, metrics_host, metrics_port)
    except MarteauError as exc:
        sys.stdout.flush()
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exits.BAD_INPUT)
    sys.exit(outcome.exit_code)


def _allowed_hosts(setup: BenchSetup, guard: Any, strict_host: bool) -> None:
    """`--allow-host` (and `--strict-host`) in the Configuration lines and the results."""
    strict = " (Host headers checked: --strict-host)" if strict_host else ""
    setup.header.append(f"* Allowed hosts: {guard.describe()}{strict}")
    setup.config["marteau:allowed_hosts"] = guard.listing
    if strict_host:
        setup.config["marteau:strict_host"] = "true"


def _arm_fuse(setup: BenchSetup, fuse: FuseLimits) -> None:
    """The safety fuse on: every worker probes, the parent checks, the results say so."""
    setup.fuse = fuse
    setup.specs = [dataclasses.replace(spec, fuse=True) for spec in setup.specs]
    setup.header.append(f"* Safety fuse: {fuse.describe()}")
    setup.config["marteau:fuse"] = fuse.describe()


def _run(
    setup: BenchSetup, options: SimpleNamespace, metrics_host: str, metrics_port: int | None
) -> Outcome:
    """Run the bench, its live figures published on `--metrics-port` while it runs."""
    from marteau.engine.console import Console
    from marteau.engine.controller import BenchController
    from marteau.engine.figures import LiveFigures
    from marteau.engine.metrics import start_exporter

    figures = LiveFigures()
    exporter = start_exporter(figures, metrics_host, metrics_port)
    if exporter is not None:
        setup.header.append(f"* Live metrics: {exporter.url}")
    try:
        console = Console(color=not options.no_color)
        published = figures if exporter is not None else None
        return BenchController(setup, console, published, platform.node()).run()
    finally:
        if exporter is not None:
            exporter.close()


@contextlib.contextmanager
def _credential_service(
    conf_path: str | None, slice_text: str | None, options: SimpleNamespace
) -> Iterator[str]:
    """`--credentials`: the conf's logins (or a slice of them) served on a Unix socket
    to this process and its workers (set before the test is imported), for the
    bench's duration; yields the header line ("" without it)."""
    if conf_path is None:
        if slice_text is not None:
            raise MarteauError("--credential-slice needs --credentials")
        yield ""
        return
    from marteau.funkload.credential_server import serve_in_thread
    from marteau.funkload.credentials import read_conf
    from marteau.funkload.utils import serve_credentials_locally

    index, count = _slice(slice_text or "0/1")
    conf = read_conf(conf_path)
    credentials = conf.load().slice(index, count)
    with tempfile.TemporaryDirectory(prefix="marteau-cred-") as directory:
        socket_path = os.path.join(directory, "rpc")
        server = serve_in_thread(conf, credentials, socket_path)
        options.marteau_credentials = (conf.host, conf.port, socket_path)
        serve_credentials_locally(*options.marteau_credentials)
        logins = len(credentials.groups.get(None, []))
        try:
            yield f"* Credentials: {conf.url} (slice {index}/{count}: {logins} logins), served by the bench"
        finally:
            serve_credentials_locally(conf.host, conf.port, None)
            server.shutdown()
            server.server_close()


def _slice(text: str) -> tuple[int, int]:
    index, sep, count = text.partition("/")
    if not (sep and index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise MarteauError(f"--credential-slice {text!r}: expected I/N with 0 <= I < N")
    return int(index), int(count)


if __name__ == "__main__":  # pragma: no cover
    bench_command.main(prog_name="fl-run-bench")
