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

In the open model (``BenchPlan.rates``) no user is staged: ``W_c = S_c +
ramp``, iterations arrive from ``S_c`` to ``E_c`` at the cycle's rate and
each takes an idle user of the process's pool (or is dropped and counted
when the pool is busy); see `ProcessRunner._open_user`.

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

Virtual users are greenlets on the process's hub (`marteau.engine.hub`):
loop timers start them at ``U_c,i`` and flip the window at ``W_c`` and
``E_c``; the control greenlet joins them when the last one ends.

The recording flag is flipped by the schedule, never by staging progress;
users of cycle ``c`` log through a `CycleGate` that is closed at ``E_c`` so
a straggler of cycle ``c`` can never be recorded in the window of ``c+1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import threading
import time
import traceback
import unittest
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import greenlet

from marteau.engine.arrivals import Share, arrivals
from marteau.engine.figures import sampled_durations
from marteau.engine.fuse import Probe
from marteau.engine.hub import LAG_WARNING, Hub, HubGreenlet, install_sleep
from marteau.results.records import DROPPED, ERROR, FAILURE, SUCCESSFUL

getcurrent = greenlet.getcurrent
TICK = 1.0  # seconds between progress messages, CPU samples and flushes
POLL_SLICE = 0.1  # heartbeat: an abort is noticed within this, and the loop's lag measured
ABORT_GRACE = 3.0  # seconds an aborted worker waits for running tests
KILL_WAIT = 1.0  # then seconds it waits for the tests it ended to clean up
EARLY = 0.0005  # seconds a loop timer may fire before its instant (the loop's clock drifts)
ARMED_OPEN_USERS = 16  # open model: users each process builds while arming (the rest on demand)
GUARD = 0.05  # seconds before a window closes when records start being checked (CycleGate.guard)


@dataclass(frozen=True)
class BenchPlan:
    """The bench settings every process needs to compute the schedule."""

    cycles: tuple[int, ...]
    duration: int
    startup_delay: float
    sleep_time: float
    cycle_time: float
    max_users: int = 0  # `--max-users`: no cycle runs more users (0: no cap)
    # The open model (`marteau.engine.arrivals`): tests/s of the whole bench per cycle;
    # empty: the closed model, FunkLoad's.  Then `cycles` holds each cycle's pool of users.
    rates: tuple[float, ...] = ()
    poisson: bool = False  # Poisson arrivals, else a constant interval
    ramp: float = 0.0  # seconds of linear ramp from the previous rate before each window
    share: tuple[int, int] = (0, 1)  # this node is node K of N sharing the rates

    @property
    def cycle_users(self) -> tuple[int, ...]:
        """The users each cycle runs: the ones asked (conf, options or the test's own
        `conf_get`), cut to `max_users`, the node operator's quota that none of those
        can raise."""
        if not self.max_users:
            return self.cycles
        return tuple(min(users, self.max_users) for users in self.cycles)


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
    for index, users in enumerate(plan.cycle_users):
        opened = stage + (plan.ramp if plan.rates else users * plan.startup_delay)
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
    def iteration(
        self,
        intended: float,
        time: float,
        duration: float,
        cycle: int,
        thread: int,
        result: int,
        users: int,
    ) -> None: ...
    def pending_durations(self, limit: int) -> tuple[int, list[float]]: ...


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

        The recording flag is flipped by a hub timer, which runs only when
        the user running at that instant yields, and responses that arrived
        before the close may be handled after it; this filter makes the
        window exact meanwhile.  It costs a Python call per record, so
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


def _run_queue_wait() -> float:
    """Seconds the calling thread has waited for a CPU (Linux schedstat; 0 elsewhere)."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as stat:
            return int(stat.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


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


class _Pool:
    """An open-model cycle's users in one process: the idle ones, the arrivals, the counts."""

    __slots__ = (
        "free",
        "threads",
        "busy",
        "peak",
        "arrivals",
        "timer",
        "waiting",
        "intended",
        "dropped",
    )

    def __init__(self, threads: Iterator[int], arrivals: Iterator[float]) -> None:
        self.free: list[Any] = []  # idle users, parked until an arrival or the cycle's end
        self.threads = threads  # thread ids of the users not started yet
        self.busy = 0  # users running an iteration
        self.peak = 0
        self.arrivals = arrivals
        self.timer: asyncio.Handle | None = None  # a loop timer, or a turn (`_arrive_due`)
        self.waiting: float | None = None  # the arrival `timer` is for
        self.intended = 0  # arrivals inside the recording window ...
        self.dropped = 0  # ... and those of them that found every user busy

    def counts(self) -> tuple[int, int, int]:
        return self.intended, self.dropped, self.peak


