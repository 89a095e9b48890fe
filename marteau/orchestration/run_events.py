"""What a run's playbook events say about its nodes, shown as they come.

`marteau run` follows its playbooks through ansible-runner's events
(`marteau.orchestration.driver`); `RunEvents` turns them into each node's
state on the live view (locked, benching, released, ...), the bench's
progress lines into the live figures, and what the run must remember (the
locks taken and released, a tripped safety fuse, the start barrier, the
monitored hosts, warnings, timings) for `marteau.orchestration.run`.  Tasks
are recognised by name: the constants below are the roles' task names.
"""

from __future__ import annotations

import time
from typing import Any

from marteau.engine.figures import QUANTILES, LiveFigures, quantile_name
from marteau.engine.fuse import FUSE_EXIT
from marteau.orchestration.driver import Event
from marteau.orchestration.live import LiveView

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
RELEASE_TASK = "Release Marteau's lock on the node"
CLOCK_TASK = "Measure the node's clock offset to the controller"
FIREWALL_TASK = "Close the job user's egress to its allowed hosts"
FIREWALL_REMOVE_TASK = "Remove the job user's egress firewall"
STOP_TASK = "Stop the bench's process group"
# ansible-core's check of a role's meta/argument_specs.yml, first task of each entry point
ARGSPEC_TASK = "Validating arguments against arg spec"
MONITOR_PLAYS = ("Start monitoring the target hosts", "Stop monitoring the target hosts")
MONITORED_TASK = "Keep that the host is monitored"


def one_line(value: object) -> str:
    """A message on one line, whole (ssh's errors span several)."""
    return " ".join(str(value).split())


class RunEvents:
    """A run's view of its nodes, kept from the playbooks' events (`on_event`)."""

    def __init__(self, view: LiveView, figures: LiveFigures | None) -> None:
        self.view = view
        self.figures = figures
        self.fuse: str | None = None  # "<fuse line> (on <host>)": a node's fuse tripped
        self.locked: list[str] = []  # every node this run took a lock on
        self.released: set[str] = set()
        self.timings: dict[str, float] = {}
        self.warnings: list[str] = []
        self.report_warnings: list[str] = []  # also shown in the report (firewall drops)
        self.barrier: dict[str, float] = {}  # the start barrier: fan-out and lead, seconds
        self.monitored: list[str] = []  # the hosts whose monitoring agent started
        self._progress_at: dict[str, int] = {}  # host -> log offset of the last line shown
        self._t0 = time.monotonic()

    def _elapsed(self) -> float:
        return time.monotonic() - self._t0

    def warn(self, text: str) -> None:
        """A warning on the console and in run.json."""
        self.view.message(f"warning: {text}")
        self.warnings.append(text)

    def _warn_in_report(self, warning: str) -> None:
        """A warning on the console, in run.json and in the report (a node's results are
        not what they seem)."""
        self.view.message(f"Warning: {warning}")
        self.warnings.append(warning)
        self.report_warnings.append(warning)

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
        elif kind == "runner_on_ok" and task == STOP_TASK and res.get("stdout") == "killed":
            self._bench_killed(host)
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
        self._warn_in_report(warning)

    def _bench_killed(self, host: str) -> None:
        """A stopped bench outlived its grace and got SIGKILL: what it had not written is lost."""
        warning = (
            f"node {host}: the bench did not end within marteau_bench_kill_after seconds of "
            "SIGTERM and was killed: its results stop where it had written them"
        )
        self._warn_in_report(warning)

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
