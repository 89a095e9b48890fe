"""One distributed run: locate → lock → provision → deploy → bench → collect →
release → report → thresholds. See docs/ansible.md.

Stages after the lock run as ONE playbook (`playbooks/run.yml`), the same
one the plain `ansible-playbook playbooks/loadtest.yml` path runs; the
wrapper follows it through ansible-runner's events. Cancel (Ctrl-C,
SIGTERM): the running playbook is stopped, then `stop.yml` kills the
benches' process groups on the nodes (they write what they have),
`collect.yml` fetches the partial results, `unlock.yml` releases the nodes,
and the report is built from what finished.  When one node's safety fuse
stops its bench (`marteau bench --fuse-*`, exit `FUSE_EXIT`), the other
nodes are stopped the same way and the run exits `FUSE_EXIT`.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marteau import exits
from marteau.engine.arrivals import parse_rates
from marteau.engine.figures import QUANTILES, LiveFigures, quantile_name
from marteau.engine.fuse import FUSE_EXIT, fuse_limits
from marteau.engine.guard import parse_entry
from marteau.errors import MarteauError
from marteau.orchestration.driver import Ansible, Event, PlayResult
from marteau.orchestration.live import LiveView
from marteau.orchestration.prepare import job_vars, new_job_id
from marteau.orchestration.project import Project, locate
from marteau.orchestration.validate import Pool, check_run, where
from marteau.orchestration.values import MAX_LABEL, check_text

CYCLES = re.compile(r"^\d+(:\d+)*$")
ROLE_STATES = {
    "marteau_node": ("provision", "provisioning"),
    "marteau_deploy": ("deploy", "deploying"),
    "marteau_bench": ("bench", "benching"),
    "marteau_collect": ("collect", "collecting"),
    "marteau_lock": ("release", "releasing"),
}
# Node states only move forward (a role's later tasks do not step back).
STATE_RANK = {
    state: rank
    for rank, state in enumerate(
        [
            "waiting",
            "locking",
            "locked",
            "provisioning",
            "deploying",
            "benching",
            "bench done",
            "collecting",
            "stopping",
            "releasing",
            "released",
            "failed",
            "unreachable",
        ]
    )
}
LOCK_TASK = "Take Marteau's lock on the node"
NAMED_TASK = "Fail when a named node is not in the pool"
WAIT_TASK = "Wait for the bench to end"
ARMED_TASK = "Wait until every bench is armed"
FANOUT_TASK = "Keep the fan-out time"
DECIDE_TASK = "Decide the shared start instant"
START_TASK = "Start the bench (async, in its own process group, under timeout)"
FACTS_TASK = "Write the node's facts beside its results"
RELEASE_TASK = "Release Marteau's lock on the node"
CLOCK_TASK = "Measure the node's clock offset to the controller"
FIREWALL_TASK = "Close the job user's egress to its allowed hosts"
FIREWALL_REMOVE_TASK = "Remove the job user's egress firewall"
# ansible-core's check of a role's meta/argument_specs.yml, first task of each entry point
ARGSPEC_TASK = "Validating arguments against arg spec"
MONITOR_PLAYS = ("Start monitoring the target hosts", "Stop monitoring the target hosts")
MONITORED_TASK = "Keep that the host is monitored"

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = exits.OK, exits.FAILURES, exits.BAD_INPUT


class RunFailed(Exception):
    """The run could not go on (not bad input): exit 1 with this message."""


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


@dataclass
class RunOutcome:
    exit_code: int
    run_dir: Path | None = None
    report_dir: Path | None = None
    nodes: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)
    lost: dict[str, list[str]] = field(default_factory=dict)  # node -> load it lost, said how
    cancelled: bool = False
    fuse: str | None = None  # the safety fuse line of the node that stopped the run
    bench_exits: dict[str, int] = field(default_factory=dict)  # each node's `marteau bench` exit
    timings: dict[str, float] = field(default_factory=dict)


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


def run_cost(nodes: dict[str, dict], seconds: float) -> dict | None:
    """What the run's nodes cost, from their `marteau_cost_per_hour` (None if none has one)."""
    rates = {}
    for host, node in nodes.items():
        try:
            rates[host] = float(node.get("cost_per_hour"))
        except (TypeError, ValueError):
            continue
    if not rates:
        return None
    per_hour = sum(rates.values())
    return {
        "per_hour": per_hour,
        "seconds": round(seconds, 1),
        "total": round(per_hour * seconds / 3600, 4),
    }


