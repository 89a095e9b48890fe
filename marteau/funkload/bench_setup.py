"""From a FunkLoad test and its conf to the engine's `BenchSetup`.

The main ``<method>:0:0:0`` instance reads the conf (so a test's own
``conf_get`` overrides and the command line's ``<section>_<key>`` options
apply, as under FunkLoad); its values make the bench's plan, the
``<config>`` entries of the result file, the Configuration lines of the
console, and one `WorkerSpec` per worker process.  Each worker imports the
test again through `load_test_factory`.

Bad input (conf, cycles, test file, class, method) is a `MarteauError` that
names the value and where it came from (the option or the conf file).
"""

from __future__ import annotations

import copy
import datetime
import math
import os
import platform
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from marteau import __version__, native
from marteau.engine.bench_contract import BenchSetup, ParentSink
from marteau.engine.schedule import BenchPlan
from marteau.engine.workers import WorkerSpec, worker_path
from marteau.errors import MarteauError
from marteau.funkload.config import conf_path_for
from marteau.funkload.loader import import_test_module, resolve_test

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

# Seconds of iterations at a cycle's rate that the default pool of users can hold
# at once (a target answering within this never exhausts it), and its bounds.
POOL_SECONDS = 10.0
POOL_MIN, POOL_MAX = 10, 1000


def default_pool(rates: tuple[float, ...], nodes: int) -> int:
    """The open model's users per node when --max-users does not say: enough for
    `POOL_SECONDS` of the node's highest rate, within `POOL_MIN`..`POOL_MAX`."""
    wanted = math.ceil(max(rates) / nodes * POOL_SECONDS)
    return min(max(wanted, POOL_MIN), POOL_MAX)


def load_test_factory(arg: tuple[str, str, SimpleNamespace]) -> Any:
    """In a worker: import the test and return ``make(meta_name, sink) -> instance``.

    Top-level so that a spawned worker process can unpickle it.
    """
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


class BenchConf:
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


@dataclass(frozen=True)
class _Settings:
    """The bench's values, from the conf through the main instance (and the options)."""

    title: str
    class_description: str
    server_url: str
    open_model: dict[str, Any] | None  # None: the closed model
    cycles: tuple[int, ...]  # users per cycle; the open model: each cycle's pool
    max_users: int
    duration: int
    startup_delay: float
    sleep_time: float
    cycle_time: float
    sleep_time_min: float
    sleep_time_max: float
    description: str
    result_path: str
    conf_path: str
    base: str  # the result path without ".xml": the compact and worker files start so


def prepare(
    test_file: str,
    spec: str,
    options: SimpleNamespace,
    workers: int | None,
    start_at: float | None,
    max_users: int = 0,
    share: tuple[int, int] = (0, 1),
    monitor: bool = True,
) -> BenchSetup:
    """Everything before the first hook: import, main instance, conf, files, workers;
    the conf's ``[monitor]`` hosts unless `monitor` is False."""
    if "." not in spec:
        raise MarteauError(f"expected Class.method as second argument, got '{spec}'")
    module = import_test_module(test_file)
    klass, method = resolve_test(module, spec)
    conf_path = conf_path_for(klass.__name__, options.config)
    _check_conf(conf_path)
    main, sink = _main_instance(klass, method, options)
    conf = BenchConf(main, options, conf_path)
    s = _settings(conf, method, conf_path, max_users, share)
    workers = _worker_count(workers, s)
    plan = BenchPlan(
        s.cycles,
        s.duration,
        s.startup_delay,
        s.sleep_time,
        s.cycle_time,
        s.max_users,
        **(s.open_model or {}),
    )
    config = _config_entries(s, plan, workers, share, module.__name__, klass.__name__, method)
    config.update(_marteau_entries(s, plan, share, options.label))
    worker_options = copy.copy(options)
    specs = [
        WorkerSpec(
            index=index,
            workers=workers,
            plan=plan,
            suite=klass.__name__,
            method=method,
            path=worker_path(s.base, index),
            config=config,
            loader=load_test_factory,
            loader_arg=(test_file, spec, worker_options),
        )
        for index in range(workers)
    ]
    header = _header_lines(s, plan, config, workers, share)
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
        xml_path=s.result_path,
        compact_path=s.base + ".mrt",
        start_at=start_at,
        header=header,
        title=s.title,
        description=f"{method}: {s.description}",
        monitor=link,
    )


