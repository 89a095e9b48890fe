"""One cycle in one process: the gate its users log through, and its live state.

The runner (`marteau.engine.runner`) and the open model's users
(`marteau.engine.open_users`) share these: what a cycle has started, what
its users are doing, what its timers are, and whether it is over.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

from marteau.engine.hub import HubGreenlet
from marteau.engine.schedule import CycleTimes
from marteau.results.records import RESPONSE_ARGS, TEST_RESULT_ARGS

EARLY = 0.0005  # seconds a loop timer may fire before its instant (the loop's clock drifts)
GUARD = 0.05  # seconds before a window closes when records start being checked (CycleGate.guard)


def reach(instant: float) -> None:
    """Spin to the epoch `instant` when a loop timer fired at most `EARLY` before it: a
    recording window's edges are exact, since FunkLoad counts what ends inside."""
    while 0.0 < instant - time.time() <= EARLY:
        pass


def _drop(*_fields: Any, **_named: Any) -> None:
    """A closed gate's record method: the cycle is over."""


# Where `ResultSink`'s record methods take ``time`` and ``duration`` by position.
RESPONSE_TIME = (RESPONSE_ARGS.index("time"), RESPONSE_ARGS.index("duration"))
TEST_TIME = (TEST_RESULT_ARGS.index("time"), TEST_RESULT_ARGS.index("duration"))


def _ends(fields: tuple[Any, ...], named: dict[str, Any], where: tuple[int, int]) -> float:
    """When a record's request or test ended (its fields by position or by keyword)."""
    at, took = where
    time = fields[at] if len(fields) > at else named["time"]
    duration = fields[took] if len(fields) > took else named["duration"]
    return float(time + duration)


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

        def guarded_response(*fields: Any, **named: Any) -> None:
            if _ends(fields, named, RESPONSE_TIME) <= close:
                response(*fields, **named)

        def guarded_test_result(*fields: Any, **named: Any) -> None:
            if _ends(fields, named, TEST_TIME) <= close:
                test_result(*fields, **named)

        if self._open:
            self.response = guarded_response
            self.test_result = guarded_test_result

    def close(self) -> None:
        self._open = False
        self.response = _drop
        self.test_result = _drop


class Pool:
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


class Cycle:
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
        self.pool: Pool | None = None  # the open model's users and arrivals
