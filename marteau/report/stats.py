"""FunkLoad's report statistics (FUNKLOAD.md §5.2), computed with numpy.

Why numpy: a bench of 10 million requests must be summarised in seconds,
so nothing here loops over requests in Python.  Why so literal: FunkLoad's
own ``--diff``/``--trend`` tools and people's habits read these numbers, so
each quirk of FunkLoad's report is kept on purpose and marked *quirk*:

* pages start at ``post/get/xmlrpc/put/delete/head`` responses, so a
  redirect (logged as ``get``) starts a new page; responses seen before a
  thread's first page are ignored;
* a page's average is the sum of its *successful* durations divided by
  *all* pages;
* the page Apdex counts the individual response durations of the pages;
* percentiles take the value at index ``int(p / 100.0 * n)`` of the sorted
  values (no interpolation), ``-1.0`` when there is none;
* the representative cycle is the first cycle that has at least one step.

Sums are done left to right in file order, as FunkLoad's Python float sums
were, so the ``%.3f`` figures match FunkLoad's digits.

Marteau adds, without changing FunkLoad's figures: P99 and P99.9, whole
bench totals (for thresholds), a per-node breakdown, errors by HTTP code
with a sample body, per-description aggregates, and the load generators'
CPU samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from marteau.results.merge import NodeInfo, cycle_duration, parse_cycles
from marteau.results.records import RESULT_NAMES, SUCCESSFUL
from marteau.results.resultset import ResultSet

__all__ = ["NodeInfo", "cycle_duration", "compute", "parse_cycles"]

DEFAULT_APDEX_T = 1.5
PAGE_TYPES = frozenset(("post", "get", "xmlrpc", "put", "delete", "head"))
# (key, percent): FunkLoad shows p10/p50/p90/p95; p99/p99_9 are Marteau's.
PERCENTILES = (("p10", 10), ("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("p99_9", 99.9))
APDEX_RATINGS = ((0.5, "UNACCEPTABLE"), (0.7, "POOR"), (0.85, "FAIR"), (0.94, "Good"))
BEST_CYCLE_MIN_APDEX = 0.85
CPU_WARNING_PERCENT = 80.0
SAMPLE_BODY_CHARS = 1024
_SHORT_SEGMENT = 64


# ----------------------------------------------------------------- models


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

    def cycle(self, number: int | None) -> CycleStats | None:
        for stats in self.cycles:
            if stats.cycle == number:
                return stats
        return None


# ----------------------------------------------------------------- helpers


def apdex_label(score: float) -> str:
    """FunkLoad's rating of an Apdex score (exact capitalisation)."""
    for limit, label in APDEX_RATINGS:
        if score < limit:
            return label
    return "Excellent"


def apdex(durations: Any, t: float) -> Apdex:
    """Apdex of a numpy array of durations."""
    n = int(durations.size)
    satisfied = int(np.count_nonzero(durations < t))
    tolerating = int(np.count_nonzero(durations < 4 * t)) - satisfied
    score = (satisfied + tolerating / 2.0) / n if n else 0
    return Apdex(t, satisfied, tolerating, n - satisfied - tolerating, score, apdex_label(score))


def percentiles(sorted_values: Any) -> dict[str, float]:
    """Sorted-index percentiles: value at int(p / 100.0 * n), -1.0 when empty."""
    n = int(sorted_values.size)
    out = {}
    for key, p in PERCENTILES:
        out[key] = float(sorted_values[int(p / 100.0 * n)]) if n else -1.0
    return out


def sequential_sum(values: Any) -> float:
    """Left-to-right float sum (numpy's sum is pairwise and may differ in the last bit)."""
    return float(np.cumsum(values)[-1]) if values.size else 0.0


def segment_sums(values: Any, starts: Any, lengths: Any) -> Any:
    """Left-to-right sums of contiguous segments, vectorised over short segments."""
    out = np.zeros(len(starts), dtype=np.float64)
    if not len(starts):
        return out
    short = lengths <= _SHORT_SEGMENT
    active = np.flatnonzero(short)
    k = 0
    while active.size:
        # one vectorised step per position; finished segments drop out
        out[active] += values[starts[active] + k]
        k += 1
        active = active[lengths[active] > k]
    for i in np.flatnonzero(~short):
        out[i] = np.cumsum(values[starts[i] : starts[i] + lengths[i]])[-1]
    return out


