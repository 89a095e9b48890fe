"""The report's figures as plain data, and the choices made on them.

Why apart: every renderer (rst, HTML, charts, summary.json, org, JUnit)
reads these types and nothing of how they are computed (numpy), so a
change to the computation never reaches them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from marteau.report.errors import ErrorKind
from marteau.report.open_model import OpenStats

APDEX_RATINGS = ((0.5, "UNACCEPTABLE"), (0.7, "POOR"), (0.85, "FAIR"), (0.94, "Good"))
BEST_CYCLE_MIN_APDEX = 0.85


@dataclass
class Apdex:
    """Apdex counts and score: satisfied d < T, tolerating T <= d < 4T."""

    t: float
    satisfied: int = 0
    tolerating: int = 0
    frustrated: int = 0
    score: float = 0.0
    label: str = "UNACCEPTABLE"


@dataclass
class Timing:
    """Counts and durations shared by request, page and per-request stats."""

    count: int
    success: int
    error: int
    error_percent: float
    min: float
    avg: float
    max: float
    percentiles: dict[str, float]
    apdex: Apdex


@dataclass
class RequestStats(Timing):
    """FunkLoad's AllResponseStat: every response of a cycle (or of the bench)."""

    cycle: int | None = None  # None for the whole bench
    cvus: int = 0
    rps: float = 0.0
    max_rps: int = 0


@dataclass
class PageStats(Timing):
    """FunkLoad's PageStat; min/max/percentiles over successful pages only."""

    cycle: int | None = None
    cvus: int = 0
    spps: float = 0.0
    max_spps: int = 0


@dataclass
class StepStats(Timing):
    """FunkLoad's ResponseStat: the responses of one ``step.number`` in a cycle."""

    cycle: int | None = None
    cvus: int = 0
    key: str = ""  # "%03d.%03d" % (step, number)
    step: int = 0
    number: int = 0
    url: str = ""
    type: str = ""
    description: str = ""


@dataclass
class DescriptionStats(Timing):
    """All responses of the whole bench that share a description (per-page thresholds)."""

    description: str = ""
    rps: float = 0.0


@dataclass
class TestStats:
    """FunkLoad's TestStat; min/avg/max are over connection_duration of successful tests."""

    cycle: int | None
    cvus: int
    count: int
    success: int
    error: int
    error_percent: float
    stps: float
    min: float
    avg: float
    max: float
    pages: int
    redirects: int
    images: int
    links: int
    xmlrpc: int
    tracebacks: list[str] = field(default_factory=list)


@dataclass
class CycleStats:
    """One cycle; a part is None when the cycle has no record of that kind (no row)."""

    cycle: int
    cvus: int
    tests: TestStats | None
    pages: PageStats | None
    requests: RequestStats | None
    steps: list[StepStats]  # sorted by key


@dataclass
class ErrorGroup:
    """Failures or errors sharing (result, code, bobo-exception-file, -line)."""

    result: str  # "Failure" or "Error"
    code: int
    count: int
    exception_file: str | None
    exception_line: str | None
    exception_type: str | None
    exception_value: str | None
    traceback: str | None
    sample_url: str
    cycles: list[int]


@dataclass
class HttpCodeStats:
    """Responses by status code (-1: no HTTP answer), with a sample failure body."""

    code: int
    count: int
    success: int
    failure: int
    error: int
    sample_url: str
    sample_body: str | None


@dataclass
class CpuStats:
    """A node's generator CPU samples (percent of one core, per process)."""

    samples: int
    max: float
    mean: float
    warning: bool  # max above CPU_WARNING_PERCENT: the generator may have limited the load


@dataclass
class NodeStats:
    """A node's share of the bench: request stats per cycle and overall, and its CPU."""

    name: str
    source: str
    cycles: list[RequestStats]  # cvus = the node's own users
    overall: RequestStats
    cpu: CpuStats | None


@dataclass
class Totals:
    """'The bench contains:' totals over all cycles."""

    tests: int
    tests_error: int
    pages: int
    pages_error: int
    requests: int
    requests_error: int


@dataclass
class BenchStats:
    """Everything the report shows, computed once from a ResultSet."""

    config: dict[str, str]
    apdex_t: float
    duration: float  # one cycle's recording window, seconds
    cycles: list[CycleStats]
    best_cycle: int | None  # a cycle number, see best_cycle()
    representative_cycle: int | None
    totals: Totals
    overall_requests: RequestStats | None  # the whole bench, rates over recorded time
    overall_pages: PageStats | None
    overall_tests: TestStats | None
    descriptions: list[DescriptionStats]
    errors: list[ErrorGroup]
    http_codes: list[HttpCodeStats]
    nodes: list[NodeStats]
    warnings: list[str] = field(default_factory=list)
    # the headline's Apdex: every response, an error counted frustrated (the standard's rule)
    apdex: Apdex | None = None
    error_kinds: list[ErrorKind] = field(default_factory=list)
    # the open model's figures: none for a closed bench
    open_cycles: list[OpenStats] = field(default_factory=list)
    open_overall: OpenStats | None = None

    def cycle(self, number: int | None) -> CycleStats | None:
        for stats in self.cycles:
            if stats.cycle == number:
                return stats
        return None


def apdex_label(score: float) -> str:
    """FunkLoad's rating of an Apdex score (exact capitalisation)."""
    for limit, label in APDEX_RATINGS:
        if score < limit:
            return label
    return "Excellent"


def milliseconds(seconds: float | None) -> str:
    """A duration for Marteau's own tables and charts: ms, 3 significant digits or more.

    Why: FunkLoad's ``%.3f`` seconds print a 0.2 ms response as 0.000;
    here it is 0.200, and 1.49 s is 1,490.  None or negative (FunkLoad's
    -1 for "no value") is "n/a".
    """
    if seconds is None or seconds < 0:
        return "n/a"
    value = seconds * 1000.0
    if value == 0:
        return "0"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.{2 - math.floor(math.log10(value))}f}"


def best_cycle(cycles: Sequence[CycleStats]) -> int | None:
    """Highest SPPS x page Apdex among cycles with page Apdex >= 0.85, else the first."""
    best, best_value = None, -1.0
    for stats in cycles:
        if stats.pages is None or stats.pages.apdex.score < BEST_CYCLE_MIN_APDEX:
            continue
        value = stats.pages.spps * stats.pages.apdex.score
        if value > best_value:
            best, best_value = stats.cycle, value
    if best is None and cycles:
        best = cycles[0].cycle
    return best


def representative_cycle(cycles: Sequence[CycleStats]) -> int | None:
    """Quirk: FunkLoad meant 'most steps' but picks the first cycle having a step."""
    for stats in cycles:
        if stats.steps:
            return stats.cycle
    return cycles[0].cycle if cycles else None


def slowest_requests(stats: BenchStats, number: int = 5) -> list[StepStats]:
    """The `number` slowest per-request averages of the best cycle, FunkLoad's order.

    FunkLoad sorts (avg, step, type, url, description, apdex) tuples, highest first.
    """
    cycle = stats.cycle(stats.best_cycle)
    if cycle is None:
        return []
    ranked = sorted(
        cycle.steps,
        key=lambda s: (s.avg, f"{s.step:03d}", s.type, s.url, s.description, s.apdex.score),
        reverse=True,
    )
    return ranked[:number]


def launched(config: dict[str, str]) -> str:
    """The bench start as FunkLoad prints it: the root time's first 19 chars, 'T' -> ' '."""
    return config.get("marteau:time", config.get("time", ""))[:19].replace("T", " ")
