"""The safety fuse: stop a bench whose target is failing or hanging.

A load test against a target that is down or drowning only adds to its
trouble, so a bench can be told to stop itself when, over the last
``window`` seconds, the share of failed responses stayed above a limit or the
median response time did.  The bench then ends as a SIGINT would end it
(results kept and written) and exits with `FUSE_EXIT`.

Nothing here runs per request.  Each worker process takes a `Probe` once a
second (`marteau.engine.runner`, on its hub thread, just before the
recorder's flush):

* the exact counts of responses and failed responses since the last probe,
  from the recorder's counters (those outside FunkLoad's recording windows
  too: a target failing during a ramp-up trips the fuse);
* at most `marteau.engine.figures.SAMPLE_SIZE` durations of those responses,
  evenly spread over the recorder's pending buffer, each standing for
  ``count / sampled`` of them;
* the age of every request in flight: a user whose greenlet is parked in a
  socket wait or a `blocking` call.  A target that accepts and never answers
  produces no response at all, so without this a hang would never trip the
  fuse.  The age counts from the first probe that saw the user in that same
  wait (a request is at most one probe older than it looks).

The parent's `Fuse` keeps the probes of the last ``window`` seconds from
every worker and checks the limits once a second: the error rate is failed
over all responses in the window; the median is the weighted median of the
sampled durations plus each request now in flight with its age.  It never
trips before it has seen a full window of data, so the first seconds of a
bench, and a target that recovers within the window, do not stop it.

The error rate counts every response; the median only those recorded (the
durations come from the recorder's buffer), and requests in flight at any
time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import click

from marteau import exits
from marteau.engine.figures import sampled_durations, weighted_quantiles
from marteau.errors import MarteauError

FUSE_EXIT = exits.FUSE  # `marteau bench` and `marteau run`: stopped by the safety fuse
DEFAULT_WINDOW = 30.0


@dataclass(frozen=True)
class FuseLimits:
    """When to stop: either limit (None: that rule is off), over ``window`` seconds."""

    error_rate: float | None = None  # a fraction of the responses, 0..1
    median: float | None = None  # seconds
    window: float = DEFAULT_WINDOW

    @property
    def enabled(self) -> bool:
        return self.error_rate is not None or self.median is not None

    def describe(self) -> str:
        rules = []
        if self.error_rate is not None:
            rules.append(f"error rate > {100 * self.error_rate:g}%")
        if self.median is not None:
            rules.append(f"median response time > {self.median:g} s")
        return f"{' or '.join(rules)} over {self.window:g} s" if rules else "off"


@dataclass(frozen=True)
class ProbeResult:
    """One worker's second: responses, failed ones, sampled durations, requests in flight."""

    responses: int
    failed: int
    durations: tuple[float, ...]
    weight: float  # responses each sampled duration stands for
    in_flight: tuple[float, ...]  # ages in seconds

    @property
    def empty(self) -> bool:
        return not self.responses and not self.in_flight


class Probe:
    """A worker's side of the fuse: what its recorder and users show, once a second."""

    def __init__(self) -> None:
        self._counted = (0, 0)  # responses, failed: the recorder's totals at the last probe
        self._waits: dict[Any, tuple[int, float]] = {}  # user -> (its wait, first seen)

    def take(
        self, recorder: Any, users: Iterable[Any], resting: set[Any], now: float
    ) -> ProbeResult:
        """Call on the hub thread, before the recorder's flush (the buffer is the last second)."""
        responses_total, failed_total = recorder.responses_seen()
        responses = responses_total - self._counted[0]
        failed = failed_total - self._counted[1]
        self._counted = (responses_total, failed_total)
        durations, weight = sampled_durations(recorder)
        return ProbeResult(
            responses, failed, durations, weight, tuple(self._ages(users, resting, now))
        )

    def _ages(self, users: Iterable[Any], resting: set[Any], now: float) -> list[float]:
        """How long each user parked in a network wait has been in that same wait."""
        waits: dict[Any, tuple[int, float]] = {}
        ages = []
        for user in users:
            if user in resting:
                continue
            wait = getattr(user, "waits", 0)  # odd: parked in a wait (`HubGreenlet.waits`)
            if not wait % 2:
                continue
            seen = self._waits.get(user)
            since = seen[1] if seen is not None and seen[0] == wait else now
            waits[user] = (wait, since)
            ages.append(now - since)
        self._waits = waits
        return ages