def distinct(values: Any) -> Any:
    """Sorted distinct values (np.unique without sorting when the range is small)."""
    if not values.size:
        return np.zeros(0, np.int64)
    low, high = int(values.min()), int(values.max())
    if high - low < 10_000_000:
        return np.flatnonzero(np.bincount((values - low).astype(np.int64))) + low
    return np.unique(values)


def max_per_second(seconds: Any) -> int:
    """The highest number of events sharing one int(time) second."""
    if not seconds.size:
        return 0
    low, high = int(seconds.min()), int(seconds.max())
    if high - low < 50_000_000:
        return int(np.bincount(seconds - low).max())
    return int(np.unique(seconds, return_counts=True)[1].max())


def _ratio(part: int, whole: int) -> float:
    return 100.0 * part / whole if part else 0.0


def _timing(durations: Any, results: Any, t: float) -> dict[str, Any]:
    """Request-level timing: every duration counts (file order for the sum)."""
    n = int(durations.size)
    success = int(np.count_nonzero(results == SUCCESSFUL))
    error = n - success
    total = sequential_sum(durations)
    return dict(
        count=n,
        success=success,
        error=error,
        error_percent=_ratio(error, n),
        min=float(durations.min()) if n else 0.0,
        avg=total / n if n else 0.0,
        max=float(durations.max()) if n else 0.0,
        percentiles=percentiles(np.sort(durations)),
        apdex=apdex(durations, t),
    )


def _segments(keys: Any) -> tuple[Any, Any]:
    """Starts and lengths of runs of equal values in a sorted key array."""
    if not keys.size:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    lengths = np.diff(np.r_[starts, keys.size])
    return starts, lengths


class _LazyColumns(dict):
    """name -> contiguous column of a structured array, extracted on first use."""

    def __init__(self, array: Any) -> None:
        super().__init__()
        self.array = array
        self.names = list(array.dtype.names)

    def __missing__(self, name: str) -> Any:
        column = np.ascontiguousarray(self.array[name])
        self[name] = column
        return column


class Columns:
    """Records as separate contiguous columns, gathered lazily.

    Why: fancy-indexing a packed 53-byte structured array copies whole
    records and is several times slower than taking the one or two
    columns a computation reads.  Indexing by a name returns a column;
    by a slice, mask or index array, another lazy `Columns`; by an int, a
    row (name -> value).
    """

    def __init__(self, data: dict[str, Any], index: Any = None, size: int | None = None) -> None:
        self._data = data
        self._index = index  # None, a range, or an int array
        self._cache: dict[str, Any] = {}
        if size is None:
            size = len(next(iter(data.values()))) if data else 0
        self.size = size if index is None else len(index)

    @classmethod
    def of(cls, array: Any) -> Columns:
        """Columns of a structured array, each copied out only when first used."""
        return cls(_LazyColumns(array), size=len(array))

    def __len__(self) -> int:
        return self.size

    def _resolve(self, key: Any) -> Any:
        current = self._index if self._index is not None else range(self.size)
        if isinstance(key, slice):
            return current[key] if isinstance(current, range) else current[key]
        key = np.asarray(key)
        if key.dtype == bool:
            key = np.flatnonzero(key)
        if isinstance(current, range):
            return current.start + key * current.step
        return current[key]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            column = self._cache.get(key)
            if column is None:
                base = self._data[key]
                index = self._index
                if index is None:
                    column = base
                elif isinstance(index, range):
                    column = base[index.start : index.stop : index.step]
                else:
                    column = base[index]
                self._cache[key] = column
            return column
        if isinstance(key, int | np.integer):
            position = int(key) % self.size if self.size else 0
            names = getattr(self._data, "names", None) or list(self._data)
            return {name: self[name][position] for name in names}
        return Columns(self._data, self._resolve(key))


# ----------------------------------------------------------------- pages


@dataclass
class _Pages:
    """Pages of a set of responses (one row per page), plus the responses they own."""

    cycle: Any  # per page
    duration: Any  # per page, left-to-right sum of its responses
    ok: Any  # per page, bool
    second: Any  # per page, int(time) of its first response
    owned_cycle: Any  # per owned response (page Apdex quirk)
    owned_duration: Any


