"""``marteau bench FILE Class.method`` (alias ``fl-run-bench``): FunkLoad's bench runner.

This module is the FunkLoad side of a bench: the command line (FunkLoad's
options, same names, same ``<section>_<key>`` option attributes), importing
the test, the main ``<method>:0:0:0`` instance whose conf values and hooks
drive the bench, and the ``<config>`` entries of the result file.  The
engine (`marteau.engine.controller`, `marteau.engine.runner`) does the rest.

Bad input (conf, cycles, test file, class, method, arguments) is a
`MarteauError`: ``Error: <message>`` on stderr and exit status 2.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import math
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import click

from marteau import __version__, exits
from marteau.engine.fuse import fuse_limits, fuse_options
from marteau.engine.metrics import metrics_options
from marteau.errors import MarteauError

# FunkLoad's optparse dests a test may read from its options object.
_FUNKLOAD_OPTION_DEFAULTS: dict[str, Any] = {
    "config": None,
    "label": None,
    "main_url": None,
    "bench_cycles": None,
    "bench_rates": None,
    "bench_arrivals": None,
    "bench_ramp": None,
    "bench_duration": None,
    "bench_sleep_time_min": None,
    "bench_sleep_time_max": None,
    "bench_sleep_time": None,
    "bench_startup_delay": None,
    "bench_simple_fetch": False,
    "bench_runner_class": None,
    "accept_invalid_links": False,
    "no_color": False,
    "debugserver": False,
    "debugport": 8000,
    "distribute": False,
    "is_distributed": False,
    "feedback": False,
    "failfast": False,
    "debug_level": 0,
    "marteau_sink": None,
    "marteau_guard": None,  # the --allow-host guard, installed again in each worker
    "marteau_credentials": None,  # (host, port, Unix socket) of --credentials, for each worker
}

# option attribute -> how the user spelled it (for error messages)
_CLI_NAMES = {
    "bench_cycles": "--cycles",
    "bench_rates": "--rates",
    "bench_arrivals": "--arrivals",
    "bench_ramp": "--ramp",
    "bench_duration": "--duration",
    "bench_sleep_time_min": "--sleep-time-min",
    "bench_sleep_time_max": "--sleep-time-max",
    "bench_sleep_time": "--test-sleep-time",
    "bench_startup_delay": "--startup-delay",
}


allow_host_option = click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="HOST[:PORT]",
    help="Refuse requests to any other host (repeatable); HOST alone allows every port.",
)
"""`--allow-host`, the same on every command that runs FunkLoad tests (bench and test)."""

strict_host_option = click.option(
    "--strict-host",
    is_flag=True,
    help="With --allow-host: refuse a request whose Host header names another host than its URL.",
)
"""`--strict-host` (bench and test): shared hosting behind an allowed address stays out of reach."""


max_users_option = click.option(
    "--max-users",
    type=click.IntRange(min=1),
    metavar="N",
    help="At most N users per cycle (on each node), whatever the conf or the test's code asks; "
    "with --rates, the pool of users the arrivals take from.",
)
"""`--max-users` (bench, run): a quota the node enforces where users are built."""


def rates_options(prefix: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`-r/--rates`, `--arrivals` and `--ramp` (bench, run), their values in parameters
    named ``<prefix>rates``, ``<prefix>arrivals`` and ``<prefix>ramp``."""
    options = (
        click.option(
            "-r",
            "--rates",
            f"{prefix}rates",
            metavar="50:100:200",
            help="The open model: tests started per second in each cycle, for the whole "
            "bench (split across worker processes and nodes), instead of users per cycle.",
        ),
        click.option(
            "--arrivals",
            f"{prefix}arrivals",
            type=click.Choice(["constant", "poisson"]),
            help="With --rates: arrivals at a constant interval (default) or Poisson arrivals.",
        ),
        click.option(
            "--ramp",
            f"{prefix}ramp",
            type=click.FloatRange(min=0),
            metavar="S",
            help="With --rates: ramp linearly from the previous cycle's rate (0 before the "
            "first) over S seconds before each window opens (not recorded).",
        ),
    )

    def apply(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


# Seconds of iterations at a cycle's rate that the default pool of users can hold
# at once (a target answering within this never exhausts it), and its bounds.
POOL_SECONDS = 10.0
POOL_MIN, POOL_MAX = 10, 1000


def default_pool(rates: tuple[float, ...], nodes: int) -> int:
    """The open model's users per node when --max-users does not say: enough for
    `POOL_SECONDS` of the node's highest rate, within `POOL_MIN`..`POOL_MAX`."""
    wanted = math.ceil(max(rates) / nodes * POOL_SECONDS)
    return min(max(wanted, POOL_MIN), POOL_MAX)


def install_guard(allow_hosts: tuple[str, ...], strict_host: bool) -> Any:
    """The `--allow-host` guard, installed; None without it (`--strict-host` needs it)."""
    if strict_host and not allow_hosts:
        raise MarteauError("--strict-host needs --allow-host (the hosts it checks against)")
    if not allow_hosts:
        return None
    from marteau.engine.guard import guard_process

    return guard_process(allow_hosts, strict_host)


def make_options(**values: Any) -> SimpleNamespace:
    """FunkLoad's options object: every bench dest, CLI values as strings."""
    options = dict(_FUNKLOAD_OPTION_DEFAULTS)
    options.update({key: value for key, value in values.items() if value is not None})
    if options.pop("as_fast_as_possible", False):
        for key in ("bench_sleep_time_min", "bench_sleep_time_max", "bench_sleep_time"):
            options[key] = "0"
    return SimpleNamespace(**options)


def load_test_factory(arg: tuple[str, str, SimpleNamespace]) -> Any:
    """In a worker: import the test and return ``make(meta_name, sink) -> instance``.

    Top-level so that a spawned worker process can unpickle it.
    """
    from marteau.funkload.loader import import_test_module, resolve_test

    test_arg, spec, options = arg
    if options.marteau_guard is not None:  # before the test's own import-time code
        from marteau.engine import guard

        guard.install(options.marteau_guard)
    if options.marteau_credentials is not None:
        from marteau.funkload.utils import serve_credentials_locally

        serve_credentials_locally(*options.marteau_credentials)
    module = import_test_module(test_arg)
    klass, _ = resolve_test(module, spec)

    def make(meta_name: str, sink: Any) -> Any:
        instance_options = copy.copy(options)
        instance_options.marteau_sink = sink
        return klass(meta_name, instance_options)

    return make


class _BenchConf:
    """The bench's required conf values, read through the main instance."""

    def __init__(self, main: Any, options: SimpleNamespace, conf_path: str) -> None:
        self.main = main
        self.options = options
        self.conf_path = conf_path

    def source(self, section: str, key: str) -> str:
        attribute = f"{section}_{key}"
        if getattr(self.options, attribute, None):
            return _CLI_NAMES.get(attribute, "--" + attribute.replace("_", "-"))
        return f"[{section}] {key} in {self.conf_path}"

    def get(self, section: str, key: str, default: Any = None) -> str:
        if default is None:
            return str(self.main.conf_get(section, key)).strip()
        return str(self.main.conf_get(section, key, default, quiet=True)).strip()

    def number(self, key: str, *, integer: bool = False, minimum: float = 0) -> Any:
        value = self.get("bench", key)
        try:
            number = int(value) if integer else float(value)
        except ValueError:
            number = None
        if number is None or number < minimum:
            kind = "an integer" if integer else "a number"
            bound = f" >= {minimum:g}" if minimum else " >= 0"
            raise MarteauError(
                f"bad {key} '{value}' ({self.source('bench', key)}): expected {kind}{bound}"
            )
        return number

    def open_model(self, share: tuple[int, int]) -> dict[str, Any] | None:
        """The open model's settings (`--rates` or ``[bench] rates``); None: the closed model."""
        from marteau.engine.arrivals import ARRIVALS, parse_rates

        value = self.get("bench", "rates", "")
        if not value:
            for key in ("arrivals", "ramp"):
                if getattr(self.options, f"bench_{key}", None) is not None:
                    given = _CLI_NAMES[f"bench_{key}"]
                elif self.get("bench", key, ""):
                    given = f"[bench] {key} in {self.conf_path}"
                else:
                    continue
                raise MarteauError(
                    f"{given} without rates: it only applies to the open model; give "
                    f"--rates or [bench] rates in {self.conf_path}, or leave it out"
                )
            return None
        rates = parse_rates(value, self.source("bench", "rates"))
        arrivals = self.get("bench", "arrivals", "constant")
        if arrivals not in ARRIVALS:
            raise MarteauError(
                f"bad arrivals '{arrivals}' ({self.source('bench', 'arrivals')}): "
                f"expected one of {', '.join(ARRIVALS)}"
            )
        ramp_text = self.get("bench", "ramp", "0")
        try:
            ramp = float(ramp_text)
        except ValueError:
            ramp = -1.0
        if not 0 <= ramp < math.inf:
            raise MarteauError(
                f"bad ramp '{ramp_text}' ({self.source('bench', 'ramp')}): "
                "expected seconds, a number >= 0"
            )
        return {"rates": rates, "poisson": arrivals == "poisson", "ramp": ramp, "share": share}

    def cycles(self) -> tuple[int, ...]:
        value = self.get("bench", "cycles")
        try:
            cycles = tuple(int(item) for item in value.split(":"))
        except ValueError:
            cycles = ()
        if not cycles or min(cycles) < 1:
            raise MarteauError(
                f"bad cycles '{value}' ({self.source('bench', 'cycles')}): expected "
                "users per cycle, positive integers separated by ':', e.g. 5:10:20"
            )
        return cycles


def _check_conf(path: str) -> None:
    if not os.path.exists(path):
        raise MarteauError(
            f"configuration file not found: {path} (use --config, or run from the "
            "directory holding <Class>.conf)"
        )
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise MarteauError(f"cannot read configuration file {path}: {exc.strerror}") from None


def prepare(
    test_file: str,
    spec: str,
    options: SimpleNamespace,
    workers: int | None,
    start_at: float | None,
    max_users: int = 0,
    share: tuple[int, int] = (0, 1),
    monitor: bool = True,
) -> Any:
    """Everything before the first hook: import, main instance, conf, files, workers;
    the conf's ``[monitor]`` hosts unless `monitor` is False."""
    from marteau.engine.bench_contract import BenchSetup, ParentSink
    from marteau.engine.schedule import BenchPlan
    from marteau.engine.workers import WorkerSpec, worker_path
    from marteau.funkload.config import conf_path_for
    from marteau.funkload.loader import import_test_module, resolve_test

    if "." not in spec:
        raise MarteauError(f"expected Class.method as second argument, got '{spec}'")
    module = import_test_module(test_file)
    klass, method = resolve_test(module, spec)
    conf_path = conf_path_for(klass.__name__, options.config)
    _check_conf(conf_path)

    sink = ParentSink()
    main_options = copy.copy(options)
    main_options.marteau_sink = sink
    try:
        main = klass(f"{method}:0:0:0", main_options)
    except MarteauError:
        raise
    except Exception as exc:
        raise MarteauError(
            f"cannot create {klass.__name__}('{method}:0:0:0'): {type(exc).__name__}: {exc}"
        ) from None
    conf = _BenchConf(main, options, conf_path)
    title = conf.get("main", "title")
    class_description = conf.get("main", "description")
    server_url = conf.get("main", "url")
    open_model = conf.open_model(share)
    if open_model is None:
        cycles = conf.cycles()
    else:  # a pool of users per cycle: --max-users, else enough for the rates
        max_users = max_users or default_pool(open_model["rates"], share[1])
        cycles = (max_users,) * len(open_model["rates"])
    duration = conf.number("duration", integer=True, minimum=1)
    startup_delay = conf.number("startup_delay")
    sleep_time = conf.number("sleep_time")
    cycle_time = conf.number("cycle_time")
    sleep_time_min = conf.number("sleep_time_min")
    sleep_time_max = conf.number("sleep_time_max")
    description = conf.get(method, "description", "No test description")
    result_path = os.path.abspath(conf.get("bench", "result_path", "funkload.xml"))
    result_dir = os.path.dirname(result_path)
    if not os.path.isdir(result_dir) or not os.access(result_dir, os.W_OK):
        raise MarteauError(
            f"cannot write results to {result_path} ([bench] result_path in {conf_path}): "
            f"{result_dir} is not a writable directory"
        )
    base = result_path[:-4] if result_path.lower().endswith(".xml") else result_path
    compact_path = base + ".mrt"
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        workers = max(1, workers or 1)

    if open_model is not None:
        workers = min(workers, max_users)  # every process needs a user of the pool
    plan = BenchPlan(
        cycles, duration, startup_delay, sleep_time, cycle_time, max_users, **(open_model or {})
    )
    run_cycles = plan.cycle_users
    config = {
        "id": method,
        "description": description,
        "class_title": title,
        "class_description": class_description,
        "module": module.__name__,
        "class": klass.__name__,
        "method": method,
        "cycles": str(list(run_cycles)),
        "duration": str(duration),
        "sleep_time": str(sleep_time),
        "startup_delay": str(startup_delay),
        "sleep_time_min": str(sleep_time_min),
        "sleep_time_max": str(sleep_time_max),
        "cycle_time": str(cycle_time),
        "configuration_file": conf_path,
        "server_url": server_url,
        "log_xml": result_path,
        "node": platform.node(),
        "python_version": platform.python_version(),
        "marteau_version": __version__,
        "workers": str(workers),
        "marteau:time": datetime.datetime.now().isoformat(),
    }
    if options.label:
        config["label"] = options.label
    if max_users:
        config["marteau:max_users"] = str(max_users)
    if run_cycles != cycles:
        config["marteau:cycles_asked"] = str(list(cycles))
    if open_model is not None:
        config["marteau:rates"] = ":".join(f"{rate:g}" for rate in plan.rates)
        config["marteau:arrivals"] = "poisson" if plan.poisson else "constant"
        config["marteau:ramp"] = str(plan.ramp)
        config["marteau:rate_share"] = f"{share[0]}/{share[1]}"
    worker_options = copy.copy(options)
    specs = [
        WorkerSpec(
            index=index,
            workers=workers,
            plan=plan,
            suite=klass.__name__,
            method=method,
            path=worker_path(base, index),
            config=config,
            loader=load_test_factory,
            loader_arg=(test_file, spec, worker_options),
        )
        for index in range(workers)
    ]
    header = [
        f"* Configuration file: {conf_path}",
        f"* Log xml: {result_path}",
        f"* Server: {server_url}",
        (
            f"* Rates: {config['marteau:rates']} tests/s"
            + (f" (this node: 1/{share[1]} of them)" if share[1] > 1 else "")
            + f", {config['marteau:arrivals']} arrivals, a pool of {max_users} users"
            + (f", ramp {plan.ramp:g}s" if plan.ramp else "")
            if open_model is not None
            else f"* Cycles: {list(run_cycles)}"
            + (
                f" (asked {list(cycles)}, cut by --max-users {max_users})"
                if run_cycles != cycles
                else ""
            )
        ),
        f"* Cycle duration: {duration}s",
        f"* Sleeptime between request: from {sleep_time_min}s to {sleep_time_max}s",
        f"* Sleeptime between test case: {sleep_time}s",
        f"* Startup delay between thread: {startup_delay}s",
        f"* Workers: {workers} "
        + ("(in this process)" if workers == 1 else "processes, users split by thread id"),
    ]
    if start_at:
        when = datetime.datetime.fromtimestamp(start_at).isoformat()
        header.append(f"* Start at: {when} ({start_at})")
    if options.label:
        header.append(f"* Label: {options.label}")
    link = _monitor_link(conf, conf_path, config, header, options) if monitor else None
    return BenchSetup(
        plan=plan,
        hooks=main,
        sink=sink,
        specs=specs,
        config=config,
        xml_path=result_path,
        compact_path=compact_path,
        start_at=start_at,
        header=header,
        title=title,
        description=f"{method}: {description}",
        monitor=link,
    )


def _monitor_link(
    conf: _BenchConf, conf_path: str, config: dict[str, str], header: list[str], options: Any
) -> Any:
    """The conf's ``[monitor]`` servers (None without any): their descriptions go in the
    config as FunkLoad's did (one key per name), their calls through --allow-host's guard."""
    from marteau.funkload.monitor_link import MonitorLink, bench_monitors

    def get(section: str, key: str, default: str | None = None) -> str:
        return conf.get(section, key, default)

    hosts = bench_monitors(get, conf_path)
    if not hosts:
        return None
    for host in hosts:
        config[host.name] = host.description
    header.append("* Monitored hosts: " + ", ".join(f"{h.name} ({h.url})" for h in hosts))
    transport = None
    if options.marteau_guard is not None:
        from marteau.engine.guard import pinned_transport

        transport = pinned_transport
    return MonitorLink(hosts, lambda text: print(text, flush=True), transport)


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
                strict = " (Host headers checked: --strict-host)" if strict_host else ""
                setup.header.append(f"* Allowed hosts: {options.marteau_guard.describe()}{strict}")
                setup.config["marteau:allowed_hosts"] = options.marteau_guard.listing
                if strict_host:
                    setup.config["marteau:strict_host"] = "true"
            if start_file is not None:
                setup.start_file = _fresh_start_file(start_file)
                setup.start_timeout = start_timeout
                setup.header.append(f"* Start at: the instant written to {setup.start_file}")
            fuse = fuse_limits(fuse_error_rate, fuse_median, fuse_window)
            if fuse.enabled:
                setup.fuse = fuse
                setup.specs = [dataclasses.replace(spec, fuse=True) for spec in setup.specs]
                setup.header.append(f"* Safety fuse: {fuse.describe()}")
                setup.config["marteau:fuse"] = fuse.describe()
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
                outcome = BenchController(setup, console, published, platform.node()).run()
            finally:
                if exporter is not None:
                    exporter.close()
    except MarteauError as exc:
        sys.stdout.flush()
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exits.BAD_INPUT)
    sys.exit(outcome.exit_code)


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