def weighted_median(values: list[tuple[float, float]]) -> float | None:
    """The median of ``(value, weight)`` pairs: the value where half the weight is reached."""
    return weighted_quantiles(values, (0.5,))[0]


class Fuse:
    """The parent's side: the last ``window`` seconds of every worker's probes."""

    def __init__(self, limits: FuseLimits) -> None:
        self.limits = limits
        self._probes: deque[tuple[float, ProbeResult]] = deque()
        self._in_flight: dict[int, tuple[float, ...]] = {}  # worker -> ages at its last probe
        self._first: float | None = None  # when the first data arrived

    def add(self, worker: int, now: float, probe: ProbeResult) -> None:
        if self._first is None and not probe.empty:
            self._first = now
        self._probes.append((now, probe))
        self._in_flight[worker] = probe.in_flight

    def forget(self, worker: int) -> None:
        """A worker that ended has nothing in flight any more."""
        self._in_flight.pop(worker, None)

    def check(self, now: float) -> str | None:
        """The reason to stop the bench now, or None."""
        limits = self.limits
        window = limits.window
        probes = self._probes
        while probes and probes[0][0] <= now - window:
            probes.popleft()
        if self._first is None or now - self._first < window:
            return None
        if limits.error_rate is not None:
            responses = sum(probe.responses for _, probe in probes)
            failed = sum(probe.failed for _, probe in probes)
            if responses and failed / responses > limits.error_rate:
                return (
                    f"error rate {100 * failed / responses:.0f}% > "
                    f"{100 * limits.error_rate:g}% over the last {window:g} s"
                )
        if limits.median is not None:
            values = [
                (duration, probe.weight) for _, probe in probes for duration in probe.durations
            ]
            values += [(age, 1.0) for ages in self._in_flight.values() for age in ages]
            median = weighted_median(values)
            if median is not None and median > limits.median:
                return (
                    f"median response time {median:.1f} s > {limits.median:g} s "
                    f"over the last {window:g} s"
                )
        return None


def fuse_line(reason: str) -> str:
    """The one console line that says the fuse stopped the bench (parsed by `marteau run`)."""
    return f"safety fuse: {reason} — bench stopped"


def parse_error_rate(text: str) -> float:
    """``0.5`` or ``50%`` as the fraction 0.5; anything else outside [0, 1) is an error."""
    value = text.strip()
    try:
        rate = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        rate = -1.0
    if not 0 <= rate < 1:
        raise ValueError(
            f"{text!r}: expected a fraction such as 0.5 or a percentage such as 50%, below 100%"
        )
    return rate


def fuse_limits(error_rate: float | None, median: float | None, window: float | None) -> FuseLimits:
    """The limits given on a command line; a window without a limit is an error."""
    if window is not None and error_rate is None and median is None:
        raise MarteauError("--fuse-window needs --fuse-error-rate or --fuse-median")
    return FuseLimits(error_rate, median, DEFAULT_WINDOW if window is None else window)


# click >= 8.2 types ParamType as generic; unsubscripted, as click 8.1 (our lower bound)
# cannot subscript it at run time.
class _ErrorRate(click.ParamType):  # type: ignore[type-arg]
    name = "rate"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_error_rate(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def fuse_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--fuse-error-rate``, ``--fuse-median``, ``--fuse-window`` (`marteau bench` and `run`)."""
    options = [
        click.option(
            "--fuse-error-rate",
            type=_ErrorRate(),
            metavar="R",
            help="Safety fuse: stop when more than R of the responses (0.5 or 50%) failed "
            "over the fuse window.",
        ),
        click.option(
            "--fuse-median",
            type=click.FloatRange(min=0, min_open=True),
            metavar="S",
            help="Safety fuse: stop when the median response time (requests in flight "
            "count with their age) was above S seconds over the fuse window.",
        ),
        click.option(
            "--fuse-window",
            type=click.FloatRange(min=0, min_open=True),
            metavar="S",
            help=f"The safety fuse's sliding window in seconds (default {DEFAULT_WINDOW:g}).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command
