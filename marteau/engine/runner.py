"""The bench schedule and the virtual users of one process.

Schedule
========

Every process of a bench (and every node started with the same
``--start-at``) computes the same wall-clock plan from the start instant
``T`` and the bench settings, so recording windows line up across processes
and nodes without exchanging a single message::

    S_0 = T
    for cycle c (from 0) with n_c users (the node's users for that cycle):
        user i (0 <= i < n_c) starts at       U_c,i = S_c + i * startup_delay
        the recording window opens at         W_c   = S_c + n_c * startup_delay
        midCycle(c, n_c) runs (parent) at     M_c   = W_c + duration / 2
        the recording window closes at        E_c   = W_c + duration
        the next cycle is planned at          S_c+1 = E_c + cycle_time

Worker process ``w`` of ``N`` runs the users ``i`` with ``i % N == w``, so
thread ids stay ``0..n_c-1`` per node, exactly one process owning each.

At ``W_c`` the process's recorder starts recording; at ``E_c`` it stops, the
cycle's users are told to stop and are joined (a running test is never
interrupted; whatever it logs after ``E_c`` is dropped).  The parent runs
``tearDownCycle`` at ``max(S_c+1, every worker joined)``, then
``setUpCycle`` of the next cycle, then tells the workers to go.  A worker
that goes late (a long test still finishing, a slow hook) starts at once the
users whose planned start has passed, but the window keeps its planned
instants: ``W_c`` and ``E_c`` never move, so windows stay aligned.  With an
instant join and instant hooks this is FunkLoad's sequence (staging,
``duration`` of recording, join, ``cycle_time``, next cycle); the one
difference is that ``cycle_time`` is counted from ``E_c``, so a slow join
eats into it instead of shifting every later window.

The recording flag is flipped by the schedule, never by staging progress;
users of cycle ``c`` log through a `CycleGate` that is closed at ``E_c`` so
a straggler of cycle ``c`` can never be recorded in the window of ``c+1``.
"""

from __future__ import annotations

import re
import threading
import time
import traceback
import unittest
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

# Virtual users are threads: a small stack keeps 1,000 idle users cheap (only
# touched pages are resident) while leaving room for TLS and deep parsers.
USER_STACK_SIZE = 512 * 1024
TICK = 1.0  # seconds between progress messages, CPU samples and flushes
POLL_SLICE = 0.1  # longest blind wait, so a signal is noticed quickly
ABORT_GRACE = 3.0  # seconds an aborted worker waits for running tests
GUARD = 0.05  # seconds before a window closes when records start being checked (CycleGate.guard)


@dataclass(frozen=True)
class BenchPlan:
    """The bench settings every process needs to compute the schedule."""

    cycles: tuple[int, ...]
    duration: int
    startup_delay: float
    sleep_time: float
    cycle_time: float


@dataclass(frozen=True)
class CycleTimes:
    """The planned instants (epoch seconds) of one cycle."""

    index: int
    users: int
    stage: float  # S_c: user 0 starts
    open: float  # W_c: recording starts
    mid: float  # M_c: midCycle
    close: float  # E_c: recording stops, users stop
    next: float  # S_c+1: planned start of the next cycle

    def user_start(self, thread_id: int, startup_delay: float) -> float:
        return self.stage + thread_id * startup_delay


def schedule(plan: BenchPlan, start: float) -> list[CycleTimes]:
    """The wall-clock plan of every cycle (identical in every process)."""
    times = []
    stage = start
    for index, users in enumerate(plan.cycles):
        opened = stage + users * plan.startup_delay
        close = opened + plan.duration
        nxt = close + plan.cycle_time
        times.append(
            CycleTimes(index, users, stage, opened, opened + plan.duration / 2, close, nxt)
        )
        stage = nxt
    return times


def users_of(worker: int, workers: int, users: int) -> range:
    """The thread ids worker ``worker`` of ``workers`` runs in a cycle of ``users``."""
    return range(worker, users, workers)


class Channel(Protocol):
    """The parent link of a worker (a `multiprocessing.connection.Connection`)."""

    def send(self, obj: Any) -> None: ...
    def recv(self) -> Any: ...
    def poll(self, timeout: float | None = ...) -> bool: ...


class Sink(Protocol):
    """What the runner needs of the recorder (`marteau.engine.recorder.Recorder`)."""

    recording: bool

    def response(self, **fields: Any) -> None: ...
    def test_result(self, **fields: Any) -> None: ...
    def config(self, key: str, value: str) -> None: ...
    def flush(self) -> None: ...
    def sample(self, cpu_percent: float, users: int) -> None: ...
    def snapshot(self) -> Any: ...


# meta method name ("<method>:<cycle>:<cvus>:<thread>"), sink -> test instance
TestFactory = Callable[[str, Any], Any]


def _drop(**_fields: Any) -> None:
    """A closed gate's record method: the cycle is over."""


