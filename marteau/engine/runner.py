"""The virtual users of one process, driven by the schedule and the parent.

Every process computes the bench's wall-clock plan alone
(`marteau.engine.schedule`); this module runs its share of it.

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
``E_c``; the control greenlet joins them when the last one ends.  The open
model's users (`marteau.engine.open_users`) take arrivals instead.

The recording flag is flipped by the schedule, never by staging progress;
users of cycle ``c`` log through a `CycleGate` (`marteau.engine.cycle`) that
is closed at ``E_c`` so a straggler of cycle ``c`` can never be recorded in
the window of ``c+1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
import traceback
import unittest
from collections.abc import Callable
from typing import Any, Protocol, cast

import greenlet

from marteau.engine.cycle import EARLY, GUARD, Cycle, CycleGate, reach
from marteau.engine.figures import sampled_durations
from marteau.engine.fuse import Probe
from marteau.engine.hub import LAG_WARNING, Hub, HubGreenlet, install_sleep
from marteau.engine.open_users import OpenModel
from marteau.engine.schedule import BenchPlan, CycleTimes, schedule, users_of
from marteau.results.records import ERROR, FAILURE

getcurrent = greenlet.getcurrent
TICK = 1.0  # seconds between progress messages, CPU samples and flushes
POLL_SLICE = 0.1  # heartbeat: an abort is noticed within this, and the loop's lag measured
ABORT_GRACE = 3.0  # seconds an aborted worker waits for running tests
KILL_WAIT = 1.0  # then seconds it waits for the tests it ended to clean up
ARMED_OPEN_USERS = 16  # open model: users each process builds while arming (the rest on demand)


class Channel(Protocol):
    """The parent link of a worker (a `multiprocessing.connection.Connection`)."""

    def send(self, obj: Any) -> None: ...
    def recv(self) -> Any: ...
    def poll(self, timeout: float | None = ...) -> bool: ...


class Sink(Protocol):
    """What the runner needs of the recorder (`marteau.engine.recorder.Recorder`)."""

    recording: bool

    # the record fields as keywords (`Recorder.response`, `Recorder.test_result`)
    @property
    def response(self) -> Callable[..., None]: ...
    @property
    def test_result(self) -> Callable[..., None]: ...
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


class BenchResult(unittest.TestResult):
    """unittest's result, less the output buffering a bench never turns on
    (``buffer`` stays False): two calls fewer per test."""

    def startTest(self, test: unittest.TestCase) -> None:
        self.testsRun += 1

    def stopTest(self, test: unittest.TestCase) -> None:
        pass


def _run_queue_wait() -> float:
    """Seconds the calling thread has waited for a CPU (Linux schedstat; 0 elsewhere)."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as stat:
            return int(stat.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


class ProcessRunner(OpenModel):
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
        self._current: Cycle | None = None
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

                def go(c: int = times.index) -> bool:
                    return self._go >= c

                if not self._wait(go):
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
        cycle = Cycle(times, gate, tests)
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

    def _at(self, cycle: Cycle, instant: float, action: Callable[..., None], *args: Any) -> None:
        """Run ``action(*args)`` on the hub at the epoch ``instant`` (at most `EARLY`
        before it: a user's start; a window's edge `reach`es it)."""
        loop = self._hub.loop  # type: ignore[union-attr]

        def fire() -> None:
            early = instant - time.time()
            if early > EARLY:  # the loop's clock and the wall clock drifted apart
                cycle.timers.append(loop.call_later(early, fire))
            else:
                action(*args)

        cycle.timers.append(loop.call_later(max(instant - time.time(), 0.0), fire))

    def _open_window(self, cycle: Cycle) -> None:
        reach(cycle.times.open)
        now = time.time()
        if not cycle.closed and now < cycle.times.close:
            self.recorder.recording = True
            cycle.opened = now

    def _close_window(self, cycle: Cycle) -> None:
        """E_c (or an abort): stop recording, close the gate, tell the users to stop."""
        if cycle.closed and not cycle.timers:
            return
        reach(cycle.times.close)  # an abort, long before E_c, does not wait
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

    def _join(self, cycle: Cycle) -> None:
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

    def _kill(self, cycle: Cycle) -> None:
        """After an abort's grace: end the tests still running (their cleanup runs)."""
        loop = self._hub.loop  # type: ignore[union-attr]
        for user in list(cycle.users):
            loop.call_soon(user.throw, greenlet.GreenletExit)
        deadline = time.time() + KILL_WAIT
        while cycle.users and time.time() < deadline:
            self._park(POLL_SLICE)

    # -- a virtual user ---------------------------------------------------------

    def _start_user(self, cycle: Cycle, thread_id: int, intended: float | None = None) -> None:
        hub = self._hub
        assert hub is not None
        user = HubGreenlet(self._user, parent=hub.greenlet)
        user.hub = hub
        cycle.users.add(user)
        self._started += 1
        user.switch(thread_id, cycle, intended)  # runs until the user first waits

    def _user(self, thread_id: int, cycle: Cycle, intended: float | None = None) -> None:
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
            me = cast(HubGreenlet, getcurrent())  # this user, started by `_start_user`
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

    def _user_loop(self, thread_id: int, cycle: Cycle) -> None:
        times = cycle.times
        if thread_id in cycle.tests:
            test = cycle.tests.pop(thread_id)
        else:
            test = self._build(times.index, times.users, thread_id, cycle.gate)
        if test is None:
            return
        sleep_time = self.plan.sleep_time
        new_result = BenchResult
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

    def _rest(self, cycle: Cycle, seconds: float) -> None:
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
    def _end_rest(cycle: Cycle, user: Any) -> None:
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