def _pages(responses: Any, page_type: Any) -> _Pages:
    """Group responses into pages per (cycle, thread), FunkLoad style."""
    key = (responses["cycle"].astype(np.int64) << 32) | responses["thread"].astype(np.int64)
    order = stable_order(key)
    key = key[order]
    r = responses[order]
    starts_page = page_type[r["type"]]
    count = np.cumsum(starts_page)
    # pages counted before each (cycle, thread) group: to drop the responses
    # that come before a thread's first page
    group_starts, group_lengths = _segments(key)
    before = np.repeat(count[group_starts] - starts_page[group_starts], group_lengths)
    owned = count > before
    r = r[owned]
    page_id = count[owned]
    p_starts, p_lengths = _segments(page_id)
    durations = r["duration"]
    not_ok = (
        np.maximum.reduceat((r["result"] != SUCCESSFUL).astype(np.int8), p_starts)
        if p_starts.size
        else np.zeros(0, np.int8)
    )
    return _Pages(
        cycle=r["cycle"][p_starts],
        duration=segment_sums(durations, p_starts, p_lengths),
        ok=not_ok == 0,
        second=r["time"][p_starts].astype(np.int64),
        owned_cycle=r["cycle"],
        owned_duration=durations,
    )


def _page_stats(
    pages: _Pages, select: Any, owned_select: Any, t: float, duration: float
) -> dict[str, Any]:
    """Page timing of the selected pages (quirk: avg over all pages)."""
    count = int(np.count_nonzero(select))
    ok = pages.ok & select
    ok_durations = pages.duration[ok]
    success = int(ok_durations.size)
    error = count - success
    total = sequential_sum(ok_durations)
    return dict(
        count=count,
        success=success,
        error=error,
        error_percent=_ratio(error, count),
        min=float(ok_durations.min()) if success else 0.0,
        avg=total / count if count else 0.0,
        max=float(ok_durations.max()) if success else 0.0,
        percentiles=percentiles(np.sort(ok_durations)),
        apdex=apdex(pages.owned_duration[owned_select], t),
        spps=success / duration if duration else 0.0,
        max_spps=max_per_second(pages.second[ok]),
    )


# ----------------------------------------------------------------- tests


def _test_stats(tests: Any, rs: ResultSet, duration: float) -> dict[str, Any]:
    n = int(tests.size)
    ok = tests["result"] == SUCCESSFUL
    good = tests[ok]
    success = int(good.size)
    cd = good["connection_duration"]
    total = sequential_sum(cd)
    tracebacks = []
    for detail_id in tests["detail"][tests["detail"] > 0]:
        detail = rs.detail(int(detail_id)) or {}
        if detail.get("traceback"):
            tracebacks.append(detail["traceback"])

    def most(name: str) -> int:
        return int(good[name].max()) if success else 0

    return dict(
        count=n,
        success=success,
        error=n - success,
        error_percent=_ratio(n - success, n),
        stps=success / duration if duration else 0.0,
        min=float(cd.min()) if success else 0.0,
        avg=total / success if success else 0.0,
        max=float(cd.max()) if success else 0.0,
        pages=most("pages"),
        redirects=most("redirects"),
        images=most("images"),
        links=most("links"),
        xmlrpc=most("xmlrpc"),
        tracebacks=tracebacks,
    )


# ----------------------------------------------------------------- main


