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

The modules, each importing only those before it: `model` (the result
types every renderer reads), `arrays` (numpy building blocks), `groups`
(a group's figures and unions), `passes` (reading the records), `pages`
(pages and tests), `failures` (errors and HTTP codes), `cycles` (the
figures cycle by cycle); this one assembles `BenchStats`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from marteau.report.errors import error_kinds
from marteau.report.open_model import OpenStats, open_stats, open_warnings
from marteau.report.quantiles import percentiles, run_percentiles
from marteau.report.stats.arrays import (
    Columns,
    Records,
    segment_sums,
    segments,
    sequential_sum,
    stable_order,
)
from marteau.report.stats.cycles import CycleAccumulator, ResponseFigures
from marteau.report.stats.failures import error_groups, http_codes, printable_body
from marteau.report.stats.groups import apdex
from marteau.report.stats.model import (
    APDEX_RATINGS,
    Apdex,
    BenchStats,
    CpuStats,
    CycleStats,
    DescriptionStats,
    ErrorGroup,
    HttpCodeStats,
    NodeStats,
    PageStats,
    RequestStats,
    StepStats,
    TestStats,
    Timing,
    Totals,
    apdex_label,
    best_cycle,
    launched,
    milliseconds,
    representative_cycle,
    slowest_requests,
)
from marteau.report.stats.pages import tests_timing
from marteau.report.stats.passes import cycle_parts, read_file_totals
from marteau.results.merge import NodeInfo, cycle_duration, parse_cycles, small_pages
from marteau.results.resultset import ResultSet

__all__ = [
    "APDEX_RATINGS",
    "Apdex",
    "BenchStats",
    "CpuStats",
    "CycleStats",
    "DescriptionStats",
    "ErrorGroup",
    "HttpCodeStats",
    "NodeInfo",
    "NodeStats",
    "PageStats",
    "RequestStats",
    "StepStats",
    "TestStats",
    "Timing",
    "Totals",
    "apdex",
    "apdex_label",
    "best_cycle",
    "compute",
    "cycle_duration",
    "launched",
    "milliseconds",
    "parse_cycles",
    "percentiles",
    "printable_body",
    "representative_cycle",
    "run_percentiles",
    "segment_sums",
    "sequential_sum",
    "slowest_requests",
]

DEFAULT_APDEX_T = 1.5
CPU_WARNING_PERCENT = 80.0
# the reading passes' sizes (`passes`): rows per chunk of the file pass, and
# the most runs of one cycle read as file slices (tests make both small)
_CHUNK = 1 << 21
_MAX_RUNS = 4096


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
    parts = cycle_parts(np.ascontiguousarray(responses["cycle"]), _MAX_RUNS)
    tests = Columns.of(rs.tests)
    tests_by_cycle, test_rows = _tests_by_cycle(tests)
    all_cycles = sorted(set(parts) | set(test_rows))
    recorded = duration * len(all_cycles)
    accumulator = CycleAccumulator(responses, rs.strings, t, duration, recorded, nodes, thread_base)
    for cycle in sorted(parts):
        accumulator.add_cycle(cycle, parts[cycle])
    totals = None
    if parts:
        totals = read_file_totals(
            responses, accumulator.node_ids, thread_base, accumulator.nonempty, _CHUNK
        )
    found = accumulator.figures(totals)
    del accumulator
    cycles = [
        _cycle_stats(cycle, found, tests_by_cycle, test_rows.get(cycle), rs, duration)
        for cycle in all_cycles
    ]
    top_cvus = max((c.cvus for c in cycles), default=0)
    if found.overall_requests is not None:
        found.overall_requests.cvus = top_cvus
    if found.overall_pages is not None:
        found.overall_pages.cvus = top_cvus
    overall_tests = None
    if tests.size:
        overall_tests = TestStats(cycle=None, cvus=top_cvus, **tests_timing(tests, rs, recorded))
    node_stats = [
        NodeStats(node.name, node.source, per_cycle, overall, _cpu(node.samples))
        for node, (per_cycle, overall) in zip(nodes, found.nodes, strict=True)
    ]
    open_cycles, open_overall = open_stats(rs.config, rs.iterations)
    bad_rows = found.file_totals.bad if found.file_totals is not None else None
    return BenchStats(
        config=dict(rs.config),
        apdex_t=t,
        duration=duration,
        cycles=cycles,
        best_cycle=best_cycle(cycles),
        representative_cycle=representative_cycle(cycles),
        totals=_totals(cycles),
        overall_requests=found.overall_requests,
        overall_pages=found.overall_pages,
        overall_tests=overall_tests,
        descriptions=found.descriptions,
        errors=error_groups(responses, rs, bad_rows),
        http_codes=http_codes(responses, rs, found.file_totals),
        nodes=node_stats,
        warnings=_warnings(rs, node_stats, open_cycles),
        apdex=found.apdex,
        error_kinds=error_kinds(rs),
        open_cycles=open_cycles,
        open_overall=open_overall,
    )


def _tests_by_cycle(tests: Columns) -> tuple[Columns, dict[int, tuple[int, int]]]:
    """The tests grouped by cycle (stably), and cycle -> its rows (start, stop) there."""
    if tests.size > 1 and not bool(np.all(tests["cycle"][1:] >= tests["cycle"][:-1])):
        tests = tests[stable_order(tests["cycle"])]
    starts, lengths = segments(tests["cycle"])
    rows = {
        int(tests["cycle"][s]): (int(s), int(s + n)) for s, n in zip(starts, lengths, strict=True)
    }
    return tests, rows


def _cycle_stats(
    cycle: int,
    found: ResponseFigures,
    tests: Columns,
    rows: tuple[int, int] | None,
    rs: ResultSet,
    duration: float,
) -> CycleStats:
    """One cycle's row; its users from its responses, else from its tests."""
    test_stats = None
    cvus = found.cvus.get(cycle, 0)
    if rows is not None:
        part = tests[rows[0] : rows[1]]
        test_cvus = int(part["cvus"][0])
        test_stats = TestStats(cycle=cycle, cvus=test_cvus, **tests_timing(part, rs, duration))
        cvus = cvus or test_cvus
    return CycleStats(
        cycle,
        cvus,
        test_stats,
        found.pages.get(cycle),
        found.requests.get(cycle),
        found.steps.get(cycle, []),
    )


def _totals(cycles: Sequence[CycleStats]) -> Totals:
    return Totals(
        tests=sum(c.tests.count for c in cycles if c.tests),
        tests_error=sum(c.tests.error for c in cycles if c.tests),
        pages=sum(c.pages.count for c in cycles if c.pages),
        pages_error=sum(c.pages.error for c in cycles if c.pages),
        requests=sum(c.requests.count for c in cycles if c.requests),
        requests_error=sum(c.requests.error for c in cycles if c.requests),
    )


def _warnings(rs: ResultSet, nodes: Sequence[NodeStats], open_cycles: list[OpenStats]) -> list[str]:
    """The results' warnings, then busy generators', then the open model's."""
    warnings = list(rs.warnings)
    for node in nodes:
        if node.cpu and node.cpu.warning:
            warnings.append(
                f"node {node.name}: a load generator process used up to {node.cpu.max:.0f}% "
                f"of a CPU core (above {CPU_WARNING_PERCENT:.0f}%): response times may include "
                "client-side queueing"
            )
    return warnings + open_warnings(open_cycles)


def _cpu(samples: Records | None) -> CpuStats | None:
    if samples is None or not getattr(samples, "size", 0):
        return None
    cpu = samples["cpu_percent"].astype(np.float64)
    peak = float(cpu.max())
    return CpuStats(int(cpu.size), peak, float(cpu.mean()), peak > CPU_WARNING_PERCENT)