class CycleGate:
    """The sink one cycle's users log through: the recorder, until the cycle ends.

    The record methods are instance attributes bound to the recorder's, so an
    open gate costs nothing per request; `close` swaps them for a no-op.
    """

    def __init__(self, recorder: Any) -> None:
        self._recorder = recorder
        self._open = True
        self.response: Callable[..., None] = recorder.response
        self.test_result: Callable[..., None] = recorder.test_result
        self.config: Callable[[str, str], None] = recorder.config

    @property
    def recording(self) -> bool:
        return self._open and self._recorder.recording

    def guard(self, close: float) -> None:
        """Shortly before ``close``: keep only what ends by ``close``.

        The recording flag is flipped by a thread that must win the GIL
        first, which can take a switch interval (5 ms); this filter makes
        the window exact meanwhile.  It costs a Python call per record, so
        it is only armed for the last moments of a window.
        """
        response, test_result = self.response, self.test_result

        def guarded_response(**fields: Any) -> None:
            if fields["time"] + fields["duration"] <= close:
                response(**fields)

        def guarded_test_result(**fields: Any) -> None:
            if fields["time"] + fields["duration"] <= close:
                test_result(**fields)

        if self._open:
            self.response = guarded_response
            self.test_result = guarded_test_result

    def close(self) -> None:
        self._open = False
        self.response = _drop
        self.test_result = _drop


_CHAINS = re.compile(
    r"\n\s*(?:The above exception was the direct cause of the following exception"
    r"|During handling of the above exception, another exception occurred):\s*\n"
)


def last_line(text: str) -> str:
    """A traceback in one line: the exception, and the one it was raised from.

    ``OSError: Can't load http://x/. (from HTTPClientError: ... Connection
    refused)``: the user sees the URL and the cause without a traceback.
    """

    def final(block: str) -> str:
        lines = [line.strip() for line in block.strip().splitlines() if line.strip()]
        return lines[-1] if lines else block.strip()

    blocks = _CHAINS.split(text.strip())
    last = final(blocks[-1])
    if len(blocks) > 1:
        cause = final(blocks[-2])
        name, sep, message = cause.partition(": ")
        cause = f"{name.rsplit('.', 1)[-1]}{sep}{message}"
        if cause != last:
            return f"{last} (from {cause})"
    return last