def compute(
    rs: ResultSet,
    apdex_t: float = DEFAULT_APDEX_T,
    nodes: Sequence[NodeInfo] = (),
    thread_base: int = 1000,
) -> BenchStats:
    """All the report's figures.

    ``nodes`` and ``thread_base`` come from `marteau.results.merge`: the
    node of a record is ``thread // thread_base``; with one node or none,
    there is no per-node breakdown (only its CPU samples).
    """
    t = float(apdex_t)
    duration = cycle_duration(rs.config)
    responses = Columns.of(rs.responses)
    tests = Columns.of(rs.tests)
    strings = rs.strings
    page_type = np.array([s in PAGE_TYPES for s in strings] or [False], dtype=np.int64)
    nonempty = np.array([bool(s) for s in strings] or [False], dtype=bool)

    r_cycles = distinct(responses["cycle"])
    t_cycles = distinct(tests["cycle"])
    all_cycles = sorted(set(r_cycles.tolist()) | set(t_cycles.tolist()))

    # responses grouped by cycle, file order inside a cycle
    by_cycle = _in_order(responses, responses["cycle"])
    c_starts, c_lengths = _segments(by_cycle["cycle"])
    cycle_slices = {
        int(by_cycle["cycle"][s]): (int(s), int(s + n))
        for s, n in zip(c_starts, c_lengths, strict=True)
    }
    tests_by_cycle = _in_order(tests, tests["cycle"])
    tc_starts, tc_lengths = _segments(tests_by_cycle["cycle"])
    test_slices = {
        int(tests_by_cycle["cycle"][s]): (int(s), int(s + n))
        for s, n in zip(tc_starts, tc_lengths, strict=True)
    }

    pages = _pages(responses, page_type)
    steps_by_cycle = _step_stats(responses, strings, nonempty, t)

    cycles: list[CycleStats] = []
    for cycle in all_cycles:
        request_stats = page_stats = test_stats = None
        cvus = 0
        if cycle in cycle_slices:
            lo, hi = cycle_slices[cycle]
            part = by_cycle[lo:hi]
            cvus = int(part["cvus"][0])
            request_stats = RequestStats(
                **_timing(part["duration"], part["result"], t),
                cycle=cycle,
                cvus=cvus,
                rps=(hi - lo) / duration if duration else 0.0,
                max_rps=max_per_second(part["time"].astype(np.int64)),
            )
            page_stats = PageStats(
                **_page_stats(pages, pages.cycle == cycle, pages.owned_cycle == cycle, t, duration),
                cycle=cycle,
                cvus=cvus,
            )
        if cycle in test_slices:
            lo, hi = test_slices[cycle]
            part = tests_by_cycle[lo:hi]
            test_cvus = int(part["cvus"][0])
            test_stats = TestStats(cycle=cycle, cvus=test_cvus, **_test_stats(part, rs, duration))
            cvus = cvus or test_cvus
        cycles.append(
            CycleStats(
                cycle, cvus, test_stats, page_stats, request_stats, steps_by_cycle.get(cycle, [])
            )
        )

    recorded = duration * len(cycles)
    overall_requests = overall_pages = overall_tests = None
    if responses.size:
        overall_requests = RequestStats(
            **_timing(responses["duration"], responses["result"], t),
            cvus=max(c.cvus for c in cycles),
            rps=responses.size / recorded if recorded else 0.0,
            max_rps=max_per_second(responses["time"].astype(np.int64)),
        )
        every = np.ones(pages.cycle.size, bool)
        overall_pages = PageStats(
            **_page_stats(pages, every, np.ones(pages.owned_cycle.size, bool), t, recorded),
            cvus=overall_requests.cvus,
        )
    if tests.size:
        overall_tests = TestStats(
            cycle=None, cvus=max(c.cvus for c in cycles), **_test_stats(tests, rs, recorded)
        )

    totals = Totals(
        tests=sum(c.tests.count for c in cycles if c.tests),
        tests_error=sum(c.tests.error for c in cycles if c.tests),
        pages=sum(c.pages.count for c in cycles if c.pages),
        pages_error=sum(c.pages.error for c in cycles if c.pages),
        requests=sum(c.requests.count for c in cycles if c.requests),
        requests_error=sum(c.requests.error for c in cycles if c.requests),
    )
    node_stats = _node_stats(responses, nodes, thread_base, t, duration)
    warnings = list(rs.warnings)
    for node in node_stats:
        if node.cpu and node.cpu.warning:
            warnings.append(
                f"node {node.name}: a load generator process used up to {node.cpu.max:.0f}% "
                f"of a CPU core (above {CPU_WARNING_PERCENT:.0f}%): response times may include "
                "client-side queueing"
            )
    return BenchStats(
        config=dict(rs.config),
        apdex_t=t,
        duration=duration,
        cycles=cycles,
        best_cycle=best_cycle(cycles),
        representative_cycle=representative_cycle(cycles),
        totals=totals,
        overall_requests=overall_requests,
        overall_pages=overall_pages,
        overall_tests=overall_tests,
        descriptions=_description_stats(responses, strings, nonempty, t, recorded),
        errors=_error_groups(responses, rs),
        http_codes=_http_codes(responses, rs),
        nodes=node_stats,
        warnings=warnings,
    )


def stable_order(key: Any) -> Any:
    """np.argsort(key, kind="stable"), in O(n) when there are few distinct keys.

    Keys are mapped to dense ids through a presence table; up to 65536 ids
    fit uint16, which numpy sorts stably with a radix sort.
    """
    if key.size:
        low = int(key.min())
        span = int(key.max()) - low + 1
        if span <= 50_000_000:
            offset = (key - low).astype(np.int64)
            present = np.zeros(span, dtype=bool)
            present[offset] = True
            dense = np.cumsum(present, dtype=np.int64) - 1
            if dense[-1] < 65536:
                return np.argsort(dense[offset].astype(np.uint16), kind="stable")
    return np.argsort(key, kind="stable")