def _main_instance(klass: type, method: str, options: SimpleNamespace) -> tuple[Any, ParentSink]:
    """The ``<method>:0:0:0`` instance whose conf values and hooks drive the bench."""
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
    return main, sink


def _settings(
    conf: BenchConf, method: str, conf_path: str, max_users: int, share: tuple[int, int]
) -> _Settings:
    """Read the bench's values in FunkLoad's order (the first bad one is the error)."""
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
    return _Settings(
        title,
        class_description,
        server_url,
        open_model,
        cycles,
        max_users,
        duration,
        startup_delay,
        sleep_time,
        cycle_time,
        sleep_time_min,
        sleep_time_max,
        description,
        result_path,
        conf_path,
        base,
    )


def _worker_count(workers: int | None, s: _Settings) -> int:
    """`--workers`, else one per CPU this process may run on; in the open model, never
    more than the pool's users (every process needs one)."""
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        workers = max(1, workers or 1)
    if s.open_model is not None:
        workers = min(workers, s.max_users)
    return workers


def _config_entries(
    s: _Settings,
    plan: BenchPlan,
    workers: int,
    share: tuple[int, int],
    module: str,
    klass: str,
    method: str,
) -> dict[str, str]:
    """FunkLoad's ``<config>`` entries of the result file, in its order."""
    return {
        "id": method,
        "description": s.description,
        "class_title": s.title,
        "class_description": s.class_description,
        "module": module,
        "class": klass,
        "method": method,
        "cycles": str(list(plan.cycle_users)),
        "duration": str(s.duration),
        "sleep_time": str(s.sleep_time),
        "startup_delay": str(s.startup_delay),
        "sleep_time_min": str(s.sleep_time_min),
        "sleep_time_max": str(s.sleep_time_max),
        "cycle_time": str(s.cycle_time),
        "configuration_file": s.conf_path,
        "server_url": s.server_url,
        "log_xml": s.result_path,
        "node": platform.node(),
        "python_version": platform.python_version(),
        "marteau_version": __version__,
        "workers": str(workers),
        "marteau:time": datetime.datetime.now().isoformat(),
    }


def _marteau_entries(
    s: _Settings, plan: BenchPlan, share: tuple[int, int], label: str | None
) -> dict[str, str]:
    """The entries Marteau adds to FunkLoad's: the label, the quota, the open model."""
    entries = {}
    if label:
        entries["label"] = label
    if s.max_users:
        entries["marteau:max_users"] = str(s.max_users)
    if plan.cycle_users != s.cycles:
        entries["marteau:cycles_asked"] = str(list(s.cycles))
    if s.open_model is not None:
        entries["marteau:rates"] = ":".join(f"{rate:g}" for rate in plan.rates)
        entries["marteau:arrivals"] = "poisson" if plan.poisson else "constant"
        entries["marteau:ramp"] = str(plan.ramp)
        entries["marteau:rate_share"] = f"{share[0]}/{share[1]}"
    return entries


def _header_lines(
    s: _Settings, plan: BenchPlan, config: dict[str, str], workers: int, share: tuple[int, int]
) -> list[str]:
    """The console's Configuration section, FunkLoad's lines and Marteau's."""
    run_cycles = plan.cycle_users
    if s.open_model is not None:
        load = (
            f"* Rates: {config['marteau:rates']} tests/s"
            + (f" (this node: 1/{share[1]} of them)" if share[1] > 1 else "")
            + f", {config['marteau:arrivals']} arrivals, a pool of {s.max_users} users"
            + (f", ramp {plan.ramp:g}s" if plan.ramp else "")
        )
    else:
        load = f"* Cycles: {list(run_cycles)}" + (
            f" (asked {list(s.cycles)}, cut by --max-users {s.max_users})"
            if run_cycles != s.cycles
            else ""
        )
    return [
        f"* Configuration file: {s.conf_path}",
        f"* Log xml: {s.result_path}",
        f"* Server: {s.server_url}",
        load,
        f"* Cycle duration: {s.duration}s",
        f"* Sleeptime between request: from {s.sleep_time_min}s to {s.sleep_time_max}s",
        f"* Sleeptime between test case: {s.sleep_time}s",
        f"* Startup delay between thread: {s.startup_delay}s",
        f"* Workers: {workers} "
        + ("(in this process)" if workers == 1 else "processes, users split by thread id"),
        f"* Engine: {native.describe()}",  # the run's provenance reads it from the node's log
    ]


def _monitor_link(
    conf: BenchConf, conf_path: str, config: dict[str, str], header: list[str], options: Any
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
