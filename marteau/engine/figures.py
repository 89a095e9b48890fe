"""A bench's live figures: what its progress line says and what `--metrics-port` exposes.

Counts are exact: the workers' recorder counters, sent once a second.
Response-time quantiles are estimates for watching, not the report's exact
percentiles: with its progress, each worker sends up to `SAMPLE_SIZE`
durations of the responses it recorded in that second, evenly spread over
them, and how many responses each one stands for (reading the buffer the
next flush writes: nothing is added to the hot path).  The parent keeps the
last `QUANTILE_WINDOW` seconds of them (`DurationWindow`) and reads weighted
quantiles there.

`LiveFigures` holds the figures of one or more nodes (one for `marteau
bench`, one per node for `marteau run`, which reads them from the nodes'
progress lines): the bench's or the run's thread writes them, the metrics
exporter's threads read them (`marteau.engine.metrics`).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

SAMPLE_SIZE = 200  # durations per worker and per second
QUANTILES = (0.5, 0.95, 0.99)  # shown on the progress line and exposed
QUANTILE_WINDOW = 10.0  # seconds of samples the quantiles are read from


def sampled_durations(recorder: Any) -> tuple[tuple[float, ...], float]:
    """Up to `SAMPLE_SIZE` durations of the responses recorded since the last flush,
    and how many responses each stands for.  Call on the thread that records,
    before the flush."""
    pending, durations = recorder.pending_durations(SAMPLE_SIZE)
    return tuple(durations), (pending / len(durations) if durations else 0.0)


def weighted_quantiles(
    values: list[tuple[float, float]], quantiles: tuple[float, ...]
) -> list[float | None]:
    """For each quantile q, the value where the share q of the total weight is reached
    (None for all when there is no weight)."""
    total = sum(weight for _, weight in values)
    if total <= 0:
        return [None] * len(quantiles)
    ordered = sorted(values)
    found: list[float | None] = []
    index, reached = 0, 0.0
    for quantile in quantiles:
        goal = quantile * total
        while index < len(ordered) - 1 and reached + ordered[index][1] < goal:
            reached += ordered[index][1]
            index += 1
        found.append(ordered[index][0])
    return found


class DurationWindow:
    """The sampled durations of the last `QUANTILE_WINDOW` seconds, from every worker."""

    def __init__(self, window: float = QUANTILE_WINDOW) -> None:
        self.window = window
        self._samples: deque[tuple[float, tuple[float, ...], float]] = deque()

    def add(self, now: float, durations: tuple[float, ...], weight: float) -> None:
        if durations:
            self._samples.append((now, durations, weight))

    def quantiles(self, now: float) -> dict[float, float]:
        """`QUANTILES` over the window, in seconds; empty without samples."""
        samples = self._samples
        while samples and samples[0][0] <= now - self.window:
            samples.popleft()
        values = [(duration, weight) for _, durations, weight in samples for duration in durations]
        found = weighted_quantiles(values, QUANTILES)
        return {q: v for q, v in zip(QUANTILES, found, strict=True) if v is not None}


def quantile_name(quantile: float) -> str:
    """``p50`` for 0.5: how the progress line and `marteau_bench_status` name it."""
    return f"p{quantile * 100:g}"


def format_quantiles(quantiles: dict[float, float]) -> str:
    """``p50 1.2 ms  p95 31 ms  p99 120 ms``: the end of the bench's progress line, which
    `marteau_bench_status` (the `marteau_bench` role's module) reads."""
    parts = []
    for quantile, seconds in sorted(quantiles.items()):
        ms = seconds * 1000
        parts.append(f"{quantile_name(quantile)} {ms:.{1 if ms < 10 else 0}f} ms")
    return "  ".join(parts)


@dataclass
class NodeFigures:
    """One node's figures as last reported."""

    cycle: int | None = None
    phase: str = "starting"  # staging, recording, stopping, done
    users: int = 0  # users started in the current cycle
    cycle_users: int = 0  # users the current cycle runs
    rps: float = 0.0  # responses per second over the last second
    quantiles: dict[float, float] = field(default_factory=dict)  # seconds, last 10 s
    # per cycle: tests ok, failures, errors, responses (the last counts seen)
    counts: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)

    def totals(self) -> tuple[int, int, int, int]:
        """Tests ok, failures, errors and responses over every cycle so far."""
        sums = [0, 0, 0, 0]
        for counts in self.counts.values():
            for i, value in enumerate(counts):
                sums[i] += value
        return sums[0], sums[1], sums[2], sums[3]


class LiveFigures:
    """The live figures of the nodes of a bench or a run, safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nodes: dict[str, NodeFigures] = {}

    def update(
        self,
        node: str,
        *,
        cycle: int,
        phase: str,
        users: int,
        cycle_users: int,
        rps: float,
        counts: tuple[int, int, int, int],
        quantiles: dict[float, float] | None = None,
    ) -> None:
        """What ``node`` says now of ``cycle``; counts never go back within a cycle."""
        with self._lock:
            figures = self._nodes.setdefault(node, NodeFigures())
            before = figures.counts.get(cycle, (0, 0, 0, 0))
            figures.counts[cycle] = tuple(  # type: ignore[assignment]
                max(a, b) for a, b in zip(before, counts, strict=True)
            )
            figures.cycle, figures.phase = cycle, phase
            figures.users, figures.cycle_users, figures.rps = users, cycle_users, rps
            if quantiles is not None:
                figures.quantiles = dict(quantiles)

    def snapshot(self) -> dict[str, NodeFigures]:
        """A copy of every node's figures, by node name."""
        with self._lock:
            return {
                name: replace(f, quantiles=dict(f.quantiles), counts=dict(f.counts))
                for name, f in self._nodes.items()
            }
