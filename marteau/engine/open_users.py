"""The open model's users in one process: arrivals handed to a pool of idle users.

In the open model (``BenchPlan.rates``) iterations arrive at the cycle's
rate (`marteau.engine.arrivals`), whatever the target's speed; each is handed
to an idle user of the process's pool, a new one while the pool has room,
or dropped and counted when every user is busy.  Each iteration is recorded
with the instant it was meant to start, so its latency counts any wait
(coordinated omission).

`OpenModel` is a part of `marteau.engine.runner.ProcessRunner`, kept apart
because it is the one job the closed model does not have; it uses the
runner's hub, recorder, timers and test building.
"""

from __future__ import annotations

import itertools
import time
import traceback
import unittest
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import greenlet

from marteau.engine.arrivals import Share, arrivals
from marteau.engine.cycle import EARLY, Cycle, CycleGate, Pool
from marteau.engine.hub import Hub
from marteau.engine.schedule import BenchPlan, users_of
from marteau.results.records import DROPPED, ERROR, SUCCESSFUL

getcurrent = greenlet.getcurrent


class OpenModel:
    """`ProcessRunner`'s open-model users.

    The runner provides the attributes below and the methods `_at` (a timer at
    an epoch instant), `_start_user`, `_build`, `_failed` and `_problem`.
    """

    plan: BenchPlan
    worker: int
    workers: int
    recorder: Any  # the runner's `Sink`
    _hub: Hub | None

    if TYPE_CHECKING:  # the runner's methods

        def _at(
            self, cycle: Cycle, instant: float, action: Callable[..., None], *args: Any
        ) -> None: ...
        def _start_user(
            self, cycle: Cycle, thread_id: int, intended: float | None = None
        ) -> None: ...
        def _build(self, index: int, users: int, thread_id: int, gate: CycleGate) -> Any: ...
        def _failed(self, test: Any, result: unittest.TestResult) -> int: ...
        def _problem(self, kind: str, text: str) -> None: ...

    def _plan_arrivals(self, cycle: Cycle) -> None:
        """The cycle's arrivals for this process, started from ``S_c`` by `_arrive_due`."""
        plan, times = self.plan, cycle.times
        node, nodes = plan.share
        cycle.pool = Pool(
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

    def _arrive_due(self, cycle: Cycle, started: bool = False) -> None:
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

    def _due(self, cycle: Cycle, intended: float) -> None:
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

    def _drop_late(self, cycle: Cycle, pool: Pool) -> None:
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

    def _dropped(self, cycle: Cycle, pool: Pool, intended: float) -> None:
        times = cycle.times
        pool.dropped += times.open <= intended < times.close
        self.recorder.iteration(intended, intended, 0.0, times.index, 0, DROPPED, pool.busy)

    def _arrive(self, cycle: Cycle, pool: Pool, intended: float) -> None:
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

    def _open_user(self, thread_id: int, cycle: Cycle, intended: float | None) -> None:
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