def _in_order(records: Columns, key: Any) -> Columns:
    """`records` stably sorted by `key`; no copy when already sorted (file order by cycle)."""
    if key.size < 2 or bool(np.all(key[1:] >= key[:-1])):
        return records
    return records[stable_order(key)]


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


def _step_stats(
    responses: Any, strings: list[str], nonempty: Any, t: float
) -> dict[int, list[StepStats]]:
    """Per (cycle, step, number) stats, last url/type, last non-empty description."""
    if not responses.size:
        return {}
    key = (
        (responses["cycle"].astype(np.int64) << 48)
        | (responses["step"].astype(np.int64) << 16)
        | responses["number"].astype(np.int64)
    )
    order = stable_order(key)
    r = responses[order]
    starts, lengths = _segments(key[order])
    has_description = nonempty[r["description"]]
    positions = np.where(has_description, np.arange(r.size), -1)
    last_description = np.maximum.reduceat(positions, starts)
    out: dict[int, list[StepStats]] = {}
    for start, length, described in zip(
        starts.tolist(), lengths.tolist(), last_description.tolist(), strict=True
    ):
        part = r[start : start + length]
        last = part[-1]
        step, number = int(last["step"]), int(last["number"])
        out.setdefault(int(last["cycle"]), []).append(
            StepStats(
                **_timing(part["duration"], part["result"], t),
                cycle=int(last["cycle"]),
                cvus=int(part["cvus"][0]),
                key=f"{step:03d}.{number:03d}",
                step=step,
                number=number,
                url=strings[int(last["url"])],
                type=strings[int(last["type"])],
                description=strings[int(r["description"][described])] if described >= 0 else "",
            )
        )
    for steps in out.values():
        steps.sort(key=lambda s: s.key)
    return out


def _description_stats(
    responses: Any, strings: list[str], nonempty: Any, t: float, recorded: float
) -> list[DescriptionStats]:
    if not responses.size:
        return []
    described = responses[nonempty[responses["description"]]]
    order = stable_order(described["description"])
    described = described[order]
    starts, lengths = _segments(described["description"])
    out = []
    for start, length in zip(starts.tolist(), lengths.tolist(), strict=True):
        part = described[start : start + length]
        out.append(
            DescriptionStats(
                **_timing(part["duration"], part["result"], t),
                description=strings[int(part["description"][0])],
                rps=length / recorded if recorded else 0.0,
            )
        )
    out.sort(key=lambda d: d.description)
    return out


def _header(detail: dict[str, Any] | None, name: str) -> str | None:
    for key, value in (detail or {}).get("headers") or ():
        if str(key).lower() == name:
            return str(value)
    return None


