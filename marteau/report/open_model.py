"""The open model's figures: per cycle, the rates, the dropped iterations, the users in
use, and the percentiles of service time and of latency from the intended start.

Why apart from FunkLoad's statistics: those are per request and per test and
say nothing of when a test was *meant* to start; an open-model bench
(``marteau bench --rates``) records that per iteration (`ITERATION_FIELDS`).
Which iterations count for a cycle whose window is ``[W, E)``:

* intended, dropped, and both percentiles: the cycle's iterations whose
  intended start is in the window, whenever they ended (an iteration meant
  to start just before ``E`` that the target held for a second is the very
  one a closed model would have missed);
* achieved rate: iterations of any cycle that *ended* in the window, over
  its duration (what the target really absorbed, as FunkLoad's STPS);
* users in use: the most users busy at an iteration's start, per generator
  process, summed over the processes (an upper bound of the simultaneous peak).

Service time is an iteration's own duration (real start to end);
latency is from its intended start to its end: the service time plus any
wait before it started (a late generator loop). Percentiles are FunkLoad's
(`marteau.report.quantiles.percentiles`), over the iterations that ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from marteau.engine.schedule import BenchPlan, schedule
from marteau.report.quantiles import percentiles
from marteau.results.merge import cycle_duration
from marteau.results.records import DROPPED

LAG_WARNING = 0.05  # seconds of start lag (p99) above which the generator was late
FIGURES = ("p50", "p90", "p95", "p99", "p99_9", "max")


@dataclass
class OpenStats:
    """One cycle's open-model figures (``cycle`` None: the whole bench)."""

    cycle: int | None
    intended: int  # iterations meant to start in the window
    dropped: int  # of which no user was free
    dropped_percent: float
    completed: int  # iterations that ended in the window
    intended_rate: float  # tests/s
    achieved_rate: float  # tests/s
    users: int  # users in use (peak per process, summed)
    service: dict[str, float]  # seconds: p50 p90 p95 p99 p99_9 max (-1: none)
    latency: dict[str, float]  # from the intended start, the same keys
    start_lag: dict[str, float]  # real start - intended start: p99, max


def _figures(values: Any) -> dict[str, float]:
    ordered = np.sort(values)
    found = percentiles(ordered)
    out = {key: found[key] for key in FIGURES if key != "max"}
    out["max"] = float(ordered[-1]) if ordered.size else -1.0
    return out


def _windows(
    config: dict[str, str], cycles: list[int], iterations: Any
) -> dict[int, tuple[float, float]]:
    """Each cycle's recording window, recomputed as the engine planned it."""
    duration = cycle_duration(config)
    try:
        start = float(config["start_at"])
        ramp = float(config.get("marteau:ramp") or 0)
        pause = float(config.get("cycle_time") or 0)
    except (KeyError, ValueError):  # no plan (a file from elsewhere): from the first arrival
        return {
            c: (first, first + duration)
            for c in cycles
            for first in [float(iterations["intended"][iterations["cycle"] == c].min())]
        }
    plan = BenchPlan(
        tuple([1] * (max(cycles) + 1)), int(duration), 0.0, 0.0, pause, 0, rates=(1.0,), ramp=ramp
    )
    return {t.index: (t.open, t.close) for t in schedule(plan, start) if t.index in cycles}


def _stats(
    cycle: int | None, iterations: Any, chosen: Any, ended: Any, seconds: float
) -> OpenStats:
    picked = iterations[chosen]
    dropped = picked["result"] == DROPPED
    ran = picked[~dropped]
    end = ran["time"] + ran["duration"]
    users: dict[int, int] = {}
    for worker, count in zip(picked["worker"].tolist(), picked["users"].tolist(), strict=True):
        users[worker] = max(users.get(worker, 0), count)
    intended, lost = int(picked.size), int(dropped.sum())
    lag = _figures(ran["time"] - ran["intended"])
    return OpenStats(
        cycle=cycle,
        intended=intended,
        dropped=lost,
        dropped_percent=100.0 * lost / intended if intended else 0.0,
        completed=int(ended),
        intended_rate=intended / seconds if seconds else 0.0,
        achieved_rate=ended / seconds if seconds else 0.0,
        users=sum(users.values()),
        service=_figures(ran["duration"]),
        latency=_figures(end - ran["intended"]),
        start_lag={"p99": lag["p99"], "max": lag["max"]},
    )


def open_stats(config: dict[str, str], iterations: Any) -> tuple[list[OpenStats], OpenStats | None]:
    """Per-cycle figures and the whole bench's (rates over the recorded time)."""
    if iterations is None or not iterations.size:
        return [], None
    duration = cycle_duration(config)
    cycles = sorted(set(iterations["cycle"].tolist()))
    windows = _windows(config, cycles, iterations)
    ran = iterations["result"] != DROPPED
    end = iterations["time"] + iterations["duration"]
    per_cycle = []
    everything = np.zeros(iterations.size, bool)
    completed = 0
    for cycle in cycles:
        opened, closed = windows[cycle]
        chosen = (
            (iterations["cycle"] == cycle)
            & (iterations["intended"] >= opened)
            & (iterations["intended"] < closed)
        )
        ended = int((ran & (end >= opened) & (end < closed)).sum())
        everything |= chosen
        completed += ended
        per_cycle.append(_stats(cycle, iterations, chosen, ended, duration))
    overall = _stats(None, iterations, everything, completed, duration * len(cycles))
    overall.users = max((c.users for c in per_cycle), default=0)
    return per_cycle, overall


def open_warnings(cycles: list[OpenStats]) -> list[str]:
    """Dropped iterations and a late generator: what the latency figures leave out or hold."""
    out = []
    for stats in cycles:
        if stats.dropped:
            out.append(
                f"cycle {stats.cycle}: {stats.dropped} of {stats.intended} iterations dropped "
                f"({stats.dropped_percent:.2f}%): every user of the pool was busy; they are "
                "not in the latency percentiles (raise --max-users, or the target is too slow "
                "for this rate)"
            )
        if stats.start_lag["p99"] > LAG_WARNING:
            out.append(
                f"cycle {stats.cycle}: iterations started up to {stats.start_lag['max']:.3f}s "
                f"late (p99 {stats.start_lag['p99']:.3f}s): the generator was late, and that "
                "wait is in the latency from the intended start"
            )
    return out