class ProcessRunner:
    """The virtual users of one process, driven by the schedule and the parent.

    Messages from the parent: ``("start", T)``, ``("go", c)``,
    ``("config", key, value)``, ``("stop",)``.  To the parent:
    ``("ready", w)``, ``("progress", w, cycle, started, ok, failures,
    errors, responses)``, ``("problem", w, kind, text)`` (the first test
    error and the first failure of this process), ``("joined", w, cycle, ok,
    failures, errors, responses)``.  Nothing here runs per request: users
    log straight into the recorder; the console reads its counters.
    """

    def __init__(
        self,
        *,
        worker: int,
        workers: int,
        plan: BenchPlan,
        method: str,
        make_test: TestFactory,
        recorder: Sink,
        channel: Channel,
        abort: threading.Event,
    ) -> None:
        self.worker = worker
        self.workers = workers
        self.plan = plan
        self.method = method
        self.make_test = make_test
        self.recorder = recorder
        self.channel = channel
        self.abort = abort
        self._start: float | None = None
        self._go = -1
        self._parent_gone = False
        self._threads: list[threading.Thread] = []
        self._cycle = -1
        self._started = 0
        self._counts = [0, 0, 0, 0]  # ok, failures, errors, responses (this cycle)
        self._problems: dict[str, str] = {}  # kind -> traceback, first only
        self._problems_sent: set[str] = set()
        self._next_tick = 0.0
        self._last_cpu = (time.time(), time.process_time())

    # -- main loop --------------------------------------------------------------

    def run(self) -> None:
        """Serve the bench until its last cycle is joined or it is aborted."""
        threading.stack_size(USER_STACK_SIZE)
        self._send("ready", self.worker)
        if not self._wait(lambda: self._start is not None):
            return
        assert self._start is not None
        for times in schedule(self.plan, self._start):
            if not self._wait(lambda c=times.index: self._go >= c):
                return
            self._run_cycle(times)
            if self.abort.is_set():
                return

    def _run_cycle(self, times: CycleTimes) -> None:
        recorder = self.recorder
        gate = CycleGate(recorder)
        stop = threading.Event()
        self._cycle = times.index
        self._started = 0
        self._counts = [0, 0, 0, 0]
        recorder.snapshot()  # counts from here belong to this cycle
        threads: list[threading.Thread] = []
        self._threads = threads
        delay = self.plan.startup_delay
        for thread_id in users_of(self.worker, self.workers, times.users):
            if not self._sleep_until(times.user_start(thread_id, delay)):
                break
            thread = threading.Thread(
                target=self._user,
                args=(thread_id, times, gate, stop),
                name=f"user-{times.index}-{thread_id}",
                daemon=True,
            )
            thread.start()
            threads.append(thread)
            self._started += 1
        if self._sleep_until(times.open) and time.time() < times.close:
            recorder.recording = True
            if self._sleep_until(times.close - GUARD):
                gate.guard(times.close)
                self._sleep_until(times.close)
        recorder.recording = False
        gate.close()
        stop.set()
        self._join(threads)
        self._count()
        recorder.flush()
        self._send("joined", self.worker, times.index, *self._counts)

    def _join(self, threads: list[threading.Thread]) -> None:
        """Wait for every user to finish its test (only `ABORT_GRACE` when aborted).

        ``Thread.join`` returns the moment a user ends, so the parent hears
        "joined" at once and a late next cycle is as little late as can be.
        """
        grace_end: float | None = None
        for thread in threads:
            while thread.is_alive():
                if self.abort.is_set():
                    grace_end = grace_end or time.time() + ABORT_GRACE
                    if time.time() >= grace_end:
                        return
                thread.join(min(POLL_SLICE, max(self._next_tick - time.time(), 0.001)))
                self._receive()
                if time.time() >= self._next_tick:
                    self._tick(time.time())

    # -- a virtual user ---------------------------------------------------------

    def _user(
        self, thread_id: int, times: CycleTimes, gate: CycleGate, stop: threading.Event
    ) -> None:
        """FunkLoad's thread loop: clearContext, run, sleep ``sleep_time``, until stopped."""
        try:
            test = self.make_test(f"{self.method}:{times.index}:{times.users}:{thread_id}", gate)
        except Exception:
            self._problem("error", traceback.format_exc())
            return
        sleep_time = self.plan.sleep_time
        new_result = unittest.TestResult
        stopped = stop.is_set
        problems = self._problems
        while not stopped():
            result = new_result()
            try:
                test.clearContext()
                test.run(result)
            except Exception:  # the test machinery itself failed: keep going, slowly
                self._problem("error", traceback.format_exc())
                stop.wait(max(sleep_time, 0.5))
                continue
            if result.errors or result.failures:
                # FunkLoad files an exception in the test as a unittest failure
                # with status Error: the test's own status decides.
                status = getattr(test, "test_status", "Error" if result.errors else "Failure")
                kind = "error" if status == "Error" else "failure"
                if kind not in problems:
                    self._problem(kind, (result.errors or result.failures)[0][1])
            if sleep_time:
                stop.wait(sleep_time)

    def _problem(self, kind: str, text: str) -> None:
        self._problems.setdefault(kind, text)

    # -- waiting, messages, ticks -----------------------------------------------

    def _sleep_until(self, instant: float) -> bool:
        """Wait until ``instant``; False if the bench was aborted meanwhile."""
        return self._wait(lambda: False, instant)

    def _wait(self, done: Callable[[], bool], deadline: float | None = None) -> bool:
        """Serve messages and ticks until ``done()`` or ``deadline``; False on abort."""
        while True:
            self._receive()
            now = time.time()
            if now >= self._next_tick:
                self._tick(now)
            if self.abort.is_set():
                return False
            if done():
                return True
            if deadline is not None and now >= deadline:
                return True
            timeout = min(POLL_SLICE, self._next_tick - now)
            if deadline is not None:
                timeout = min(timeout, deadline - now)
            self._poll(max(timeout, 0.0))

    def _poll(self, timeout: float) -> None:
        if self._parent_gone:
            self.abort.wait(timeout)
            return
        try:
            self.channel.poll(timeout)
        except (OSError, EOFError):
            self._lost_parent()

    def _receive(self) -> None:
        while not self._parent_gone:
            try:
                if not self.channel.poll(0):
                    return
                message = self.channel.recv()
            except (OSError, EOFError):
                self._lost_parent()
                return
            kind = message[0]
            if kind == "start":
                self._start = float(message[1])
            elif kind == "go":
                self._go = max(self._go, int(message[1]))
            elif kind == "config":
                self.recorder.config(message[1], message[2])
            elif kind == "stop":
                self.abort.set()

    def _lost_parent(self) -> None:
        """The parent died: stop, keep what was recorded."""
        self._parent_gone = True
        self.abort.set()

    def _send(self, *message: Any) -> None:
        if self._parent_gone:
            return
        try:
            self.channel.send(message)
        except (OSError, EOFError):
            self._lost_parent()

    def _count(self) -> None:
        counts = self.recorder.snapshot()
        self._counts[0] += counts.tests_successful
        self._counts[1] += counts.tests_failure
        self._counts[2] += counts.tests_error
        self._counts[3] += counts.responses

    def _tick(self, now: float) -> None:
        """About once a second: counters to the parent, a CPU sample, a flush."""
        self._next_tick = now + TICK
        wall, cpu = time.time(), time.process_time()
        last_wall, last_cpu = self._last_cpu
        self._last_cpu = (wall, cpu)
        if wall > last_wall and last_wall:
            alive = sum(1 for thread in self._threads if thread.is_alive())
            self.recorder.sample(100.0 * (cpu - last_cpu) / (wall - last_wall), alive)
        if self._cycle >= 0:
            self._count()
            self._send("progress", self.worker, self._cycle, self._started, *self._counts)
        for kind, text in list(self._problems.items()):
            if kind not in self._problems_sent:
                self._problems_sent.add(kind)
                self._send("problem", self.worker, kind, text)
        self.recorder.flush()

    def finish(self) -> None:
        """Report the last problems (the caller closes the recorder)."""
        self._tick(time.time())
