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
from marteau.engine.figures import LiveFigures
from marteau.engine.fuse import FUSE_EXIT
from marteau.errors import MarteauError
from marteau.orchestration.driver import Ansible, PlayResult
from marteau.orchestration.live import LiveView
from marteau.orchestration.prepare import job_vars, new_job_id
from marteau.orchestration.project import Project
from marteau.orchestration.run_events import LOCK_TASK, NAMED_TASK, RunEvents, one_line
from marteau.orchestration.run_options import (
    Asked,
    RunOptions,
    bench_timeout,
    check_open_model,
    check_options,
)
from marteau.orchestration.validate import Pool, check_run, where

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = exits.OK, exits.FAILURES, exits.BAD_INPUT


class RunFailed(Exception):
    """The run could not go on (not bad input): exit 1 with this message."""


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


def run_cost(nodes: dict[str, dict], seconds: float) -> dict | None:
    """What the run's nodes cost, from their `marteau_cost_per_hour` (None if none has one)."""
    rates = {}
    for host, node in nodes.items():
        try:
            # a node without one: float(None) raises the TypeError caught below
            rates[host] = float(node.get("cost_per_hour"))  # type: ignore[arg-type]
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


ENGINE_LINE = re.compile(r"^\* Engine: (.{1,300})$", re.MULTILINE)
LOG_HEAD = 64 * 1024  # the bench's Configuration section is at the top of its log


def node_engine(run_dir: Path, host: str) -> str | None:
    """How the node's bench ran the engine (``compiled``, ``pure: why``), from its log."""
    try:
        with open(run_dir / "results" / host / "bench.log", "rb") as log:
            head = log.read(LOG_HEAD).decode("utf-8", "replace")
    except OSError:
        return None
    found = ENGINE_LINE.search(head)
    return found.group(1) if found else None


def split_cycles(cycles: str, count: int) -> list[str]:
    """Each node's share of every cycle (the first nodes take the remainder)."""
    values = [int(c) for c in cycles.split(":")]
    return [
        ":".join(str(v // count + (1 if i < v % count else 0)) for v in values)
        for i in range(count)
    ]


class LoadTestRun(RunEvents):
    """``figures``: where each node's progress lines go besides the view (`--metrics-port`)."""

    def __init__(
        self,
        options: RunOptions,
        view: LiveView | None = None,
        figures: LiveFigures | None = None,
    ) -> None:
        super().__init__(view or LiveView(), figures)
        self.options = options
        self.cancelled: int | None = None  # the signal that cancelled the run
        self.nodes: list[str] = []  # the nodes of the run

    # -- signals --------------------------------------------------------------

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.cancelled is None:
            self.cancelled = signum
            self.view.message(
                f"{signal.Signals(signum).name}: cancelling (stopping the benches, collecting)"
            )
            return
        raise KeyboardInterrupt  # a second signal: stop waiting

    def cancel_requested(self) -> bool:
        """A signal, or a node's safety fuse: stop the benches and collect what ran."""
        return self.cancelled is not None or self.fuse is not None

    # -- the run --------------------------------------------------------------

    def run(self) -> RunOutcome:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            return self._run()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _run(self) -> RunOutcome:
        opts = self.options
        asked = check_options(opts, self.view)
        project = asked.project
        job = new_job_id()
        run_dir = (opts.runs_dir / job).resolve()
        report_dir = (opts.report_dir or run_dir / "report").resolve()
        self.view.title = f"{project.name or project.test} · job {job}"
        ansible = Ansible(run_dir, opts.inventory)  # checks the inventory path first
        pool_where = "--pool" if opts.pool else where(project, "pool") if project.pool else ""
        checked = Pool(
            asked.pool,
            pool_where or "the default pool",
            asked.wanted,
            asked.named,
            where(project, "nodes"),
        )
        check_run(project, opts.url, ansible.inventory, ansible.envvars(), checked, self.warn)
        check_open_model(opts, project, asked.rates)
        self.view.set_stage("prepare")
        extravars = self._extravars(asked, run_dir, job)
        if ansible.inventory.is_file():
            shutil.copy(ansible.inventory, run_dir / "inventory.ini")
        self.timings["prepared"] = self._elapsed()
        outcome = RunOutcome(EXIT_FAILED, run_dir=run_dir, report_dir=report_dir)
        main: PlayResult | None = None
        try:
            main = self._lock_and_run(ansible, extravars, asked.pool, asked.wanted)
            outcome.nodes = list(self.nodes)
            self.timings["ran"] = self._elapsed()
        finally:
            self._wind_down(ansible, extravars, job)
        self._gather(outcome, main, project)
        self._write_provenance(run_dir, project, opts, extravars, outcome, asked.cycles)
        code = self._report(run_dir, report_dir, asked.thresholds, outcome)
        outcome.timings = dict(self.timings)
        outcome.exit_code = self._exit_code(outcome, code)
        return outcome

    def _extravars(self, asked: Asked, run_dir: Path, job: str) -> dict[str, Any]:
        """The playbooks' variables: the job's, then the options', which win over -e."""
        opts, project = self.options, asked.project
        extravars = job_vars(
            project,
            run_dir,
            job,
            cycles=asked.cycles,
            duration=asked.duration,
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
            marteau_pool=asked.pool,
            marteau_nodes=asked.wanted,
            marteau_named_nodes=asked.named,
            marteau_split=opts.split,
            marteau_workers=opts.workers or 0,
            marteau_bench_extra_args=bench_args,
            marteau_max_clock_offset=opts.max_clock_offset,
        )
        timeout = opts.bench_timeout or bench_timeout(
            project, asked.cycles or asked.rates, asked.duration
        )
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
        return extravars

    def _wind_down(self, ansible: Ansible, extravars: dict, job: str) -> None:
        """Whatever happened: stop and collect after a cancel, stop the monitoring,
        release every lock still held."""
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

    def _gather(self, outcome: RunOutcome, main: PlayResult | None, project: Project) -> None:
        """What the nodes gave: the completed and the missing, the load lost, the
        benches' exits, Prometheus's series."""
        run_dir = outcome.run_dir
        assert run_dir is not None
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
                # no bench_rc: int(None) raises the TypeError suppressed above
                outcome.bench_exits[host] = int(node.get("bench_rc"))  # type: ignore[arg-type]

    def _exit_code(self, outcome: RunOutcome, report: int) -> int:
        """The run's exit status: a signal, the fuse, no results, else the worst of the
        benches', the report's and the load lost (`exits.PRECEDENCE`)."""
        if outcome.cancelled:
            return exits.SIGNAL_BASE + int(self.cancelled or signal.SIGINT)
        if outcome.fuse:
            return FUSE_EXIT
        if not outcome.completed:  # no node gave results: the run could not finish
            return EXIT_FAILED
        lost = [exits.INCOMPLETE] if outcome.missing or outcome.lost else []
        return exits.combine([report, *outcome.bench_exits.values(), *lost])

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
            # what the wheelhouse offered (its compiled wheel's tag, else why none) and
            # what each node's bench ran (`marteau.native.describe`)
            "engine": {
                "wheelhouse": extravars.get("marteau_wheelhouse_engine"),
                "nodes": {h: node_engine(run_dir, h) for h in nodes},
            },
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
