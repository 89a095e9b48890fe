"""What a run asks for: its options, checked against the project before anything runs.

`marteau run` takes its settings from the command line, the project's
``.marteau.yml`` and the test's ``<Class>.conf``.  Everything here is
checked before a node is locked or a file written, so bad input fails at
once with the option or file that holds it (`where`).
"""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marteau.engine.arrivals import parse_rates
from marteau.engine.fuse import fuse_limits
from marteau.engine.guard import parse_entry
from marteau.errors import MarteauError
from marteau.orchestration.live import LiveView
from marteau.orchestration.project import Project, locate
from marteau.orchestration.validate import where
from marteau.orchestration.values import MAX_LABEL, check_text

CYCLES = re.compile(r"^\d+(:\d+)*$")


@dataclass
class RunOptions:
    source: str = "."
    inventory: Path | None = None
    pool: str | None = None
    nodes: int | None = None
    cycles: str | None = None
    rates: str | None = None  # the open model: tests/s per cycle, split across the nodes
    arrivals: str | None = None  # constant | poisson
    ramp: float | None = None  # seconds of ramp between rates
    duration: int | None = None
    label: str | None = None
    report_dir: Path | None = None
    split: bool = False
    lock_timeout: float = 60.0
    url: str | None = None
    workers: int | None = None
    max_clock_offset: float = 0.5
    thresholds: Path | None = None
    workdir: Path | None = None
    runs_dir: Path = Path("marteau-runs")
    bench_timeout: int | None = None
    fuse_error_rate: float | None = None  # the safety fuse of every node's bench
    fuse_median: float | None = None
    fuse_window: float | None = None
    allow_hosts: tuple[str, ...] = ()  # empty: the nodes may load any host
    strict_host: bool = False  # with allow_hosts: refuse a Host header naming another host
    max_users: int | None = None  # a quota: no node runs more users in a cycle
    extra_vars: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Asked:
    """What the run asks for, from the options and the project, checked."""

    project: Project
    cycles: str | None
    duration: int | None
    rates: str | None
    pool: str
    named: list[str]
    wanted: int
    thresholds: Path | None


def check_options(opts: RunOptions, view: LiveView) -> Asked:
    """The options against the project: bad input is an error before anything is
    cloned, locked or written."""
    fuse_limits(opts.fuse_error_rate, opts.fuse_median, opts.fuse_window)  # bad input first
    view.set_stage("project")
    for entry in opts.allow_hosts:
        parse_entry(entry)  # bad input before anything is cloned or locked
    if opts.strict_host and not opts.allow_hosts:
        raise MarteauError("--strict-host needs --allow-host (the hosts it checks against)")
    project = locate(opts.source, opts.workdir)
    cycles = opts.cycles or project.cycles
    duration = opts.duration or project.duration
    if cycles and not CYCLES.match(cycles):
        raise MarteauError(f"--cycles {cycles!r}: expected users per cycle such as 10:20:30")
    rates = opts.rates or project.rates
    if rates:  # bad input before anything is locked
        parse_rates(rates, "--rates" if opts.rates else where(project, "rates"))
    if opts.label:
        check_text("--label", opts.label, MAX_LABEL)
    if opts.split and not cycles:
        cycles, conf_duration = conf_cycles(project)
        duration = duration or conf_duration
        if not cycles:
            raise MarteauError(
                f"--split needs the cycles: give -c, `cycles` in {project.config_path} "
                f"or [bench] cycles in {project.test_class}.conf"
            )
    pool = opts.pool or project.pool or "marteau"
    # `nodes: [h1, h2]` in .marteau.yml: those nodes of the pool, unless --nodes counts
    named = [] if opts.nodes else project.hosts
    wanted = len(named) if named else opts.nodes or project.nodes or 1
    if opts.split and cycles and min(int(c) for c in cycles.split(":")) < wanted:
        raise MarteauError(f"--split: cycles {cycles} leave a node without users on {wanted} nodes")
    thresholds = opts.thresholds or project.thresholds
    return Asked(project, cycles, duration, rates, pool, named, wanted, thresholds)


def conf_bench(project: Project) -> dict[str, str]:
    """The [bench] values of the test's `<Class>.conf` (none if it cannot be read)."""
    path = project.test_dir / f"{project.test_class}.conf"
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error:
        return {}
    return {key: value.strip() for key, value in parser.items("bench")} if "bench" in parser else {}


def conf_cycles(project: Project) -> tuple[str | None, int | None]:
    """[bench] cycles and duration of the test's `<Class>.conf`, if it has them."""
    bench = conf_bench(project)
    duration = bench.get("duration", "")
    return bench.get("cycles") or None, int(duration) if duration.isdigit() else None


def check_open_model(opts: RunOptions, project: Project, rates: str | None) -> None:
    """`arrivals` and `ramp` only shape rates: given without any, say so (they would do
    nothing). The rates may also come from the node's .conf, which the bench reads."""
    if rates or conf_bench(project).get("rates"):
        return
    for key in ("arrivals", "ramp"):
        if getattr(opts, key) is not None:
            given = f"--{key}"
        elif getattr(project, key) is not None:
            given = where(project, key)
        else:
            continue
        raise MarteauError(
            f"{given} without rates: it only applies to the open model; give --rates, "
            f"`rates` in {project.config_path} or [bench] rates in {project.test_class}.conf, "
            "or leave it out"
        )


def bench_timeout(project: Project, cycles: str | None, duration: int | None) -> int:
    """A hard limit for one node's bench: 3x its expected length, at least 10 minutes."""
    conf_cycles_, conf_duration = conf_cycles(project)
    cycles = cycles or conf_cycles_
    duration = duration or conf_duration
    if not cycles or not duration:
        return 3600
    expected = len(cycles.split(":")) * (duration + 10) + 60
    return max(600, 3 * expected)