def node_files(run_dir: Path, hosts: list[str]) -> dict[str, dict]:
    """Each node's `node.json` (written by the collect role; {} when unreadable)."""
    nodes = {}
    for host in hosts:
        try:
            nodes[host] = json.loads((run_dir / "results" / host / "node.json").read_text())
        except (OSError, ValueError):
            nodes[host] = {}
    return nodes


def one_line(value: object) -> str:
    """A message on one line, whole (ssh's errors span several)."""
    return " ".join(str(value).split())


def split_cycles(cycles: str, count: int) -> list[str]:
    """Each node's share of every cycle (the first nodes take the remainder)."""
    values = [int(c) for c in cycles.split(":")]
    return [
        ":".join(str(v // count + (1 if i < v % count else 0)) for v in values)
        for i in range(count)
    ]


class LoadTestRun:
    """``figures``: where each node's progress lines go besides the view (`--metrics-port`)."""

    def __init__(
        self,
        options: RunOptions,
        view: LiveView | None = None,
        figures: LiveFigures | None = None,
    ) -> None:
        self.options = options
        self.view = view or LiveView()
        self.figures = figures
        self.cancelled: int | None = None  # the signal that cancelled the run
        self.fuse: str | None = None  # "<fuse line> (on <host>)": a node's fuse tripped
        self.locked: list[str] = []  # every node this run took a lock on
        self.nodes: list[str] = []  # the nodes of the run
        self.released: set[str] = set()
        self.timings: dict[str, float] = {}
        self.warnings: list[str] = []
        self.report_warnings: list[str] = []  # also shown in the report (firewall drops)
        self.barrier: dict[str, float] = {}  # the start barrier: fan-out and lead, seconds
        self.monitored: list[str] = []  # the hosts whose monitoring agent started
        self._progress_at: dict[str, int] = {}  # host -> log offset of the last line shown
        self._t0 = time.monotonic()

    # -- signals --------------------------------------------------------------

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.cancelled is None:
            self.cancelled = signum
            self.view.message(
                f"{signal.Signals(signum).name}: cancelling (stopping the benches, collecting)"
            )
            return
        raise KeyboardInterrupt  # a second signal: stop waiting

    def warn(self, text: str) -> None:
        """A warning on the console and in run.json."""
        self.view.message(f"warning: {text}")
        self.warnings.append(text)

    def cancel_requested(self) -> bool:
        """A signal, or a node's safety fuse: stop the benches and collect what ran."""
        return self.cancelled is not None or self.fuse is not None

    # -- events ---------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        kind = event.get("event", "")
        data = event.get("event_data", {})
        host = data.get("host")
        task = data.get("task", "")
        role = data.get("role", "")
        if data.get("play") in MONITOR_PLAYS:
            self._on_monitor_event(kind, host, task, data)
            return
        # Skip the controller's own "localhost" plays, not the embedded default's node
        # (localhost too): its lock event is what puts it in `locked`.
        if not host or host == "localhost" and host not in self.locked and task != LOCK_TASK:
            return
        res = data.get("res", {}) if isinstance(data.get("res"), dict) else {}
        # the bench role's firewall tasks also run in collect and release, and every
        # entry point of a role (release, cleanup, ...) starts with its arguments' check:
        # not a stage
        starts_stage = task != FIREWALL_REMOVE_TASK and not task.startswith(ARGSPEC_TASK)
        if kind == "runner_on_start" and role in ROLE_STATES and starts_stage:
            stage, state = ROLE_STATES[role]
            if role == "marteau_lock" and task != RELEASE_TASK:
                stage, state = "lock", "locking"
            self.view.set_stage(stage)
            self.timings.setdefault(f"{stage}_start", time.monotonic() - self._t0)
            current = self.view.nodes.get(host)
            if current is None or STATE_RANK.get(state, 0) > STATE_RANK.get(current.state, 0):
                self.view.node(host, state, note="")
        elif kind == "runner_on_ok" and task == LOCK_TASK and res.get("acquired"):
            if host not in self.locked:
                self.locked.append(host)
            self.released.discard(host)
            self.view.node(host, "locked")
        elif kind == "runner_on_ok" and task == START_TASK:
            self.timings.setdefault("bench_started", time.monotonic() - self._t0)
            self.view.node(host, "benching", note="arming")
        elif kind == "runner_on_ok" and task == ARMED_TASK:
            self.timings["bench_armed"] = time.monotonic() - self._t0
            self.view.node(host, "benching", note="armed")
        elif kind == "runner_on_ok" and task in (FANOUT_TASK, DECIDE_TASK):
            self._on_barrier(res.get("ansible_facts") or {})
        elif kind == "runner_retry" and task == WAIT_TASK:
            self._show_progress(host, res)
        elif kind == "runner_on_ok" and task == WAIT_TASK:
            self._show_progress(host, res)
            rc = res.get("rc")
            self.view.node(host, "bench done", note=f"exit {rc}")
            if rc == FUSE_EXIT and res.get("fuse") and self.fuse is None:
                self.fuse = f"{res['fuse']} (on {host})"
                self.view.message(f"{self.fuse}: stopping the other nodes, collecting")
        elif kind == "runner_on_ok" and task == CLOCK_TASK:
            self.view.node(host, note=f"clock {res.get('offset', 0) * 1000:+.0f} ms")
        elif kind == "runner_on_ok" and task == FIREWALL_TASK:
            self.view.node(host, note=f"firewall: {len(res.get('accepted') or [])} address(es)")
        elif kind == "runner_on_ok" and task == FIREWALL_REMOVE_TASK and res.get("dropped"):
            self._firewall_dropped(host, res)
        elif kind == "runner_on_ok" and task == RELEASE_TASK:
            self.released.add(host)
            current = self.view.nodes.get(host)
            if current is None or STATE_RANK.get(current.state, 0) < STATE_RANK["released"]:
                self.view.node(host, "released")
        elif kind == "runner_on_unreachable" and not data.get("ignore_errors"):
            # the whole SSH error: its start ("ssh: connect to host") says nothing
            self.view.node(host, "unreachable", note=one_line(res.get("msg", "")))
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            if task == WAIT_TASK:
                self._show_progress(host, res)
            message = str(res.get("msg") or res.get("stderr") or "failed").strip()
            first, _, rest = message.partition("\n")
            self.view.node(host, "failed", note=f"{task}: {first}")
            if rest:  # the bench log's last lines: the reason is in them
                self.view.message(f"{host}: {rest}")
        for warning in res.get("warnings", []) or []:
            if isinstance(warning, dict):  # ansible-core 2.19: {"msg": ..., ...}
                warning = warning.get("msg") or warning.get("message") or str(warning)
            self.view.message(f"{host}: warning: {warning}")
            self.warnings.append(f"{host}: {warning}")

    def _on_monitor_event(self, kind: str, host: str | None, task: str, data: dict) -> None:
        """A monitored host's events: not a node of the run; its troubles are warnings."""
        res = data.get("res", {}) if isinstance(data.get("res"), dict) else {}
        if kind == "runner_on_ok" and task == MONITORED_TASK and host not in self.monitored:
            self.monitored.append(str(host))
            self.view.message(f"{host}: monitored")
        elif kind == "runner_on_ok" and task.startswith("Say that the host"):
            self.warn(f"monitored host {host}: {res.get('msg', '')}")
        elif kind == "runner_on_unreachable":
            self.warn(f"monitored host {host}: unreachable: {one_line(res.get('msg', ''))}")

    def _firewall_dropped(self, host: str, res: dict) -> None:
        """A node's egress firewall dropped packets: the test got past `--allow-host`."""
        where = ", ".join(str(d) for d in res.get("destinations") or []) or "unknown addresses"
        warning = (
            f"node {host}: the egress firewall dropped {res['dropped']} packet(s) the job "
            f"sent outside its allowed hosts (to {where}): test code opened connections "
            "of its own"
        )
        self.view.message(f"Warning: {warning}")
        self.warnings.append(warning)
        self.report_warnings.append(warning)

    def _on_barrier(self, facts: dict[str, Any]) -> None:
        """Every node armed: say what the start instant's lead was made of."""
        try:
            if "marteau_bench_fanout" in facts:
                self.barrier["fanout"] = round(float(facts["marteau_bench_fanout"]), 3)
            if "marteau_bench_start" in facts:
                self.barrier["lead"] = round(float(facts["marteau_bench_start"]) - time.time(), 3)
        except (TypeError, ValueError):
            return
        if "lead" in self.barrier:
            self.view.message(
                f"every node armed: fan-out {self.barrier.get('fanout', 0):.2f}s, "
                f"start in {self.barrier['lead']:.2f}s"
            )

    def _show_progress(self, host: str, res: dict) -> None:
        """Each progress line (one a second) the node's bench printed since the last poll."""
        shown = self._progress_at.get(host, -1)
        for line in res.get("lines") or []:
            at = line.get("at", 0)
            if at > shown:
                shown = at
                figures = {k: v for k, v in line.items() if k not in ("at", "phase")}
                self.view.node(host, "benching", note=line.get("phase", ""), **figures)
                self._publish(host, line)
        self._progress_at[host] = shown

    def _publish(self, host: str, line: dict[str, Any]) -> None:
        """A node's progress line (`marteau_bench_status`) into the live figures."""
        if self.figures is None:
            return
        quantiles = {
            q: line[key]
            for q in QUANTILES
            if isinstance(line.get(key := quantile_name(q)), (int, float))
        }
        try:
            self.figures.update(
                host,
                cycle=int(line["cycle"]),
                phase=str(line.get("phase") or "").split(" ")[0],
                users=int(line["users"]),
                cycle_users=int(line["cycle_users"]),
                rps=0.0 if line.get("phase") == "done" else float(line["rps"]),
                counts=(
                    int(line["ok"]),
                    int(line["failures"]),
                    int(line["errors"]),
                    int(line.get("responses") or 0),
                ),
                quantiles=quantiles,
            )
        except (KeyError, TypeError, ValueError):
            return  # a line from another version of the bench: the view shows it anyway

    # -- the run --------------------------------------------------------------

    def run(self) -> RunOutcome:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            return self._run()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _elapsed(self) -> float:
        return time.monotonic() - self._t0

    def _run(self) -> RunOutcome:
        opts = self.options
        fuse_limits(opts.fuse_error_rate, opts.fuse_median, opts.fuse_window)  # bad input first
        self.view.set_stage("project")
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
            raise MarteauError(
                f"--split: cycles {cycles} leave a node without users on {wanted} nodes"
            )
        thresholds = opts.thresholds or project.thresholds
        job = new_job_id()
        run_dir = (opts.runs_dir / job).resolve()
        report_dir = (opts.report_dir or run_dir / "report").resolve()
        self.view.title = f"{project.name or project.test} · job {job}"
        ansible = Ansible(run_dir, opts.inventory)  # checks the inventory path first
        pool_where = "--pool" if opts.pool else where(project, "pool") if project.pool else ""
        checked = Pool(
            pool, pool_where or "the default pool", wanted, named, where(project, "nodes")
        )
        check_run(project, opts.url, ansible.inventory, ansible.envvars(), checked, self.warn)
        check_open_model(opts, project, rates)
        self.view.set_stage("prepare")
        extravars = job_vars(
            project,
            run_dir,
            job,
            cycles=cycles,
            duration=duration,
            rates=opts.rates,
            arrivals=opts.arrivals,
            ramp=opts.ramp,
        )
        bench_args = []  # one argument each: a value is never read as an option
        if opts.url:
            bench_args.append(f"--url={opts.url}")
        if opts.label:
            bench_args.append(f"--label={opts.label}")
        extravars.update(
            marteau_pool=pool,
            marteau_nodes=wanted,
            marteau_named_nodes=named,
            marteau_split=opts.split,
            marteau_workers=opts.workers or 0,
            marteau_bench_extra_args=bench_args,
            marteau_max_clock_offset=opts.max_clock_offset,
        )
        timeout = opts.bench_timeout or bench_timeout(project, cycles or rates, duration)
        extravars["marteau_bench_timeout"] = timeout
        # A lock outlives the bench it guards (its expiry only matters if we die).
        extravars["marteau_lock_ttl"] = timeout + 600
        extravars.update(opts.extra_vars)
        for name in ("fuse_error_rate", "fuse_median", "fuse_window"):  # the options win
            if getattr(opts, name) is not None:
                extravars[f"marteau_{name}"] = getattr(opts, name)
        if opts.allow_hosts:  # after -e: a variable cannot widen the job's allowed hosts
            extravars["marteau_bench_allowed_hosts"] = list(opts.allow_hosts)
        if opts.strict_host:  # the same: the options win over -e
            extravars["marteau_bench_strict_host"] = True
        if opts.max_users:
            extravars["marteau_bench_max_users"] = opts.max_users
        if project.monitor is not None:
            if project.monitor.hosts:
                extravars["marteau_monitor_hosts"] = list(project.monitor.hosts)
            extravars["marteau_monitor_interval"] = project.monitor.interval
        shutil.copy(
            ansible.inventory, run_dir / "inventory.ini"
        ) if ansible.inventory.is_file() else None
        self.timings["prepared"] = self._elapsed()
        outcome = RunOutcome(EXIT_FAILED, run_dir=run_dir, report_dir=report_dir)
        main: PlayResult | None = None
        try:
            main = self._lock_and_run(ansible, extravars, pool, wanted)
            outcome.nodes = list(self.nodes)
            self.timings["ran"] = self._elapsed()
        finally:
            if self.cancel_requested() and self.locked:
                self._after_cancel(ansible, extravars)
            if self.monitored:
                self.view.set_stage("collect")
                hosts = {"marteau_monitor_hosts": list(self.monitored)}
                ansible.play("monitor_stop", {**extravars, **hosts}, on_event=self.on_event)
            pending = [h for h in self.locked if h not in self.released]
            if pending:
                self.view.set_stage("release")
                result = ansible.play(
                    "unlock",
                    {"marteau_job": job, "marteau_hosts": ",".join(pending)},
                    on_event=self.on_event,
                )
                for host in result.hosts_with("dark"):
                    self.view.message(f"{host}: unreachable, its lock stays until it expires")
        completed = self._completed(run_dir)
        outcome.completed = completed
        failures = main.failure_messages() if main else {}
        for host in self.nodes:
            if host not in completed:
                outcome.missing[host] = failures.get(host, "no results")
        outcome.lost = self._lost_load(run_dir, completed)
        if project.monitor is not None and project.monitor.prometheus and completed:
            self._pull_prometheus(run_dir, project, completed[0])
        outcome.cancelled = self.cancelled is not None
        outcome.fuse = self.fuse
        for host, node in node_files(run_dir, completed).items():
            with contextlib.suppress(TypeError, ValueError):
                outcome.bench_exits[host] = int(node.get("bench_rc"))
        self._write_provenance(run_dir, project, opts, extravars, outcome, cycles)
        code = self._report(run_dir, report_dir, thresholds, outcome)
        outcome.timings = dict(self.timings)
        if outcome.cancelled:
            outcome.exit_code = exits.SIGNAL_BASE + int(self.cancelled or signal.SIGINT)
        elif outcome.fuse:
            outcome.exit_code = FUSE_EXIT
        elif not completed:  # no node gave results: the run could not finish
            outcome.exit_code = EXIT_FAILED
        else:  # the nodes' benches, the report and the load lost: exits.PRECEDENCE
            lost = [exits.INCOMPLETE] if outcome.missing or outcome.lost else []
            outcome.exit_code = exits.combine([code, *outcome.bench_exits.values(), *lost])
        return outcome

    # -- stages ---------------------------------------------------------------

    def _lock_and_run(
        self, ansible: Ansible, extravars: dict, pool: str, wanted: int
    ) -> PlayResult | None:
        """Play lockrun.yml (lock, then run on the locked nodes) until it gets the nodes."""
        self.view.set_stage("lock")
        deadline = time.monotonic() + self.options.lock_timeout
        attempt = 0
        while True:
            attempt += 1
            if attempt > 1:
                self.view.nodes.clear()
            result = ansible.play(
                "lockrun", extravars, on_event=self.on_event, cancel=self.cancel_requested
            )
            taken = result.results(LOCK_TASK)
            acquired = sorted(h for h, res in taken.items() if res.get("acquired"))
            seen = set(taken) | set(result.results(LOCK_TASK, "runner_on_skipped"))
            unreachable = {
                **{h: res for h, res in taken.items() if res.get("unreachable")},
                **result.results(LOCK_TASK, "runner_on_unreachable"),
            }
            seen |= set(unreachable)
            broken = result.results(LOCK_TASK, "runner_on_failed")
            seen |= set(broken)
            if len(acquired) >= wanted:
                self.nodes = acquired
                return result
            if self.cancel_requested():
                return None
            outside = result.results(NAMED_TASK, "runner_on_failed")
            if outside:
                message = next(iter(outside.values())).get("msg", "")
                raise MarteauError(f".marteau.yml: nodes: {message}")
            if not seen and not taken:
                errors = result.failure_messages()
                raise MarteauError(
                    f"pool {pool!r}: no such group (or no hosts) in {ansible.inventory}"
                    + (f": {'; '.join(errors.values())}" if errors else "")
                )
            down = [
                f"{host} unreachable: {one_line(res.get('msg') or 'no reason given')}"
                for host, res in sorted(unreachable.items())
            ]
            if len(seen) - len(unreachable) < wanted:  # waiting would not bring them back
                raise RunFailed(
                    f"pool {pool!r}: {len(seen) - len(unreachable)} reachable node(s), "
                    f"{wanted} wanted: " + "; ".join(down)
                )
            held = down + [
                f"{host} cannot be locked: {res.get('msg', 'failed')}"
                for host, res in sorted(broken.items())
            ]
            for host in sorted(set(taken) - set(unreachable)):
                res = taken[host]
                holder = res.get("holder") or {}
                if not res.get("acquired") and not holder and (res.get("error") or res.get("msg")):
                    held.append(f"{host} cannot be locked: {res.get('error') or res['msg']}")
                elif not res.get("acquired") and holder:
                    until = time.strftime(
                        "%H:%M:%S", time.localtime(float(holder.get("expires", 0)))
                    )
                    held.append(
                        f"{host} held by job {holder.get('job')} of {holder.get('owner')} until {until}"
                    )
            if len(seen) < wanted:
                raise MarteauError(f"pool {pool!r} has {len(seen)} node(s), {wanted} wanted")
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.cancel_requested():
                raise RunFailed(
                    f"could not lock {wanted} free node(s) of pool {pool!r} within "
                    f"{self.options.lock_timeout:g}s: "
                    + ("; ".join(held) or "the lock play gave no reason, see ansible.log")
                )
            if attempt == 1:
                self.view.message(
                    f"waiting for {wanted} free node(s): "
                    + ("; ".join(held) or "the lock play gave no reason, see ansible.log")
                )
            time.sleep(min(remaining, 1.0 + random.random() * 2))

    def _after_cancel(self, ansible: Ansible, extravars: dict) -> None:
        """Stop the benches on the nodes, fetch what they wrote."""
        ansible.terminate()
        held = [h for h in self.locked if h not in self.released]
        if not held:
            return
        hosts = ",".join(held)
        self.view.set_stage("stop")
        for host in held:
            self.view.node(host, "stopping")
        ansible.play("stop", {**extravars, "marteau_hosts": hosts}, on_event=self.on_event)
        self.view.set_stage("collect")
        ansible.play("collect", {**extravars, "marteau_hosts": hosts}, on_event=self.on_event)

    def _pull_prometheus(self, run_dir: Path, project: Project, node: str) -> None:
        """The project's PromQL queries over the bench window of `node` (controller clock)."""
        from marteau.orchestration.prometheus import pull
        from marteau.report.monitoring import cycle_windows
        from marteau.results.compact import scan_compact

        monitor = project.monitor
        assert monitor is not None and monitor.prometheus
        try:
            path = sorted((run_dir / "results" / node).glob("*.mrt"))[0]
            windows = cycle_windows(scan_compact(path).raw.config)
        except (IndexError, MarteauError) as exc:
            self.warn(f"prometheus: no bench window to query ({exc or 'no results'})")
            return
        if not windows:
            self.warn("prometheus: no bench window to query (the bench did not start)")
            return
        offset = node_files(run_dir, [node])[node].get("clock_offset") or 0.0
        start, end = windows[0][1] - float(offset), windows[-1][2] - float(offset)
        self.view.message(f"prometheus: {len(monitor.queries)} query(ies) over {end - start:.0f}s")
        for warning in pull(
            monitor.prometheus, monitor.queries, start, end, monitor.interval, run_dir / "monitors"
        ):
            self.warn(warning)

    def _lost_load(self, run_dir: Path, completed: list[str]) -> dict[str, list[str]]:
        """What each node's bench said it lost (a late start, a short or empty cycle)."""
        from marteau.results.compact import lost_load, scan_compact

        lost = {}
        for host in completed:
            said: list[str] = []
            for path in sorted((run_dir / "results" / host).glob("*.mrt")):
                try:
                    said += lost_load(scan_compact(path).raw.config)
                except MarteauError as exc:
                    said.append(str(exc))
            for text in said:
                self.view.message(f"{host}: LOAD LOST: {text}")
                self.warnings.append(f"{host}: load lost: {text}")
            if said:
                lost[host] = said
        return lost

    @staticmethod
    def _completed(run_dir: Path) -> list[str]:
        results = run_dir / "results"
        if not results.is_dir():
            return []
        return sorted(p.name for p in results.iterdir() if p.is_dir() and any(p.glob("*.mrt")))

    def _write_provenance(
        self,
        run_dir: Path,
        project: Project,
        opts: RunOptions,
        extravars: dict,
        outcome: RunOutcome,
        cycles: str | None,
    ) -> None:
        nodes = node_files(run_dir, outcome.completed)
        count = len(outcome.nodes) or 1
        per_cycle = [int(c) for c in cycles.split(":")] if cycles else []
        total = per_cycle if opts.split else [c * count for c in per_cycle]
        if opts.max_users:  # what the nodes ran, not what was asked
            total = [min(t, opts.max_users * count) for t in total]
        provenance = {
            "job": extravars["marteau_job"],
            "owner": extravars["marteau_owner"],
            "project": project.source,
            "commit": project.commit,
            "test": f"{project.script} {project.test}",
            "inventory": str(self.options.inventory or "embedded default (this machine)"),
            "pool": extravars["marteau_pool"],
            "nodes_wanted": extravars["marteau_nodes"],
            "nodes": outcome.nodes,
            "completed": outcome.completed,
            "missing": outcome.missing,
            "lost": outcome.lost,
            "start_barrier": self.barrier,
            "cancelled": outcome.cancelled,
            "fuse": outcome.fuse,
            "bench_exits": outcome.bench_exits,
            "split": opts.split,
            "allowed_hosts": list(opts.allow_hosts),
            "strict_host": opts.strict_host,
            "max_users": opts.max_users,
            "cycles": cycles,
            "rates": extravars.get("marteau_rates"),
            "arrivals": extravars.get("marteau_arrivals"),
            "ramp": extravars.get("marteau_ramp"),
            "total_users_per_cycle": ":".join(map(str, total)) if total else None,
            "cost": run_cost(nodes, self._elapsed()),
            "clock_offsets": {h: n.get("clock_offset") for h, n in nodes.items()},
            "monitored": list(self.monitored),
            "node_facts": {h: n.get("facts") for h, n in nodes.items()},
            "firewall": {h: n["firewall"] for h, n in nodes.items() if n.get("firewall")},
            "warnings": self.warnings,
            "timings": self.timings,
        }
        (run_dir / "run.json").write_text(json.dumps(provenance, indent=2, default=str) + "\n")
        if total:
            rule = "split among" if opts.split else "run in full on each of"
            self.view.message(
                f"users per cycle {cycles} {rule} {count} node(s): total users per cycle "
                f"{provenance['total_users_per_cycle']}"
            )

    def _report(
        self, run_dir: Path, report_dir: Path, thresholds: Path | None, outcome: RunOutcome
    ) -> int:
        files = (
            sorted((run_dir / "results").glob("*/*.mrt")) if (run_dir / "results").is_dir() else []
        )
        for host, why in outcome.missing.items():
            self.view.message(f"{host}: MISSING from the report ({why})")
        if not files:
            self.view.message(
                f"no results to report; raw files (if any) are in {run_dir / 'results'}"
            )
            return EXIT_FAILED
        self.view.set_stage("report")
        command = [sys.executable, "-c", "from marteau.cli import main; main()", "report", "--html"]
        command += ["-r", str(report_dir)]
        # the report names nodes as the inventory does (results/<host>/), and the missing ones
        command += [f"--node-name={f}={f.parent.name}" for f in files]
        command += [f"--missing-node={host}: {why}" for host, why in outcome.missing.items()]
        command += [f"--warning={warning}" for warning in self.report_warnings]
        monitors = run_dir / "monitors"
        if monitors.is_dir():  # each monitored host's samples (the agent's, Prometheus's)
            command += [
                f"--monitor={d}"
                for d in sorted(monitors.iterdir())
                if (d / "samples.jsonl").is_file()
            ]
        if thresholds:
            command += ["--thresholds", str(thresholds)]
        command += [str(f) for f in files]
        with open(run_dir / "report.log", "w") as log:
            result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
        self.timings["reported"] = self._elapsed()
        violated = result.returncode == 1 and thresholds and any(report_dir.rglob("junit.xml"))
        if result.returncode != 0 and not violated:
            self.view.message(
                f"the report failed (exit {result.returncode}), see {run_dir / 'report.log'}; "
                f"the raw results are in {run_dir / 'results'}"
            )
            return EXIT_FAILED
        if violated:
            self.view.message("thresholds violated, see junit.xml in the report")
        return result.returncode