class _Cycle:
    """One cycle's live state in a process: its users, its timers, its stop flag."""

    __slots__ = ("times", "gate", "tests", "users", "resting", "timers", "closed", "opened", "pool")

    def __init__(self, times: CycleTimes, gate: CycleGate, tests: dict[int, Any]) -> None:
        self.times = times
        self.gate = gate
        self.tests = tests  # thread id -> test instance built while arming (None: it failed)
        self.users: set[HubGreenlet] = set()  # started and not ended
        self.resting: set[Any] = set()  # users in the pause between two tests
        self.timers: list[asyncio.TimerHandle] = []
        self.closed = False  # E_c passed (or abort): users stop after their test
        self.opened: float | None = None  # when recording really started (None: never)
        self.pool: _Pool | None = None  # the open model's users and arrivals


class ProcessRunner:
    """The virtual users of one process, driven by the schedule and the parent.

    Users are greenlets on one event-loop hub (`marteau.engine.hub`): the
    loop's timers start them at their planned instants, open and close the
    recording window, and tick once a second; the runner's own control
    greenlet follows the parent and joins each cycle.

    Messages from the parent: ``("arm",)``, ``("start", T)``, ``("go", c)``,
    ``("config", key, value)``, ``("stop",)``.  To the parent:
    ``("ready", w)`` (test imported), ``("armed", w)`` (cycle 0's users
    built, after the parent's ``setUpBench`` and ``setUpCycle``: FunkLoad's
    order), ``("progress", w, cycle, started, ok, failures,
    errors, responses, durations, weight)`` (a sample of the durations recorded
    since the last one, each standing for ``weight`` responses:
    `marteau.engine.figures`), ``("problem", w, kind, text)`` (the first test
    error and the first failure of this process), ``("warning", w, text)``
    (the hub was held too long by user code), ``("joined", w, cycle, ok,
    failures, errors, responses, opened)`` (``opened``: when the window
    really opened, None if it never did), and with the safety fuse on ``("fuse",
    w, probe)`` every tick (`marteau.engine.fuse`).  Nothing here runs per
    request: users log straight into the recorder; the console reads its
    counters.
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
        fuse: bool = False,
    ) -> None:
        self.worker = worker
        self.workers = workers
        self.plan = plan
        self.method = method
        self.make_test = make_test
        self.recorder = recorder
        self.channel = channel
        self.abort = abort
        self._arm = False
        self._armed: tuple[CycleGate, dict[int, Any]] | None = None  # cycle 0, built early
        self._start: float | None = None
        self._go = -1
        self._parent_gone = False
        self._hub: Hub | None = None
        self._control: Any = None  # the control greenlet while it is parked
        self._current: _Cycle | None = None
        self._cycle = -1
        self._started = 0
        self._counts = [0, 0, 0, 0]  # ok, failures, errors, responses (this cycle)
        self._problems: dict[str, str] = {}  # kind -> traceback, first only
        self._problems_sent: set[str] = set()
        self._next_tick = 0.0
        self._last_cpu = (time.time(), time.process_time())
        self._beat: asyncio.TimerHandle | None = None
        self._beat_due = 0.0  # loop time the heartbeat was planned for
        self._waited = 0.0  # the hub thread's run-queue wait at the last heartbeat
        self._lag_reported = 0.0
        self._probe = Probe() if fuse else None

    # -- main loop --------------------------------------------------------------

    def run(self) -> None:
        """Serve the bench until its last cycle is joined or it is aborted."""
        install_sleep()
        hub = Hub()
        self._hub = hub
        try:
            hub.run(self._main)
        finally:
            self._hub = None
            hub.close()

    def _main(self) -> None:
        """The control greenlet: follow the parent, run the cycles, join them."""
        hub = self._hub
        assert hub is not None
        loop = hub.loop
        fileno = getattr(self.channel, "fileno", None)
        reader = fileno() if fileno is not None else None
        if reader is not None:
            loop.add_reader(reader, self._on_message)
        self._beat_due = loop.time() + POLL_SLICE
        self._waited = _run_queue_wait()
        self._beat = loop.call_at(self._beat_due, self._heartbeat)
        try:
            self._send("ready", self.worker)
            if not self._wait(lambda: self._arm):
                return
            gate = CycleGate(self.recorder)
            users = self.plan.cycle_users[0]
            threads: Any = users_of(self.worker, self.workers, users)
            if self.plan.rates:  # a pool is built as arrivals need it, but the first ones now
                threads = itertools.islice(threads, ARMED_OPEN_USERS)
            self._armed = (
                gate,
                {thread_id: self._build(0, users, thread_id, gate) for thread_id in threads},
            )
            self._beat_due = hub.loop.time()  # building users is not a test holding the loop
            self._send("armed", self.worker)
            if not self._wait(lambda: self._start is not None):
                return
            assert self._start is not None
            for times in schedule(self.plan, self._start):
                if not self._wait(lambda c=times.index: self._go >= c):
                    return
                self._run_cycle(times)
                if self.abort.is_set():
                    return
        finally:
            self._beat.cancel()
            if reader is not None and not self._parent_gone:
                loop.remove_reader(reader)

    def _run_cycle(self, times: CycleTimes) -> None:
        recorder = self.recorder
        gate, tests = self._armed if self._armed and times.index == 0 else (CycleGate(recorder), {})
        self._armed = None
        cycle = _Cycle(times, gate, tests)
        self._current = cycle
        self._cycle = times.index
        self._started = 0
        self._counts = [0, 0, 0, 0]
        recorder.snapshot()  # counts from here belong to this cycle
        if self.plan.rates:
            self._plan_arrivals(cycle)
        else:
            delay = self.plan.startup_delay
            for thread_id in users_of(self.worker, self.workers, times.users):
                self._at(
                    cycle, times.user_start(thread_id, delay), self._start_user, cycle, thread_id
                )
        self._at(cycle, times.open, self._open_window, cycle)
        self._at(cycle, times.close - GUARD, cycle.gate.guard, times.close)
        self._at(cycle, times.close, self._close_window, cycle)
        self._wait(lambda: cycle.closed)
        self._close_window(cycle)  # on abort: at once
        self._join(cycle)
        self._count()
        recorder.flush()
        counts = cycle.pool.counts() if cycle.pool is not None else None
        self._send("joined", self.worker, times.index, *self._counts, cycle.opened, counts)

    def _at(self, cycle: _Cycle, instant: float, action: Callable[..., None], *args: Any) -> None:
        """Run ``action(*args)`` on the hub at the epoch ``instant`` (never early)."""
        loop = self._hub.loop  # type: ignore[union-attr]

        def fire() -> None:
            early = instant - time.time()
            if early > EARLY:  # the loop's clock and the wall clock drifted apart
                cycle.timers.append(loop.call_later(early, fire))
            else:
                action(*args)

        cycle.timers.append(loop.call_later(max(instant - time.time(), 0.0), fire))

    def _open_window(self, cycle: _Cycle) -> None:
        now = time.time()
        if not cycle.closed and now < cycle.times.close:
            self.recorder.recording = True
            cycle.opened = now

    def _close_window(self, cycle: _Cycle) -> None:
        """E_c (or an abort): stop recording, close the gate, tell the users to stop."""
        if cycle.closed and not cycle.timers:
            return
        self.recorder.recording = False
        cycle.gate.close()
        cycle.closed = True
        for timer in cycle.timers:  # users not started yet never start
            timer.cancel()
        cycle.timers.clear()
        loop = self._hub.loop  # type: ignore[union-attr]
        for user in list(cycle.resting):
            loop.call_soon(self._end_rest, cycle, user)
        pool = cycle.pool
        if pool is not None:
            if pool.timer is not None:
                pool.timer.cancel()
            self._drop_late(cycle, pool)
            for user in pool.free:  # idle users end
                loop.call_soon(user.switch, None)
            pool.free.clear()
        self._wake()

    def _join(self, cycle: _Cycle) -> None:
        """Wait for every user to finish its test (only `ABORT_GRACE` when aborted).

        The last user to end wakes this greenlet, so the parent hears
        "joined" at once and a late next cycle is as little late as can be.
        """
        grace_end: float | None = None
        while cycle.users:
            if self.abort.is_set():
                grace_end = grace_end or time.time() + ABORT_GRACE
                if time.time() >= grace_end:
                    self._kill(cycle)
                    return
            self._park(POLL_SLICE)

    def _kill(self, cycle: _Cycle) -> None:
        """After an abort's grace: end the tests still running (their cleanup runs)."""
        loop = self._hub.loop  # type: ignore[union-attr]
        for user in list(cycle.users):
            loop.call_soon(user.throw, greenlet.GreenletExit)
        deadline = time.time() + KILL_WAIT
        while cycle.users and time.time() < deadline:
            self._park(POLL_SLICE)

    # -- a virtual user ---------------------------------------------------------

    def _start_user(self, cycle: _Cycle, thread_id: int, intended: float | None = None) -> None:
        hub = self._hub
        assert hub is not None
        user = HubGreenlet(self._user, parent=hub.greenlet)
        user.hub = hub
        cycle.users.add(user)
        self._started += 1
        user.switch(thread_id, cycle, intended)  # runs until the user first waits

    def _user(self, thread_id: int, cycle: _Cycle, intended: float | None = None) -> None:
        """FunkLoad's thread loop (clearContext, run, sleep ``sleep_time``, until stopped),
        or with ``intended`` a user of the open model's pool."""
        try:
            if intended is None:
                self._user_loop(thread_id, cycle)
            else:
                self._open_user(thread_id, cycle, intended)
        except greenlet.GreenletExit:
            pass
        except BaseException:  # SystemExit or KeyboardInterrupt from a test ends this user
            self._problem("error", traceback.format_exc())
        finally:
            me = getcurrent()
            cycle.users.discard(me)
            if not cycle.users and not me.hub.loop.is_closed():
                me.hub.loop.call_soon(self._wake)

    def _build(self, index: int, users: int, thread_id: int, gate: CycleGate) -> Any:
        """One user's test instance (FunkLoad's meta name); None, and a problem, if it fails."""
        try:
            return self.make_test(f"{self.method}:{index}:{users}:{thread_id}", gate)
        except Exception:
            self._problem("error", traceback.format_exc())
            return None

    def _user_loop(self, thread_id: int, cycle: _Cycle) -> None:
        times = cycle.times
        if thread_id in cycle.tests:
            test = cycle.tests.pop(thread_id)
        else:
            test = self._build(times.index, times.users, thread_id, cycle.gate)
        if test is None:
            return
        sleep_time = self.plan.sleep_time
        new_result = unittest.TestResult
        hub = self._hub
        assert hub is not None
        # One unittest result per user, replaced only after a test that left
        # something in it: a new one per iteration cost about 0.25 µs.
        result = new_result()
        while not cycle.closed:
            waits = hub.switches
            try:
                test.clearContext()
                test.run(result)
            except Exception:  # the test machinery itself failed: keep going, slowly
                self._problem("error", traceback.format_exc())
                self._rest(cycle, max(sleep_time, 0.5))
                result = new_result()
                continue
            if result.errors or result.failures:
                self._failed(test, result)
                result = new_result()
            elif result.skipped or result.expectedFailures or result.unexpectedSuccesses:
                result = new_result()
            if sleep_time and not cycle.closed:
                self._rest(cycle, sleep_time)
            elif hub.switches == waits:
                # A test that never waited (every request refused by --allow-host, an
                # exception before any I/O) would keep the loop, and so the window's
                # end and every other user, from ever running again.
                hub.pass_turn()

    def _failed(self, test: Any, result: unittest.TestResult) -> int:
        """A test that left an error or a failure: note the first of each; its result code.

        FunkLoad files an exception in the test as a unittest failure with
        status Error: the test's own status decides.
        """
        status = getattr(test, "test_status", "Error" if result.errors else "Failure")
        kind = "error" if status == "Error" else "failure"
        if kind not in self._problems:
            self._problem(kind, (result.errors or result.failures)[0][1])
        return ERROR if kind == "error" else FAILURE

    # -- the open model -----------------------------------------------------------

    def _plan_arrivals(self, cycle: _Cycle) -> None:
        """The cycle's arrivals for this process, started from ``S_c`` by `_arrive_due`."""
        plan, times = self.plan, cycle.times
        node, nodes = plan.share
        cycle.pool = _Pool(
            iter(users_of(self.worker, self.workers, times.users)),
            arrivals(
                start=times.stage,
                end=times.close,
                rate=plan.rates[times.index],
                previous=plan.rates[times.index - 1] if times.index else 0.0,
                ramp=plan.ramp,
                share=Share(node, nodes, self.worker, self.workers),
                poisson=plan.poisson,
            ),
        )
        self._at(cycle, times.stage, self._arrive_due, cycle)

    def _arrive_due(self, cycle: _Cycle, started: bool = False) -> None:
        """Start every arrival whose instant has come, then sleep until the next one.

        One timer for the next arrival, not one per arrival: a late loop starts
        the arrivals it missed at once, each still counted from its own instant,
        as long as an idle user takes them.  When none is idle and this turn
        has already started one (``started``), the next waits one loop turn:
        this turn's requests leave only at its end (`Hub.queue_send`), so no
        user can be back before it, and starting every missed arrival at once
        would build a user and open a connection for each, in the loop, making
        it later still.  Measured at 10,000 tests/s from a cold pool: 1,000
        users and 2-3% dropped in the first 0.4 s that way, about 120 users and
        none dropped with the turn.
        """
        pool, hub = cycle.pool, self._hub
        assert pool is not None and hub is not None
        pool.timer = None
        now = time.time() + EARLY  # as a timer would: no loop turn for an arrival this close
        for intended in pool.arrivals:
            if cycle.closed:
                return
            if intended > now:
                delay = max(intended - time.time(), 0.0)
                pool.timer = hub.loop.call_later(delay, self._due, cycle, intended)
                pool.waiting = intended
                return
            if started and not pool.free:
                pool.timer = hub.loop.call_soon(self._due, cycle, intended)
                pool.waiting = intended
                return
            self._arrive(cycle, pool, intended)
            started = True

    def _due(self, cycle: _Cycle, intended: float) -> None:
        """The timer of the next arrival: start it (never early), then the ones after."""
        pool, hub = cycle.pool, self._hub
        assert pool is not None and hub is not None
        early = intended - time.time()
        if early > EARLY:  # the loop's clock and the wall clock drifted apart
            pool.timer = hub.loop.call_later(early, self._due, cycle, intended)
            return
        pool.waiting = None
        if not cycle.closed:
            self._arrive(cycle, pool, intended)
            self._arrive_due(cycle, started=True)

    def _drop_late(self, cycle: _Cycle, pool: _Pool) -> None:
        """At the window's end: the arrivals due that a late loop never started are dropped
        (counted, not forgotten); those not due yet (an abort) are not load."""
        now = time.time()
        late = [pool.waiting] if pool.waiting is not None else []
        pool.waiting = None
        times = cycle.times
        for due in itertools.chain(late, pool.arrivals):
            if due > now:
                break
            pool.intended += times.open <= due < times.close
            self._dropped(cycle, pool, due)

    def _dropped(self, cycle: _Cycle, pool: _Pool, intended: float) -> None:
        times = cycle.times
        pool.dropped += times.open <= intended < times.close
        self.recorder.iteration(intended, intended, 0.0, times.index, 0, DROPPED, pool.busy)

    def _arrive(self, cycle: _Cycle, pool: _Pool, intended: float) -> None:
        """Hand one arrival to an idle user, to a new one, or drop it (the pool is busy)."""
        times = cycle.times
        counted = times.open <= intended < times.close
        pool.intended += counted
        if pool.free:
            user = pool.free.pop()
        else:
            thread_id = next(pool.threads, None)
            if thread_id is None:
                self._dropped(cycle, pool, intended)
                return
            pool.busy += 1
            pool.peak = max(pool.peak, pool.busy)
            self._start_user(cycle, thread_id, intended)
            return
        pool.busy += 1
        pool.peak = max(pool.peak, pool.busy)
        user.switch(intended)

    def _open_user(self, thread_id: int, cycle: _Cycle, intended: float | None) -> None:
        """A user of the open model's pool: run the iteration it is handed, then wait idle
        for the next one (None: the cycle is over).  Each iteration is recorded with the
        instant it was meant to start, so its latency counts any wait for a free user,
        for the loop or for the target before it (coordinated omission)."""
        times = cycle.times
        pool = cycle.pool
        hub = self._hub
        assert pool is not None and hub is not None
        record = self.recorder.iteration
        if thread_id in cycle.tests:
            test = cycle.tests.pop(thread_id)
        else:
            test = self._build(times.index, times.users, thread_id, cycle.gate)
        me = getcurrent()
        new_result = unittest.TestResult
        result = new_result()
        while intended is not None:
            users = pool.busy
            start = time.time()
            if test is None:  # its test instance could not be built (a problem says why)
                code = ERROR
            else:
                try:
                    test.clearContext()
                    test.run(result)
                    code = SUCCESSFUL
                except Exception:  # the test machinery itself failed
                    self._problem("error", traceback.format_exc())
                    code = ERROR
                    result = new_result()
                if result.errors or result.failures:
                    code = self._failed(test, result)
                    result = new_result()
                elif result.skipped or result.expectedFailures or result.unexpectedSuccesses:
                    result = new_result()
            record(intended, start, time.time() - start, times.index, thread_id, code, users)
            pool.busy -= 1
            if cycle.closed:
                return
            pool.free.append(me)
            intended = hub.switch()

    def _rest(self, cycle: _Cycle, seconds: float) -> None:
        """The pause between two tests; the end of the cycle cuts it short."""
        me = getcurrent()
        hub = self._hub
        assert hub is not None
        handle = hub.loop.call_later(seconds, self._end_rest, cycle, me)
        cycle.resting.add(me)
        try:
            hub.switch()
        finally:
            handle.cancel()
            cycle.resting.discard(me)

    @staticmethod
    def _end_rest(cycle: _Cycle, user: Any) -> None:
        if user in cycle.resting:
            cycle.resting.discard(user)
            user.switch()

    def _problem(self, kind: str, text: str) -> None:
        self._problems.setdefault(kind, text)

    # -- waiting, messages, ticks -----------------------------------------------

    def _wait(self, done: Callable[[], bool]) -> bool:
        """Park the control greenlet until ``done()``; False on abort."""
        while True:
            if self.abort.is_set():
                return False
            if done():
                return True
            self._park(POLL_SLICE)

    def _park(self, timeout: float) -> None:
        """Give the hub the hand for at most ``timeout`` or until `_wake`."""
        hub = self._hub
        assert hub is not None
        self._control = getcurrent()
        handle = hub.loop.call_later(timeout, self._wake)
        try:
            hub.switch()
        finally:
            handle.cancel()
            self._control = None

    def _wake(self) -> None:
        """From a loop callback: resume the control greenlet if it is parked."""
        control = self._control
        if control is not None:
            self._control = None
            control.switch()

    def _on_message(self) -> None:
        self._receive()
        self._wake()

    def _heartbeat(self) -> None:
        """Every `POLL_SLICE`: notice an abort, watch the loop's lag, tick every `TICK`."""
        loop = self._hub.loop  # type: ignore[union-attr]
        now = loop.time()
        waited = _run_queue_wait()
        # Time spent waiting for a CPU (a busy machine) is not the test's doing.
        lag = now - self._beat_due - max(waited - self._waited, 0.0)
        self._waited = waited
        if lag > LAG_WARNING and lag > 2 * self._lag_reported:
            self._lag_reported = lag
            self._send(
                "warning",
                self.worker,
                f"worker {self.worker} held its event loop for {lag:.2f} s: a blocking call "
                "in the test (wrap it in marteau.engine.hub.blocking) or many users starting "
                "at once; every user of the process waited meanwhile",
            )
        self._beat_due = now + POLL_SLICE
        self._beat = loop.call_at(self._beat_due, self._heartbeat)
        self._receive()
        wall = time.time()
        if wall >= self._next_tick:
            self._tick(wall)
        if self.abort.is_set():
            current = self._current
            if current is not None and not current.closed:
                self._close_window(current)
            self._wake()

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
            if kind == "arm":
                self._arm = True
            elif kind == "start":
                self._start = float(message[1])
            elif kind == "go":
                self._go = max(self._go, int(message[1]))
            elif kind == "config":
                self.recorder.config(message[1], message[2])
            elif kind == "stop":
                self.abort.set()

    def _lost_parent(self) -> None:
        """The parent died: stop, keep what was recorded."""
        if not self._parent_gone and self._hub is not None:
            fileno = getattr(self.channel, "fileno", None)
            if fileno is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._hub.loop.remove_reader(fileno())
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
            alive = len(self._current.users) if self._current is not None else 0
            self.recorder.sample(100.0 * (cpu - last_cpu) / (wall - last_wall), alive)
        if self._cycle >= 0:  # before the flush: the durations come from the pending records
            self._count()
            durations, weight = sampled_durations(self.recorder)
            self._send(
                "progress",
                self.worker,
                self._cycle,
                self._started,
                *self._counts,
                durations,
                weight,
            )
        for kind, text in list(self._problems.items()):
            if kind not in self._problems_sent:
                self._problems_sent.add(kind)
                self._send("problem", self.worker, kind, text)
        if self._probe is not None:  # before the flush: it samples the pending records
            current = self._current
            users = current.users if current is not None else set()
            resting = current.resting if current is not None else set()
            probe = self._probe.take(self.recorder, users, resting, now)
            self._send("fuse", self.worker, probe)
        self.recorder.flush()

    def finish(self) -> None:
        """Report the last problems (the caller closes the recorder)."""
        self._tick(time.time())
