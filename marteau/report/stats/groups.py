"""Figures of groups of responses (a request, a description, a node, a cycle), and their union.

Why this shape: every per-group figure comes from one pass over a
cycle's responses in file order.  ``np.bincount(ids, weights=d)`` adds
each group's values left to right in index order, exactly as FunkLoad's
Python float sums did, so no sort is needed for the sums.  Only the
percentiles need sorted values: one stable radix sort of small group
ids, then each group's slice sorted.  A group keeps its sorted values as
runs, so the percentiles of a union of groups (a cycle, the bench, a
node) are read from the runs without merging them (`run_percentiles`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from marteau.report.quantiles import run_percentiles
from marteau.report.stats.arrays import Floats, Indexes, Ints, Mask, group_order, sequential_sum
from marteau.report.stats.model import Apdex, apdex_label


@dataclass
class Seconds:
    """Events per int(time) second, combinable across parts (for maxRPS/maxSPPS)."""

    seconds: Ints
    counts: Ints

    @classmethod
    def of(cls, seconds: Ints) -> Seconds:
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
    def combine(cls, parts: Sequence[Seconds]) -> Seconds:
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
class Group:
    """One group's figures; `runs` its durations as sorted arrays (their union)."""

    count: int
    success: int
    total: float  # left-to-right sum in file order
    min: float
    max: float
    satisfied: int
    tolerating: int
    runs: list[Floats]
    first: int  # index of its first row in the part
    last: int  # index of its last row in the part

    @classmethod
    def empty(cls) -> Group:
        return cls(0, 0, 0.0, 0.0, 0.0, 0, 0, [], 0, 0)

    @classmethod
    def apdex_counts(cls, durations: Floats, t: float) -> Group:
        """Apdex counts only (the page Apdex of a cycle)."""
        a = apdex(durations, t)
        return cls(int(durations.size), 0, 0.0, 0.0, 0.0, a.satisfied, a.tolerating, [], 0, 0)

    @classmethod
    def union(cls, parts: Sequence[Group], total: float, last: int = 0) -> Group:
        """One group from parts of it; `total` summed in file order by the caller."""
        return cls(
            count=sum(p.count for p in parts),
            success=sum(p.success for p in parts),
            total=total,
            min=float(np.min([p.min for p in parts])),
            max=float(np.max([p.max for p in parts])),
            satisfied=sum(p.satisfied for p in parts),
            tolerating=sum(p.tolerating for p in parts),
            runs=[run for p in parts for run in p.runs],
            first=0,
            last=last,
        )

    @classmethod
    def union_counts(cls, parts: Sequence[Group]) -> Group:
        """Apdex counts only, of several groups."""
        satisfied = sum(p.satisfied for p in parts)
        tolerating = sum(p.tolerating for p in parts)
        return cls(sum(p.count for p in parts), 0, 0.0, 0.0, 0.0, satisfied, tolerating, [], 0, 0)

    def timing(self, t: float) -> dict[str, Any]:
        """Request-level timing: every duration counts (the sum in file order)."""
        n = self.count
        error = n - self.success
        return dict(
            count=n,
            success=self.success,
            error=error,
            error_percent=ratio(error, n),
            min=self.min if n else 0.0,
            avg=self.total / n if n else 0.0,
            max=self.max if n else 0.0,
            percentiles=run_percentiles(self.runs),
            apdex=apdex_of(n, self.satisfied, self.tolerating, t),
        )


def ratio(part: int, whole: int) -> float:
    return 100.0 * part / whole if part else 0.0


def apdex_of(n: int, satisfied: int, tolerating: int, t: float) -> Apdex:
    score = (satisfied + tolerating / 2.0) / n if n else 0
    return Apdex(t, satisfied, tolerating, n - satisfied - tolerating, score, apdex_label(score))


def apdex(durations: Floats, t: float) -> Apdex:
    """Apdex of a numpy array of durations."""
    n = int(durations.size)
    satisfied = int(np.count_nonzero(durations < t))
    tolerating = int(np.count_nonzero(durations < 4 * t)) - satisfied
    return apdex_of(n, satisfied, tolerating, t)


def successful_apdex_counts(d: Floats, ok: Mask, t: float) -> Ints:
    """[satisfied, tolerating] among the successful responses: an error is frustrated."""
    good = d[ok]
    satisfied = int(np.count_nonzero(good < t))
    return np.array([satisfied, int(np.count_nonzero(good < 4 * t)) - satisfied])


def group_figures(
    d: Floats, ok: Mask, gid: Indexes, ngroups: int, t: float
) -> tuple[dict[int, Group], Indexes | None]:
    """Figures of each non-empty group of `gid` (0 <= gid < ngroups), and the stable order.

    The order is None when the rows are already grouped (sorted by `gid`).
    """
    if ngroups == 1:
        count, success, total, satisfied, below4 = _one_group_counts(d, ok, t)
        order = None
        grouped = d.copy()
    else:
        count, success, total, satisfied, below4 = _group_counts(d, ok, gid, ngroups, t)
        if bool(np.all(gid[1:] >= gid[:-1])):  # already grouped (nodes, in merged files)
            order = None
            grouped = d.copy()
        else:
            order = group_order(gid, ngroups)
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
        out[g] = Group(
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


_Counts = tuple[Ints, Ints, Floats, Ints, Ints]  # count, success, total, satisfied, below 4T


def _one_group_counts(d: Floats, ok: Mask, t: float) -> _Counts:
    """`_group_counts` of a single group."""
    return (
        np.array([int(d.size)]),
        np.array([int(np.count_nonzero(ok))]),
        np.array([sequential_sum(d)]),
        np.array([int(np.count_nonzero(d < t))]),
        np.array([int(np.count_nonzero(d < 4 * t))]),
    )


def _group_counts(d: Floats, ok: Mask, gid: Indexes, ngroups: int, t: float) -> _Counts:
    """Per group: count, successes, sum (file order), satisfied and below-4T counts."""
    # one bincount: group, success, Apdex class (2 satisfied, 1 tolerating, 0 other)
    code = gid * 6
    code += ok * 3
    code += d < t
    code += d < 4 * t
    counts = np.bincount(code, minlength=ngroups * 6).reshape(ngroups, 2, 3)
    del code
    satisfied = counts[:, :, 2].sum(axis=1)
    # numpy's stubs type bincount as integer counts even with float weights (the total)
    return (  # type: ignore[return-value]
        counts.sum(axis=(1, 2)),
        counts[:, 1, :].sum(axis=1),
        np.bincount(gid, weights=d, minlength=ngroups),  # sequential, file order
        satisfied,
        satisfied + counts[:, :, 1].sum(axis=1),
    )
