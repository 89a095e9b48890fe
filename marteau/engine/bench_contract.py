"""The bench's contract between the bench command and the controller.

`marteau.funkload.bench_command` resolves the test, its conf and the options
into a `BenchSetup` (with the main instance's `ParentSink`, and the conf's
monitor servers behind `MonitorHooks`); `marteau.engine.controller` runs it
and returns an `Outcome`, whose `exit_code` is the command's exit status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from marteau import exits
from marteau.engine.fuse import FUSE_EXIT, FuseLimits
from marteau.engine.schedule import BenchPlan
from marteau.engine.workers import WorkerSpec


class ParentSink:
    """The main instance's sink: it records nothing, but keeps ``addMetadata`` entries."""

    recording = False

    def __init__(self) -> None:
        self.entries: dict[str, str] = {}

    def response(self, *fields: Any, **named: Any) -> None:
        pass

    def test_result(self, *fields: Any, **named: Any) -> None:
        pass

    def config(self, key: str, value: str) -> None:
        self.entries[str(key)] = str(value)


@dataclass
class Outcome:
    """How the bench went: FunkLoad's counts and the process exit status."""

    successes: int = 0
    failures: int = 0
    errors: int = 0
    responses: int = 0
    cycles_done: int = 0
    signum: int | None = None
    hook_error: str | None = None
    problems: dict[str, str] = field(default_factory=dict)
    fuse: str | None = None  # why the safety fuse stopped the bench
    lost: list[str] = field(default_factory=list)  # load lost or shifted, one line each
    # open model: iterations dropped (the pool was busy), one line per cycle; counted in the
    # results and the report, a warning, not an exit status (a `dropped < 1%` threshold is)
    dropped: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """FunkLoad's console entry point: 0, 1 with failures, 255 with errors.

        Marteau's own: `FUSE_EXIT` when the safety fuse stopped the bench,
        128 + signal when a signal did, `exits.INCOMPLETE` when load was lost
        (the counts of a bench that lost a cycle cannot be trusted as they are).
        """
        if self.fuse is not None:
            return FUSE_EXIT
        if self.signum is not None:
            return exits.SIGNAL_BASE + self.signum
        if self.lost:
            return exits.INCOMPLETE
        if self.errors or self.hook_error:
            return exits.ERRORS
        if self.failures:
            return exits.FAILURES
        return exits.OK


@dataclass
class BenchSetup:
    """What the bench command resolved: plan, hooks, workers, files, header values."""

    plan: BenchPlan
    hooks: Any  # the main test instance ("<method>:0:0:0")
    sink: ParentSink
    specs: list[WorkerSpec]
    config: dict[str, str]  # FunkLoad's <config> entries (section 4) + Marteau's
    xml_path: str
    compact_path: str
    start_at: float | None
    header: list[str]  # the "* Key: value" lines of the Configuration section
    title: str
    description: str
    fuse: FuseLimits | None = None  # the safety fuse's limits, if it is on
    start_file: str | None = None  # arm, write `<start_file>.ready`, read the instant here
    start_timeout: float = 300.0  # seconds to wait for the start file once armed
    monitor: MonitorHooks | None = None  # the conf's [monitor] servers (FunkLoad's)


class MonitorHooks(Protocol):
    """The bench's monitor servers (`marteau.funkload.monitor_link.MonitorLink`)."""

    def start(self, key: str) -> None: ...
    def stop(self, key: str) -> None: ...
    def finish(self) -> list[dict[str, str]]: ...
