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
were, so the ``%.3f`` figures match FunkLoad's digits (``np.bincount``
with weights adds in index order, so per-group sums need no sort; sums
over several chunks or cycles carry the previous partial sum into the
next one's first addition).  Percentiles of a union of groups (a cycle,
the bench, a node) are taken from the groups' sorted runs without merging
them (`run_percentiles`).

Marteau adds, without changing FunkLoad's figures: P99 and P99.9, whole
bench totals (for thresholds), a per-node breakdown, errors by HTTP code
with a sample body, per-description aggregates, the load generators'
CPU samples, the standard Apdex of the whole bench (an error is
frustrated; FunkLoad's scores count only durations) and errors by kind
(`marteau.report.errors`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from marteau.report.errors import ErrorKind, error_kinds
from marteau.report.open_model import open_stats, open_warnings
from marteau.report.quantiles import PERCENTILES, percentiles
from marteau.results.merge import NodeInfo, cycle_duration, parse_cycles, small_pages
from marteau.results.records import RESULT_NAMES, SUCCESSFUL
from marteau.results.resultset import ResultSet

__all__ = ["NodeInfo", "cycle_duration", "compute", "parse_cycles"]

DEFAULT_APDEX_T = 1.5
PAGE_TYPES = frozenset(("post", "get", "xmlrpc", "put", "delete", "head"))
# (key, percent): FunkLoad shows p10/p50/p90/p95; p99/p99_9 are Marteau's.
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
    # the headline's Apdex: every response, an error counted frustrated (the standard's rule)
    apdex: Apdex | None = None
    error_kinds: list[ErrorKind] = field(default_factory=list)
    # the open model's figures (`marteau.report.open_model.OpenStats`): none for a closed bench
    open_cycles: list[Any] = field(default_factory=list)
    open_overall: Any = None

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


def apdex(durations: Any, t: float) -> Apdex:
    """Apdex of a numpy array of durations."""
    n = int(durations.size)
    satisfied = int(np.count_nonzero(durations < t))
    tolerating = int(np.count_nonzero(durations < 4 * t)) - satisfied
    score = (satisfied + tolerating / 2.0) / n if n else 0
    return Apdex(t, satisfied, tolerating, n - satisfied - tolerating, score, apdex_label(score))


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


# ----------------------------------------------------------------- grouped responses
#
# Why this shape: gathering whole records (or many columns) through index
# arrays dominated the time of a 10-million-request report.  Here each
# cycle's responses are taken once as contiguous columns (copies of file
# slices when the file is grouped by cycle, as recorders write it), and
# every per-group figure comes from one pass in file order:
# ``np.bincount(ids, weights=d)`` adds each group's values left to right
# in index order, exactly as FunkLoad's Python float sums did, so no sort
# is needed for the sums.  Only the percentiles need sorted values: one
# stable radix sort of small group ids, then each group's slice sorted.

_CHUNK = 1 << 21
_BLOCK = 1 << 13
_MAX_RUNS = 4096


def _cycle_parts(cycle: Any) -> dict[int, Any]:
    """cycle -> its responses in file order: a list of slices, or an index array."""
    n = int(cycle.size)
    if not n:
        return {}
    change = np.flatnonzero(cycle[1:] != cycle[:-1]) + 1
    if change.size < _MAX_RUNS:
        bounds = [0, *change.tolist(), n]
        parts: dict[int, Any] = {}
        values = cycle[bounds[:-1]].tolist()
        for value, lo, hi in zip(values, bounds[:-1], bounds[1:], strict=True):
            parts.setdefault(int(value), []).append(slice(lo, hi))
        return parts
    order = stable_order(cycle)
    ordered = cycle[order]
    starts, lengths = _segments(ordered)
    return {
        int(ordered[s]): order[s : s + n]
        for s, n in zip(starts.tolist(), lengths.tolist(), strict=True)
    }


_RESPONSE_COLUMNS = (
    "duration",
    "result",
    "time",
    "cvus",
    "type",
    "thread",
    "step",
    "number",
    "description",
    "url",
)


def _columns(
    array: Any, part: Any, names: Sequence[str], types: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Contiguous columns `names` of the rows `part` (slices or indexes) of `array`.

    Slices are copied block by block, every column from a block while its
    records are in the cache: about twice as fast as one strided pass over
    the whole records per column.  `types`: columns wanted as another dtype
    (converted as ``astype`` does, while copying).
    """
    types = types or {}
    if not isinstance(part, list):
        return {
            name: array[name][part].astype(types[name]) if name in types else array[name][part]
            for name in names
        }
    size = sum(len(range(s.start, s.stop)) for s in part)
    out = {name: np.empty(size, types.get(name, array.dtype[name])) for name in names}
    at = 0
    for rows in part:
        for lo in range(rows.start, rows.stop, _BLOCK):
            hi = min(rows.stop, lo + _BLOCK)
            block = array[lo:hi]
            for name in names:
                out[name][at : at + hi - lo] = block[name]
            at += hi - lo
    return out


def _dense(values: Any) -> tuple[Any, Any]:
    """(sorted distinct values, index of each value among them)."""
    if not values.size:
        return np.zeros(0, np.int64), np.zeros(0, np.intp)
    low, high = int(values.min()), int(values.max())
    if high - low < 10_000_000:
        offset = np.subtract(values, low, dtype=np.intp)
        present = np.zeros(high - low + 1, dtype=bool)
        present[offset] = True
        uniq = np.flatnonzero(present)
        ids = (np.cumsum(present, dtype=np.intp) - 1)[offset]
        return uniq + low, ids
    uniq, ids = np.unique(values, return_inverse=True)
    return uniq, ids.reshape(-1)


@dataclass
class _Seconds:
    """Events per int(time) second, combinable across parts (for maxRPS/maxSPPS)."""

    seconds: Any
    counts: Any

    @classmethod
    def of(cls, seconds: Any) -> _Seconds:
        if not seconds.size:
            return cls(np.zeros(0, np.int64), np.zeros(0, np.int64))
        low, high = int(seconds.min()), int(seconds.max())
        if high - low < 50_000_000:
            counts = np.bincount(seconds - low)
            used = np.flatnonzero(counts)
            return cls(used + low, counts[used])
        uniq, counts = np.unique(seconds, return_counts=True)
        return cls(uniq, counts)

    @classmethod
    def combine(cls, parts: Sequence[_Seconds]) -> _Seconds:
        parts = [p for p in parts if p.seconds.size]
        if len(parts) <= 1:
            return parts[0] if parts else cls.of(np.zeros(0, np.int64))
        uniq, inverse = np.unique(np.concatenate([p.seconds for p in parts]), return_inverse=True)
        counts = np.zeros(uniq.size, np.int64)
        np.add.at(counts, inverse.reshape(-1), np.concatenate([p.counts for p in parts]))
        return cls(uniq, counts)

    def max(self) -> int:
        return int(self.counts.max()) if self.counts.size else 0


@dataclass
class _Group:
    """One group's figures; `runs` its durations as sorted arrays (their union)."""

    count: int
    success: int
    total: float  # left-to-right sum in file order
    min: float
    max: float
    satisfied: int
    tolerating: int
    runs: list[Any]
    first: int  # index of its first row in the part
    last: int  # index of its last row in the part


def _apdex_of(n: int, satisfied: int, tolerating: int, t: float) -> Apdex:
    score = (satisfied + tolerating / 2.0) / n if n else 0
    return Apdex(t, satisfied, tolerating, n - satisfied - tolerating, score, apdex_label(score))


def _timing_of(g: _Group, t: float) -> dict[str, Any]:
    """Request-level timing of a group: every duration counts (the sum in file order)."""
    n = g.count
    error = n - g.success
    return dict(
        count=n,
        success=g.success,
        error=error,
        error_percent=_ratio(error, n),
        min=g.min if n else 0.0,
        avg=g.total / n if n else 0.0,
        max=g.max if n else 0.0,
        percentiles=run_percentiles(g.runs),
        apdex=_apdex_of(n, g.satisfied, g.tolerating, t),
    )


def _group_order(gid: Any, ngroups: int) -> Any:
    """np.argsort(gid, kind="stable") of dense group ids (a radix sort when they are few)."""
    if ngroups <= 256:
        return np.argsort(gid.astype(np.uint8), kind="stable")
    if ngroups <= 65536:
        return np.argsort(gid.astype(np.uint16), kind="stable")
    return stable_order(gid)


def _groups(d: Any, ok: Any, gid: Any, ngroups: int, t: float) -> tuple[dict[int, _Group], Any]:
    """Figures of each non-empty group of `gid` (0 <= gid < ngroups), and the stable order.

    The order is None when the rows are already grouped (sorted by `gid`).
    """
    if ngroups == 1:
        n = int(d.size)
        satisfied_1 = int(np.count_nonzero(d < t))
        count = np.array([n])
        success = np.array([int(np.count_nonzero(ok))])
        total = np.array([sequential_sum(d)])
        satisfied = np.array([satisfied_1])
        below4 = np.array([int(np.count_nonzero(d < 4 * t))])
        order = None
        grouped = d.copy()
    else:
        # one bincount: group, success, Apdex class (2 satisfied, 1 tolerating, 0 other)
        code = gid * 6
        code += ok * 3
        code += d < t
        code += d < 4 * t
        counts = np.bincount(code, minlength=ngroups * 6).reshape(ngroups, 2, 3)
        del code
        count = counts.sum(axis=(1, 2))
        success = counts[:, 1, :].sum(axis=1)
        satisfied = counts[:, :, 2].sum(axis=1)
        below4 = satisfied + counts[:, :, 1].sum(axis=1)
        total = np.bincount(gid, weights=d, minlength=ngroups)  # sequential, file order
        if bool(np.all(gid[1:] >= gid[:-1])):  # already grouped (nodes, in merged files)
            order = None
            grouped = d.copy()
        else:
            order = _group_order(gid, ngroups)
            grouped = d[order]
    used = np.flatnonzero(count)
    ends = np.cumsum(count)
    starts = ends - count
    mins = np.minimum.reduceat(grouped, starts[used]) if used.size else used
    maxs = np.maximum.reduceat(grouped, starts[used]) if used.size else used
    out = {}
    for j, g in enumerate(used.tolist()):
        lo, hi = int(starts[g]), int(ends[g])
        values = grouped[lo:hi]
        values.sort()
        out[g] = _Group(
            count=int(count[g]),
            success=int(success[g]),
            total=float(total[g]),
            min=float(mins[j]),
            max=float(maxs[j]),
            satisfied=int(satisfied[g]),
            tolerating=int(below4[g] - satisfied[g]),
            runs=[values],
            first=int(order[lo]) if order is not None else lo,
            last=int(order[hi - 1]) if order is not None else hi - 1,
        )
    return out, order


def _merge_groups(parts: Sequence[_Group], total: float) -> _Group:
    """One group from parts of it; `total` summed in file order by the caller."""
    return _Group(
        count=sum(p.count for p in parts),
        success=sum(p.success for p in parts),
        total=total,
        min=float(np.min([p.min for p in parts])),
        max=float(np.max([p.max for p in parts])),
        satisfied=sum(p.satisfied for p in parts),
        tolerating=sum(p.tolerating for p in parts),
        runs=[run for p in parts for run in p.runs],
        first=0,
        last=0,
    )


def run_percentiles(runs: Sequence[Any]) -> dict[str, float]:
    """`percentiles` of the union of sorted arrays, without merging them.

    The value at sorted index r of the union is the smallest value with
    more than r values <= it in all runs (counted with searchsorted): found
    by a binary search in each run, or, for many runs, by bisection over
    the floats' order-preserving 64-bit keys (64 counts).  NaN (sorted last,
    not ordered) falls back to sorting the union.
    """
    runs = [r for r in runs if r.size]
    if len(runs) == 1:
        return percentiles(runs[0])
    if not runs or any(np.isnan(r[-1]) for r in runs):
        return percentiles(np.sort(np.concatenate(runs)) if runs else np.zeros(0))
    if len(runs) > 8:
        return _bisected_percentiles(runs)
    n = sum(int(r.size) for r in runs)
    ranks = np.array([int(p / 100.0 * n) for _, p in PERCENTILES], dtype=np.int64)
    best = np.zeros(ranks.size)
    found = np.zeros(ranks.size, dtype=bool)
    for run in runs:
        lo = np.zeros(ranks.size, np.int64)
        hi = np.full(ranks.size, run.size, np.int64)
        while True:
            active = lo < hi
            if not active.any():
                break
            mid = (lo + hi) // 2
            values = run[np.minimum(mid, run.size - 1)]
            below = sum(np.searchsorted(r, values, side="right") for r in runs)
            enough = below > ranks
            hi = np.where(active & enough, mid, hi)
            lo = np.where(active & ~enough, mid + 1, lo)
        hit = lo < run.size
        values = run[np.minimum(lo, run.size - 1)]
        better = hit & (~found | (values < best))
        best = np.where(better, values, best)
        found |= hit
    return {key: float(value) for (key, _), value in zip(PERCENTILES, best, strict=True)}


_SIGN = np.uint64(1 << 63)


def _float_keys(values: Any) -> Any:
    """Order-preserving uint64 keys of float64 values (not NaN)."""
    bits = np.asarray(values, dtype=np.float64).view(np.uint64)
    return np.where(bits & _SIGN, ~bits, bits | _SIGN)


def _key_floats(keys: Any) -> Any:
    """Inverse of `_float_keys`."""
    return np.where(keys & _SIGN, keys & ~_SIGN, ~keys).view(np.float64)


def _bisected_percentiles(runs: Sequence[Any]) -> dict[str, float]:
    """`run_percentiles` of many sorted runs: bisection over float keys."""
    n = sum(int(r.size) for r in runs)
    ranks = np.array([int(p / 100.0 * n) for _, p in PERCENTILES], dtype=np.int64)
    lo = np.full(ranks.size, _float_keys(min(float(r[0]) for r in runs)))
    hi = np.full(ranks.size, _float_keys(max(float(r[-1]) for r in runs)))
    # invariant: the answer's key is in [lo, hi]; the count at hi is > rank
    while bool(np.any(lo < hi)):
        mid = lo + (hi - lo) // np.uint64(2)
        values = _key_floats(mid)
        below = sum(np.searchsorted(r, values, side="right") for r in runs)
        enough = below > ranks
        hi = np.where(enough, mid, hi)
        lo = np.where(enough, lo, mid + np.uint64(1))
    return {key: float(v) for (key, _), v in zip(PERCENTILES, _key_floats(lo), strict=True)}


def _union_group(parts: list[_Group], count: int, total: float) -> _Group:
    """The group of all rows of a part from its groups (rows 0 to count - 1)."""
    return _Group(
        count=count,
        success=sum(p.success for p in parts),
        total=total,
        min=float(np.min([p.min for p in parts])),
        max=float(np.max([p.max for p in parts])),
        satisfied=sum(p.satisfied for p in parts),
        tolerating=sum(p.tolerating for p in parts),
        runs=[run for p in parts for run in p.runs],
        first=0,
        last=count - 1,
    )


def _empty_group() -> _Group:
    return _Group(0, 0, 0.0, 0.0, 0.0, 0, 0, [], 0, 0)


@dataclass
class _FilePass:
    """What needs the whole file in its order: sums, and the responses by HTTP code."""

    total: float  # left-to-right sum of all durations
    per_node: Any  # per node slot (see _node_table), left to right
    per_description: Any  # per description string id, left to right
    codes: dict[int, Any] | None  # code -> counts by result value; None: too spread
    first: dict[int, int]  # code -> its first row
    bad: Any  # rows whose result is not SUCCESSFUL
    bad_codes: Any  # their codes


def _file_pass(responses: Any, node_ids: Any, thread_base: int, nonempty: Any) -> _FilePass:
    """One pass over the responses in file order, chunk by chunk.

    Each chunk's sums start from the previous chunk's (the carries go
    first: added to the chunk's first value, or first in the bincount), so
    the additions are exactly those of one pass over the whole file.
    """
    n = int(responses.size)
    total = 0.0
    groups = int(node_ids.max()) + 1 if node_ids is not None else 1
    per_node = np.zeros(groups)
    every_node = np.arange(groups)
    per_description = np.zeros(nonempty.size)
    description_ids = np.arange(nonempty.size)
    codes: dict[int, Any] | None = {}
    first: dict[int, int] = {}
    bad, bad_codes = [], []
    names = ["duration", "description", "code", "result"]
    if node_ids is not None:
        names.append("thread")
    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        columns = _columns(responses, [slice(lo, hi)], names)
        d = columns["duration"]
        if lo:
            head = d[0]
            d[0] = total + head
            total = float(np.cumsum(d)[-1])
            d[0] = head
        else:
            total = float(np.cumsum(d)[-1])
        if node_ids is not None:
            nodes = node_ids[_node_slot(columns["thread"], thread_base, node_ids.size)]
            per_node = np.bincount(
                np.concatenate([every_node, nodes]),
                weights=np.concatenate([per_node, d]),
                minlength=groups,
            )
            del nodes
        description = columns["description"]
        described = nonempty[description]
        per_description = np.bincount(
            np.concatenate([description_ids, description[described].astype(np.intp)]),
            weights=np.concatenate([per_description, d[described]]),
            minlength=nonempty.size,
        )
        del d, description, described
        code, result = columns["code"], columns["result"]
        rows = np.flatnonzero(result != SUCCESSFUL)
        bad.append(rows + lo)
        bad_codes.append(code[rows])
        if codes is not None:
            low, high = int(code.min()), int(code.max())
            if high - low >= 100_000:
                codes = None
                continue
            offset = code.astype(np.int64) - low
            present = np.flatnonzero(np.bincount(offset))
            offset *= 256
            offset += result
            by_result = np.bincount(offset, minlength=(high - low + 1) * 256).reshape(-1, 256)
            offset //= 256
            for index in present.tolist():
                value = index + low
                if value in codes:
                    codes[value] += by_result[index]
                else:
                    codes[value] = by_result[index].copy()
                    first[value] = lo + int(np.argmax(offset == index))
    return _FilePass(
        total,
        per_node,
        per_description,
        codes,
        first,
        np.concatenate(bad) if bad else np.zeros(0, np.intp),
        np.concatenate(bad_codes) if bad_codes else np.zeros(0, np.int32),
    )


@dataclass
class _CyclePages:
    """A cycle's pages (FunkLoad grouping), in (thread, position) order."""

    count: int
    ok_durations: Any  # durations of successful pages, page order
    ok_seconds: _Seconds
    owned: _Group  # Apdex counts of the responses that belong to a page (page Apdex quirk)


def _cycle_pages(
    d: Any,
    ok: Any,
    seconds: Any,
    thread_ids: Any,
    threads: int,
    starts_page: Any,
    every: _Group,
    t: float,
) -> _CyclePages:
    """Group one cycle's responses (file order) into pages per thread, FunkLoad style.

    `thread_ids`: dense thread ids (0 <= id < threads, each present);
    `every`: the cycle's request figures (the page Apdex when every response
    belongs to a page).  Pages are numbered in (thread, position) order, the
    responses taken stably by thread, so each page's sum runs in file order.
    """
    n = int(d.size)
    order = _group_order(thread_ids, threads)
    begins = starts_page[order]
    page = np.cumsum(begins, dtype=np.int64)  # 1-based page number, in thread order
    pages = int(page[-1]) if n else 0
    lengths = np.bincount(thread_ids, minlength=threads)
    firsts = np.cumsum(lengths) - lengths
    durations = d[order]
    good = ok[order]
    if bool(begins[firsts].all()):
        owned = every
    else:
        # the responses before a thread's first page are ignored
        before = np.repeat(page[firsts] - begins[firsts], lengths)
        keep = page > before
        del before
        page, durations, good = page[keep], durations[keep], good[keep]
        owned = _counts_group(durations, t)
    sums = np.bincount(page, weights=durations, minlength=pages + 1)[1:]
    failed = np.bincount(page[~good], minlength=pages + 1)[1:]
    del page, durations, good
    success = failed == 0
    second = seconds[order[np.flatnonzero(begins)]]  # a page's second: its first response's
    return _CyclePages(pages, sums[success], _Seconds.of(second[success]), owned)


def _ok_pages(durations: Any, carry: float | None) -> tuple[_Group, float | None]:
    """Successful pages' figures (sorted run kept), and the page-order sum carried on.

    `carry`: the sum of the previous cycles' successful pages (None: none
    yet); the bench's sum continues from it left to right, as one pass
    over all pages in (cycle, thread, position) order.
    """
    n = int(durations.size)
    if n and carry is not None:
        head = durations[0]
        durations[0] = carry + head
        carry = float(np.cumsum(durations)[-1])
        durations[0] = head
    elif n:
        carry = float(np.cumsum(durations)[-1])
    group = _Group(
        count=n,
        success=n,
        total=sequential_sum(durations),
        min=float(durations.min()) if n else 0.0,
        max=float(durations.max()) if n else 0.0,
        satisfied=0,
        tolerating=0,
        runs=[np.sort(durations)],
        first=0,
        last=0,
    )
    return group, carry


def _pages_figures(
    count: int, ok: _Group, ok_seconds: _Seconds, owned: _Group, t: float, duration: float
) -> dict[str, Any]:
    """Page timing (quirk: avg over all pages; Apdex over the owned responses)."""
    success = ok.count
    error = count - success
    return dict(
        count=count,
        success=success,
        error=error,
        error_percent=_ratio(error, count),
        min=ok.min if success else 0.0,
        avg=ok.total / count if count else 0.0,
        max=ok.max if success else 0.0,
        percentiles=run_percentiles(ok.runs),
        apdex=_apdex_of(owned.count, owned.satisfied, owned.tolerating, t),
        spps=success / duration if duration else 0.0,
        max_spps=ok_seconds.max(),
    )


def _node_slot(thread: Any, thread_base: int, size: int) -> Any:
    """thread // thread_base, with nodes beyond the table sent to its last slot."""
    return np.minimum(thread // thread_base, size - 1).astype(np.intp)


def _node_table(nodes: Sequence[NodeInfo]) -> Any:
    """node index (thread // base) -> position in `nodes`; the last slot: no node."""
    table = np.full(max(n.index for n in nodes) + 2, len(nodes), np.intp)
    for i, node in enumerate(nodes):
        table[node.index] = i
    return table


def _counts_group(durations: Any, t: float) -> _Group:
    """Apdex counts only (the page Apdex of a cycle)."""
    a = apdex(durations, t)
    return _Group(int(durations.size), 0, 0.0, 0.0, 0.0, a.satisfied, a.tolerating, [], 0, 0)


@dataclass
class _Responses:
    """Everything computed from the responses."""

    requests: dict[int, RequestStats]
    pages: dict[int, PageStats]
    cvus: dict[int, int]
    steps: dict[int, list[StepStats]]
    overall_requests: RequestStats | None
    overall_pages: PageStats | None
    descriptions: list[DescriptionStats]
    nodes: list[tuple[list[RequestStats], RequestStats]]
    file_pass: _FilePass | None = None
    apdex: Apdex | None = None


def _responses(
    responses: Any,
    parts: dict[int, Any],
    strings: list[str],
    t: float,
    duration: float,
    recorded: float,
    nodes: Sequence[NodeInfo],
    thread_base: int,
) -> _Responses:
    """Request, page, per-request, per-description and per-node figures, cycle by cycle."""
    page_type = np.array([s in PAGE_TYPES for s in strings] or [False], dtype=bool)
    nonempty = np.array([bool(s) for s in strings] or [False], dtype=bool)
    split = len(nodes) > 1
    table = _node_table(nodes) if split else None
    requests: dict[int, RequestStats] = {}
    pages: dict[int, PageStats] = {}
    cvus_of: dict[int, int] = {}
    steps: dict[int, list[StepStats]] = {}
    cycle_groups: list[_Group] = []
    cycle_seconds: list[_Seconds] = []
    page_parts: list[_CyclePages] = []
    page_ok: list[_Group] = []
    page_total: float | None = None
    page_owned: list[_Group] = []
    node_parts: list[list[tuple[_Group, _Seconds]]] = [[] for _ in nodes]
    node_cycles: list[list[RequestStats]] = [[] for _ in nodes]
    description_parts: dict[int, list[_Group]] = {}
    strict = np.zeros(2, np.int64)  # successful responses satisfied, tolerating
    for cycle in sorted(parts):
        part = parts[cycle]
        columns = _columns(responses, part, _RESPONSE_COLUMNS, {"time": np.int64, "step": np.int64})
        d = columns.pop("duration")
        ok = columns.pop("result") == SUCCESSFUL
        seconds = columns.pop("time")  # int(time)
        cvus_column = columns.pop("cvus")
        n = int(d.size)
        strict += _successful_apdex_counts(d, ok, t)
        # per request (step.number) groups first: the cycle's sorted values are their union
        step = columns.pop("step")
        step <<= 16
        step |= columns.pop("number")
        keys, key_ids = _dense(step)
        del step
        by_key, order = _groups(d, ok, key_ids, int(keys.size), t)
        del key_ids
        group = _union_group(list(by_key.values()), n, sequential_sum(d))
        cvus = int(cvus_column[0])
        cvus_of[cycle] = cvus
        per_second = _Seconds.of(seconds)
        cycle_groups.append(group)
        cycle_seconds.append(per_second)
        requests[cycle] = RequestStats(
            **_timing_of(group, t),
            cycle=cycle,
            cvus=cvus,
            rps=n / duration if duration else 0.0,
            max_rps=per_second.max(),
        )

        # pages
        kinds = columns.pop("type")
        threads, thread_ids = _dense(columns.pop("thread"))
        cycle_pages = _cycle_pages(
            d, ok, seconds, thread_ids, int(threads.size), page_type[kinds], group, t
        )
        owned = cycle_pages.owned
        ok_pages, page_total = _ok_pages(cycle_pages.ok_durations, page_total)
        cycle_pages.ok_durations = None
        page_parts.append(cycle_pages)
        page_owned.append(owned)
        page_ok.append(ok_pages)
        pages[cycle] = PageStats(
            **_pages_figures(
                cycle_pages.count, ok_pages, cycle_pages.ok_seconds, owned, t, duration
            ),
            cycle=cycle,
            cvus=cvus,
        )

        # per request (step.number): last url and type, last non-empty description
        descriptions = columns.pop("description")
        described = nonempty[descriptions]
        if order is None:
            positions = np.where(described, np.arange(described.size), -1)
        else:
            positions = np.where(described[order], order, -1)
        urls = columns.pop("url")
        cycle_steps = []
        at = 0
        for k, g in sorted(by_key.items()):
            last_described = int(positions[at : at + g.count].max())
            at += g.count
            key = int(keys[k])
            step_number, request_number = key >> 16, key & 0xFFFF
            cycle_steps.append(
                StepStats(
                    **_timing_of(g, t),
                    cycle=cycle,
                    cvus=int(cvus_column[g.first]),
                    key=f"{step_number:03d}.{request_number:03d}",
                    step=step_number,
                    number=request_number,
                    url=strings[int(urls[g.last])],
                    type=strings[int(kinds[g.last])],
                    description=(
                        strings[int(descriptions[last_described])] if last_described >= 0 else ""
                    ),
                )
            )
        cycle_steps.sort(key=lambda s: s.key)
        steps[cycle] = cycle_steps
        del positions, order, urls, kinds, by_key

        # per description (whole bench: combined below)
        by_description, _ = _groups(
            d[described],
            ok[described],
            descriptions[described].astype(np.intp),
            int(nonempty.size),
            t,
        )
        for k, g in by_description.items():
            description_parts.setdefault(k, []).append(g)
        del descriptions, described, by_description

        # per node
        if table is not None:
            node_of_thread = table[_node_slot(threads, thread_base, table.size)]
            by_node, order = _groups(d, ok, node_of_thread[thread_ids], len(nodes) + 1, t)
            ordered_seconds = seconds if order is None else seconds[order]
            at = 0
            for i in range(len(nodes) + 1):
                g = by_node.get(i)
                if g is None:
                    continue
                if i < len(nodes):
                    node_parts[i].append((g, _Seconds.of(ordered_seconds[at : at + g.count])))
                at += g.count
            del order, ordered_seconds
        elif nodes:
            node_parts[0].append((group, per_second))
        for i, node in enumerate(nodes):
            if len(node_parts[i]) > len(node_cycles[i]):
                g, node_seconds = node_parts[i][-1]
                own = node.cycles[cycle] if cycle < len(node.cycles) else int(cvus_column[g.first])
                node_cycles[i].append(
                    RequestStats(
                        **_timing_of(g, t),
                        cycle=cycle,
                        cvus=own,
                        rps=g.count / duration if duration else 0.0,
                        max_rps=node_seconds.max(),
                    )
                )
        del d, ok, seconds, thread_ids, cvus_column

    if not parts:
        empty = RequestStats(**_timing_of(_empty_group(), t), cvus=0, rps=0.0, max_rps=0)
        return _Responses({}, {}, {}, {}, None, None, [], [([], empty) for _ in nodes])
    file_pass = _file_pass(responses, table, thread_base, nonempty)
    total, node_totals = file_pass.total, file_pass.per_node
    description_totals = file_pass.per_description
    overall = _merge_groups(cycle_groups, total)
    del cycle_groups
    overall_requests = RequestStats(
        **_timing_of(overall, t),
        cvus=max(cvus_of.values()),
        rps=overall.count / recorded if recorded else 0.0,
        max_rps=_Seconds.combine(cycle_seconds).max(),
    )
    del overall
    successful = [g for g in page_ok if g.count]
    all_ok = _Group(
        count=sum(g.count for g in page_ok),
        success=0,
        total=page_total if page_total is not None else 0.0,
        min=float(np.min([g.min for g in successful])) if successful else 0.0,
        max=float(np.max([g.max for g in successful])) if successful else 0.0,
        satisfied=0,
        tolerating=0,
        runs=[run for g in page_ok for run in g.runs],
        first=0,
        last=0,
    )
    overall_pages = PageStats(
        **_pages_figures(
            sum(p.count for p in page_parts),
            all_ok,
            _Seconds.combine([p.ok_seconds for p in page_parts]),
            _merge_counts(page_owned),
            t,
            recorded,
        ),
        cvus=overall_requests.cvus,
    )
    del all_ok, page_ok, page_parts
    descriptions_out = []
    for k in sorted(description_parts):
        g = _merge_groups(description_parts.pop(k), float(description_totals[k]))
        descriptions_out.append(
            DescriptionStats(
                **_timing_of(g, t),
                description=strings[k],
                rps=g.count / recorded if recorded else 0.0,
            )
        )
    descriptions_out.sort(key=lambda x: x.description)
    node_out = []
    for i in range(len(nodes)):
        per_cycle = node_cycles[i]
        node_recorded = duration * len(per_cycle)
        if node_parts[i]:
            node_total = float(node_totals[i]) if table is not None else total
            g = _merge_groups([g for g, _ in node_parts[i]], node_total)
        else:
            g = _empty_group()
        node_out.append(
            (
                per_cycle,
                RequestStats(
                    **_timing_of(g, t),
                    cvus=max((c.cvus for c in per_cycle), default=0),
                    rps=g.count / node_recorded if node_recorded else 0.0,
                    max_rps=_Seconds.combine([s for _, s in node_parts[i]]).max(),
                ),
            )
        )
        node_parts[i] = []
    return _Responses(
        requests,
        pages,
        cvus_of,
        steps,
        overall_requests,
        overall_pages,
        descriptions_out,
        node_out,
        file_pass,
        _apdex_of(overall_requests.count, int(strict[0]), int(strict[1]), t),
    )


def _successful_apdex_counts(d: Any, ok: Any, t: float) -> Any:
    """[satisfied, tolerating] among the successful responses: an error is frustrated."""
    good = d[ok]
    satisfied = int(np.count_nonzero(good < t))
    return np.array([satisfied, int(np.count_nonzero(good < 4 * t)) - satisfied])


def _merge_counts(parts: Sequence[_Group]) -> _Group:
    return _Group(
        sum(p.count for p in parts),
        0,
        0.0,
        0.0,
        0.0,
        sum(p.satisfied for p in parts),
        sum(p.tolerating for p in parts),
        [],
        0,
        0,
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
    with small_pages():  # many large temporary arrays: see small_pages
        return _compute(rs, float(apdex_t), nodes, thread_base)


def _compute(rs: ResultSet, t: float, nodes: Sequence[NodeInfo], thread_base: int) -> BenchStats:
    duration = cycle_duration(rs.config)
    responses = rs.responses
    tests = Columns.of(rs.tests)
    parts = _cycle_parts(np.ascontiguousarray(responses["cycle"]))
    t_cycles = distinct(tests["cycle"])
    all_cycles = sorted(set(parts) | set(t_cycles.tolist()))
    recorded = duration * len(all_cycles)

    tests_by_cycle = tests
    if tests.size > 1 and not bool(np.all(tests["cycle"][1:] >= tests["cycle"][:-1])):
        tests_by_cycle = tests[stable_order(tests["cycle"])]
    tc_starts, tc_lengths = _segments(tests_by_cycle["cycle"])
    test_slices = {
        int(tests_by_cycle["cycle"][s]): (int(s), int(s + n))
        for s, n in zip(tc_starts, tc_lengths, strict=True)
    }

    found = _responses(responses, parts, rs.strings, t, duration, recorded, nodes, thread_base)

    cycles: list[CycleStats] = []
    for cycle in all_cycles:
        test_stats = None
        cvus = found.cvus.get(cycle, 0)
        if cycle in test_slices:
            lo, hi = test_slices[cycle]
            part = tests_by_cycle[lo:hi]
            test_cvus = int(part["cvus"][0])
            test_stats = TestStats(cycle=cycle, cvus=test_cvus, **_test_stats(part, rs, duration))
            cvus = cvus or test_cvus
        cycles.append(
            CycleStats(
                cycle,
                cvus,
                test_stats,
                found.pages.get(cycle),
                found.requests.get(cycle),
                found.steps.get(cycle, []),
            )
        )

    overall_requests, overall_pages = found.overall_requests, found.overall_pages
    if overall_requests is not None:
        overall_requests.cvus = max(c.cvus for c in cycles)
    if overall_pages is not None:
        overall_pages.cvus = max(c.cvus for c in cycles)
    overall_tests = None
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
    node_stats = [
        NodeStats(node.name, node.source, per_cycle, overall, _cpu(node.samples))
        for node, (per_cycle, overall) in zip(nodes, found.nodes, strict=True)
    ]
    warnings = list(rs.warnings)
    for node in node_stats:
        if node.cpu and node.cpu.warning:
            warnings.append(
                f"node {node.name}: a load generator process used up to {node.cpu.max:.0f}% "
                f"of a CPU core (above {CPU_WARNING_PERCENT:.0f}%): response times may include "
                "client-side queueing"
            )
    open_cycles, open_overall = open_stats(rs.config, rs.iterations)
    warnings += open_warnings(open_cycles)
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
        descriptions=found.descriptions,
        errors=_error_groups(
            responses, rs, found.file_pass.bad if found.file_pass is not None else None
        ),
        http_codes=_http_codes(responses, rs, found.file_pass),
        nodes=node_stats,
        warnings=warnings,
        apdex=found.apdex,
        error_kinds=error_kinds(rs),
        open_cycles=open_cycles,
        open_overall=open_overall,
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


def _error_groups(responses: Any, rs: ResultSet, bad_rows: Any = None) -> list[ErrorGroup]:
    """Errors grouped by result, then (code, bobo-exception-file, -line), FunkLoad's order.

    `bad_rows`: the rows whose result is not SUCCESSFUL, when already known.
    """
    if not responses.size:
        return []
    if bad_rows is None:
        bad_rows = responses["result"] != SUCCESSFUL
    bad = responses[bad_rows]
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


def _http_codes(responses: Any, rs: ResultSet, found: _FilePass | None) -> list[HttpCodeStats]:
    if not responses.size:
        return []
    if found is None or found.codes is None:
        return _http_codes_sparse(responses, rs)
    url_column = responses["url"]
    out = []
    for code in sorted(found.codes):
        counts = found.codes[code]
        not_ok = found.bad[found.bad_codes == code]
        sample_url, sample_body = rs.strings[int(url_column[found.first[code]])], None
        for row in not_ok[:50].tolist():
            detail = rs.detail(int(responses["detail"][row]))
            if detail and detail.get("body"):
                sample_url = rs.strings[int(url_column[row])]
                sample_body = printable_body(detail["body"])
                break
        else:
            if not_ok.size:
                sample_url = rs.strings[int(url_column[not_ok[0]])]
        out.append(
            HttpCodeStats(
                code=int(code),
                count=int(counts.sum()),
                success=int(counts[0]),
                failure=int(counts[1]),
                error=int(counts[2]),
                sample_url=sample_url,
                sample_body=sample_body,
            )
        )
    return out


def _http_codes_sparse(responses: Any, rs: ResultSet) -> list[HttpCodeStats]:
    """`_http_codes` for codes spread over a wide range (one pass per code)."""
    codes = distinct(responses["code"])
    out = []
    for code in codes.tolist():
        mask = responses["code"] == code
        count = int(np.count_nonzero(mask))
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
                count=count,
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
