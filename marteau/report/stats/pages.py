"""FunkLoad's pages and tests: how responses make pages, and the figures of both.

Quirks kept on purpose (see the package docstring): a page starts at a
``post/get/xmlrpc/put/delete/head`` response, so a redirect starts a new
page, and responses before a thread's first page are ignored; a page's
average is the sum of its successful durations over *all* pages; the
page Apdex counts the individual durations of the pages' responses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from marteau.report.quantiles import run_percentiles
from marteau.report.stats.arrays import (
    Columns,
    Floats,
    Indexes,
    Ints,
    Mask,
    carried_sum,
    group_order,
    sequential_sum,
)
from marteau.report.stats.groups import Group, Seconds, apdex_of, ratio
from marteau.results.records import SUCCESSFUL
from marteau.results.resultset import ResultSet

PAGE_TYPES = frozenset(("post", "get", "xmlrpc", "put", "delete", "head"))


@dataclass
class CyclePages:
    """A cycle's pages (FunkLoad grouping), in (thread, position) order."""

    count: int
    ok_durations: Floats  # durations of successful pages, page order
    ok_seconds: Seconds
    owned: Group  # Apdex counts of the responses that belong to a page (page Apdex quirk)


def group_pages(
    d: Floats,
    ok: Mask,
    seconds: Ints,
    thread_ids: Indexes,
    threads: int,
    starts_page: Mask,
    every: Group,
    t: float,
) -> CyclePages:
    """Group one cycle's responses (file order) into pages per thread, FunkLoad style.

    `thread_ids`: dense thread ids (0 <= id < threads, each present);
    `every`: the cycle's request figures (the page Apdex when every response
    belongs to a page).  Pages are numbered in (thread, position) order, the
    responses taken stably by thread, so each page's sum runs in file order.
    """
    n = int(d.size)
    order = group_order(thread_ids, threads)
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
        owned = Group.apdex_counts(durations, t)
    sums = np.bincount(page, weights=durations, minlength=pages + 1)[1:]
    failed = np.bincount(page[~good], minlength=pages + 1)[1:]
    del page, durations, good
    success = failed == 0
    second = seconds[order[np.flatnonzero(begins)]]  # a page's second: its first response's
    return CyclePages(pages, sums[success], Seconds.of(second[success]), owned)


def ok_pages(durations: Floats, carry: float | None) -> tuple[Group, float | None]:
    """Successful pages' figures (sorted run kept), and the page-order sum carried on.

    `carry`: the sum of the previous cycles' successful pages (None: none
    yet); the bench's sum continues from it left to right, as one pass
    over all pages in (cycle, thread, position) order.
    """
    n = int(durations.size)
    if n:
        carry = carried_sum(durations, carry)
    group = Group(
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


def all_ok_pages(parts: Sequence[Group], total: float | None) -> Group:
    """The bench's successful pages from each cycle's; `total` carried over them all."""
    successful = [g for g in parts if g.count]
    return Group(
        count=sum(g.count for g in parts),
        success=0,
        total=total if total is not None else 0.0,
        min=float(np.min([g.min for g in successful])) if successful else 0.0,
        max=float(np.max([g.max for g in successful])) if successful else 0.0,
        satisfied=0,
        tolerating=0,
        runs=[run for g in parts for run in g.runs],
        first=0,
        last=0,
    )


def page_timing(
    count: int, ok: Group, ok_seconds: Seconds, owned: Group, t: float, duration: float
) -> dict[str, Any]:
    """Page timing (quirk: avg over all pages; Apdex over the owned responses)."""
    success = ok.count
    error = count - success
    return dict(
        count=count,
        success=success,
        error=error,
        error_percent=ratio(error, count),
        min=ok.min if success else 0.0,
        avg=ok.total / count if count else 0.0,
        max=ok.max if success else 0.0,
        percentiles=run_percentiles(ok.runs),
        apdex=apdex_of(owned.count, owned.satisfied, owned.tolerating, t),
        spps=success / duration if duration else 0.0,
        max_spps=ok_seconds.max(),
    )


def tests_timing(tests: Columns, rs: ResultSet, duration: float) -> dict[str, Any]:
    """FunkLoad's TestStat of some tests; min/avg/max over successful tests' connection_duration."""
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
        error_percent=ratio(n - success, n),
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