def printable_body(body: Any, limit: int = SAMPLE_BODY_CHARS) -> str | None:
    """A failure body cut to `limit` chars, control characters escaped (safe to show)."""
    if body is None or body == "":
        return None
    if isinstance(body, bytes):
        body = body.decode("utf-8", "backslashreplace")
    text = str(body)[:limit]
    return "".join(
        c
        if c in "\n\t" or (c.isprintable() and c != "\x7f")
        else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def _error_groups(responses: Any, rs: ResultSet) -> list[ErrorGroup]:
    """Errors grouped by result, then (code, bobo-exception-file, -line), FunkLoad's order."""
    if not responses.size:
        return []
    bad = responses[responses["result"] != SUCCESSFUL]
    if not bad.size:
        return []
    # one small int per distinct (bobo file, bobo line) so numpy can group
    zope_keys: dict[tuple[str | None, str | None], int] = {(None, None): 0}
    detail_ids = np.unique(bad["detail"])
    lookup = np.zeros(int(detail_ids.max()) + 1, np.int64)
    for detail_id in detail_ids.tolist():
        if detail_id:
            detail = rs.detail(detail_id)
            key = (_header(detail, "bobo-exception-file"), _header(detail, "bobo-exception-line"))
            lookup[detail_id] = zope_keys.setdefault(key, len(zope_keys))
    names = {index: key for key, index in zope_keys.items()}
    keys = np.stack(
        [bad["result"].astype(np.int64), bad["code"].astype(np.int64), lookup[bad["detail"]]]
    )
    uniq, first, inverse, counts = np.unique(
        keys, axis=1, return_index=True, return_inverse=True, return_counts=True
    )
    inverse = inverse.reshape(-1)
    out = []
    for j in range(uniq.shape[1]):
        result, code, zope = (int(v) for v in uniq[:, j])
        sample = bad[int(first[j])]
        detail = rs.detail(int(sample["detail"]))
        file_, line = names[zope]
        out.append(
            ErrorGroup(
                result=RESULT_NAMES[result],
                code=code,
                count=int(counts[j]),
                exception_file=file_,
                exception_line=line,
                exception_type=_header(detail, "bobo-exception-type"),
                exception_value=_header(detail, "bobo-exception-value"),
                traceback=(detail or {}).get("traceback") or None,
                sample_url=rs.strings[int(sample["url"])],
                cycles=np.unique(bad["cycle"][inverse == j]).tolist(),
            )
        )
    # FunkLoad: Failures then Errors; keys sorted as strings, None first
    rank = {"Failure": 0, "Error": 1}
    out.sort(
        key=lambda g: (
            rank.get(g.result, 2),
            str(g.code),
            g.exception_file or "",
            g.exception_line or "",
        )
    )
    return out


def _http_codes(responses: Any, rs: ResultSet) -> list[HttpCodeStats]:
    if not responses.size:
        return []
    codes = distinct(responses["code"])
    counts = [int(np.count_nonzero(responses["code"] == code)) for code in codes.tolist()]
    out = []
    for code, count in zip(codes.tolist(), counts, strict=True):
        mask = responses["code"] == code
        results = responses["result"][mask]
        not_ok = np.flatnonzero(mask & (responses["result"] != SUCCESSFUL))
        sample_url, sample_body = rs.strings[int(responses["url"][np.flatnonzero(mask)[0]])], None
        for index in not_ok[:50].tolist():
            detail = rs.detail(int(responses["detail"][index]))
            if detail and detail.get("body"):
                sample_url = rs.strings[int(responses["url"][index])]
                sample_body = printable_body(detail["body"])
                break
        else:
            if not_ok.size:
                sample_url = rs.strings[int(responses["url"][not_ok[0]])]
        out.append(
            HttpCodeStats(
                code=int(code),
                count=int(count),
                success=int(np.count_nonzero(results == 0)),
                failure=int(np.count_nonzero(results == 1)),
                error=int(np.count_nonzero(results == 2)),
                sample_url=sample_url,
                sample_body=sample_body,
            )
        )
    return out


def _cpu(samples: Any) -> CpuStats | None:
    if samples is None or not getattr(samples, "size", 0):
        return None
    cpu = samples["cpu_percent"].astype(np.float64)
    peak = float(cpu.max())
    return CpuStats(int(cpu.size), peak, float(cpu.mean()), peak > CPU_WARNING_PERCENT)


def _node_stats(
    responses: Any, nodes: Sequence[NodeInfo], thread_base: int, t: float, duration: float
) -> list[NodeStats]:
    out = []
    node_of = responses["thread"] // thread_base if len(nodes) > 1 else None
    for node in nodes:
        mine = responses if node_of is None else responses[node_of == node.index]
        per_cycle = []
        if mine.size:
            order = stable_order(mine["cycle"])
            mine_sorted = mine[order]
            starts, lengths = _segments(mine_sorted["cycle"])
            for start, length in zip(starts.tolist(), lengths.tolist(), strict=True):
                part = mine_sorted[start : start + length]
                cycle = int(part["cycle"][0])
                own = node.cycles[cycle] if cycle < len(node.cycles) else int(part["cvus"][0])
                per_cycle.append(
                    RequestStats(
                        **_timing(part["duration"], part["result"], t),
                        cycle=cycle,
                        cvus=own,
                        rps=length / duration if duration else 0.0,
                        max_rps=max_per_second(part["time"].astype(np.int64)),
                    )
                )
        recorded = duration * len(per_cycle)
        overall = RequestStats(
            **_timing(mine["duration"], mine["result"], t),
            cvus=max((c.cvus for c in per_cycle), default=0),
            rps=mine.size / recorded if recorded else 0.0,
            max_rps=max_per_second(mine["time"].astype(np.int64)),
        )
        out.append(NodeStats(node.name, node.source, per_cycle, overall, _cpu(node.samples)))
    return out


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
