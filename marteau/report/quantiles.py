"""The report's percentiles: which ones, and how FunkLoad reads them from sorted values.

Shared by the closed model's statistics (`stats`) and the open model's
(`open_model.py`), so that both give a p99 by the same rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

PERCENTILES = (("p10", 10), ("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("p99_9", 99.9))


def percentiles(sorted_values: NDArray[np.float64]) -> dict[str, float]:
    """Sorted-index percentiles: value at int(p / 100.0 * n), -1.0 when empty."""
    n = int(sorted_values.size)
    out = {}
    for key, p in PERCENTILES:
        out[key] = float(sorted_values[int(p / 100.0 * n)]) if n else -1.0
    return out


def run_percentiles(runs: Sequence[NDArray[np.float64]]) -> dict[str, float]:
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


def _float_keys(values: NDArray[np.float64] | float) -> NDArray[np.uint64]:
    """Order-preserving uint64 keys of float64 values (not NaN)."""
    bits = np.asarray(values, dtype=np.float64).view(np.uint64)
    return np.where(bits & _SIGN, ~bits, bits | _SIGN)


def _key_floats(keys: NDArray[np.uint64]) -> NDArray[np.float64]:
    """Inverse of `_float_keys`."""
    return np.where(keys & _SIGN, keys & ~_SIGN, ~keys).view(np.float64)


def _bisected_percentiles(runs: Sequence[NDArray[np.float64]]) -> dict[str, float]:
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
