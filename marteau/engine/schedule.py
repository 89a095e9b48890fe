"""The bench schedule: the wall-clock plan every process computes alone.

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
when the pool is busy); see `marteau.engine.open_users`.

Worker process ``w`` of ``N`` runs the users ``i`` with ``i % N == w``, so
thread ids stay ``0..n_c-1`` per node, exactly one process owning each.

Pure arithmetic, no I/O: the report, the service's cost estimate and the
runner all read the same plan from here.
"""

from __future__ import annotations

from dataclasses import dataclass


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
