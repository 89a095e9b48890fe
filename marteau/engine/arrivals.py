"""The open model's arrivals: when each test iteration of one process is meant to start.

Why a schedule of instants and not users in a loop: in the closed model a
slow target slows the load down with it, so its slow moments are sampled
less (coordinated omission).  In the open model iterations start at a rate
whatever the target does, and each one's latency is counted from the
instant it was *meant* to start.

A bench's rate is for the whole bench.  Each node runs ``1/nodes`` of it
(`Share`), each worker process ``1/workers`` of the node's, and their
instants interleave: with a constant schedule the ``k``-th arrival of the
whole bench (``k = 0, 1, ...``) belongs to exactly one process, so the
processes' instants together are the schedule of one generator at the full
rate.  With Poisson arrivals each process draws its own exponential gaps;
independent Poisson processes add up to one at the summed rate.

A cycle's rate may be reached by a linear ramp from the previous cycle's
rate (from 0 before the first cycle) over ``ramp`` seconds, before its
recording window opens; the ramp's iterations run but are not counted.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from marteau.errors import MarteauError

ARRIVALS = ("constant", "poisson")
MAX_RATE = 1_000_000.0  # tests/s of one bench: far above what a node can start, a typo guard


def parse_rates(value: str, where: str) -> tuple[float, ...]:
    """``50:100:200`` -> (50.0, 100.0, 200.0): tests per second of each cycle."""
    try:
        rates = tuple(float(item) for item in str(value).split(":"))
    except ValueError:
        rates = ()
    if not rates or not all(0 < rate <= MAX_RATE and math.isfinite(rate) for rate in rates):
        raise MarteauError(
            f"bad rates '{value}' ({where}): expected tests per second per cycle, "
            f"positive numbers up to {MAX_RATE:g} separated by ':', e.g. 50:100:200"
        )
    return rates


def parse_share(value: str) -> tuple[int, int]:
    """``K/N`` -> (K, N): this node is node K (from 0) of N sharing the rates."""
    node, sep, nodes = str(value).partition("/")
    try:
        share = (int(node), int(nodes))
    except ValueError:
        share = (-1, 0)
    if not sep or not 0 <= share[0] < share[1]:
        raise MarteauError(f"--rate-share {value!r}: expected K/N with 0 <= K < N, e.g. 0/3")
    return share


@dataclass(frozen=True)
class Share:
    """One process's part of the bench's rate: node ``node`` of ``nodes``, worker of workers."""

    node: int = 0
    nodes: int = 1
    worker: int = 0
    workers: int = 1

    @property
    def fraction(self) -> float:
        return 1.0 / (self.nodes * self.workers)

    @property
    def phase(self) -> float:
        """Where in its own interval this process's constant arrivals fall (0 <= phase < 1).

        The node takes the bench's arrivals ``k`` with ``k % nodes == node``,
        its worker ``w`` every ``workers``-th of those from the ``w``-th:
        in units of the process's own interval that is ``(w + node/nodes) / workers``.
        """
        return (self.worker + self.node / self.nodes) / self.workers


def arrivals(
    *,
    start: float,
    end: float,
    rate: float,
    previous: float,
    ramp: float,
    share: Share,
    poisson: bool,
    rng: random.Random | None = None,
) -> Iterator[float]:
    """The intended instants (epoch seconds) of one process in ``[start, end)``.

    ``rate`` and ``previous`` are the bench's (all nodes) rates of this cycle
    and of the one before; the rate ramps linearly from ``previous`` to
    ``rate`` during the first ``ramp`` seconds.  Arrival ``k`` is where the
    process's expected count of arrivals since ``start`` reaches
    ``k + phase`` (constant) or the sum of ``k + 1`` exponential draws
    (Poisson): the one formula serves both, ramp or not.
    """
    fraction = share.fraction
    ramp = min(max(ramp, 0.0), end - start)
    low, high = previous * fraction, rate * fraction
    ramped = ramp * (low + high) / 2  # expected arrivals during the ramp
    slope = (high - low) / (2 * ramp) if ramp else 0.0
    draw = (rng or random.Random()).expovariate
    level = draw(1.0) if poisson else share.phase
    span = end - start
    while True:
        if level < ramped:
            # low * t + slope * t^2 = level, the root written so it stays exact when slope ~ 0
            root = low + math.sqrt(max(low * low + 4 * slope * level, 0.0))
            offset = 2 * level / root if root else 0.0
        else:
            offset = ramp + (level - ramped) / high
        if offset >= span:
            return
        yield start + offset
        level += draw(1.0) if poisson else 1.0
