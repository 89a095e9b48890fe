"""numpy building blocks of the statistics: exact sums, grouping, stable orders, columns.

Why apart: none of this knows FunkLoad; each piece replaces a Python loop
over millions of records, and says why it is shaped the way it is (the
order of float additions, the cost of gathering packed records).
"""

from __future__ import annotations

from typing import Any, overload

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
Indexes = NDArray[np.intp]
Mask = NDArray[np.bool_]
Records = NDArray[np.void]  # a structured array of result records

_SHORT_SEGMENT = 64


def sequential_sum(values: Floats) -> float:
    """Left-to-right float sum (numpy's sum is pairwise and may differ in the last bit)."""
    return float(np.cumsum(values)[-1]) if values.size else 0.0


def carried_sum(values: Floats, carry: float | None) -> float:
    """Left-to-right sum of `values` continuing from `carry` (None: start from the first).

    The carry is added to the first value, so the additions are exactly
    those of one pass over the previous values and these.
    """
    if carry is None:
        return float(np.cumsum(values)[-1])
    head = values[0]
    values[0] = carry + head
    total = float(np.cumsum(values)[-1])
    values[0] = head
    return total


def segment_sums(values: Floats, starts: Ints, lengths: Ints) -> Floats:
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


def distinct(values: NDArray[np.integer[Any]]) -> NDArray[np.integer[Any]]:
    """Sorted distinct values (np.unique without sorting when the range is small)."""
    if not values.size:
        return np.zeros(0, np.int64)
    low, high = int(values.min()), int(values.max())
    if high - low < 10_000_000:
        return np.flatnonzero(np.bincount((values - low).astype(np.int64))) + low
    return np.unique(values)


def segments(keys: NDArray[Any]) -> tuple[Indexes, Indexes]:
    """Starts and lengths of runs of equal values in a sorted key array."""
    if not keys.size:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    lengths = np.diff(np.r_[starts, keys.size])
    return starts, lengths


def dense(values: NDArray[np.integer[Any]]) -> tuple[NDArray[np.integer[Any]], Indexes]:
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


def stable_order(key: NDArray[np.integer[Any]]) -> Indexes:
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
            dense_ids = np.cumsum(present, dtype=np.int64) - 1
            if dense_ids[-1] < 65536:
                return np.argsort(dense_ids[offset].astype(np.uint16), kind="stable")
    return np.argsort(key, kind="stable")


def group_order(gid: Indexes, ngroups: int) -> Indexes:
    """np.argsort(gid, kind="stable") of dense group ids (a radix sort when they are few)."""
    if ngroups <= 256:
        return np.argsort(gid.astype(np.uint8), kind="stable")
    if ngroups <= 65536:
        return np.argsort(gid.astype(np.uint16), kind="stable")
    return stable_order(gid)


class _LazyColumns(dict[str, NDArray[Any]]):
    """name -> contiguous column of a structured array, extracted on first use."""

    def __init__(self, array: Records) -> None:
        super().__init__()
        self.array = array
        self.names = list(array.dtype.names or ())

    def __missing__(self, name: str) -> NDArray[Any]:
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

    def __init__(
        self,
        data: dict[str, NDArray[Any]],
        index: range | Indexes | None = None,
        size: int | None = None,
    ) -> None:
        self._data = data
        self._index = index
        self._cache: dict[str, NDArray[Any]] = {}
        if size is None:
            size = len(next(iter(data.values()))) if data else 0
        self.size = size if index is None else len(index)

    @classmethod
    def of(cls, array: Records) -> Columns:
        """Columns of a structured array, each copied out only when first used."""
        return cls(_LazyColumns(array), size=len(array))

    def __len__(self) -> int:
        return self.size

    def _resolve(self, key: slice | NDArray[Any]) -> range | Indexes:
        current = self._index if self._index is not None else range(self.size)
        if isinstance(key, slice):
            return current[key] if isinstance(current, range) else current[key]
        key = np.asarray(key)
        if key.dtype == bool:
            key = np.flatnonzero(key)
        if isinstance(current, range):
            return current.start + key * current.step
        return current[key]

    @overload
    def __getitem__(self, key: str) -> NDArray[Any]: ...

    @overload
    def __getitem__(self, key: int | np.integer[Any]) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, key: slice | NDArray[Any]) -> Columns: ...

    def __getitem__(
        self, key: str | int | np.integer[Any] | slice | NDArray[Any]
    ) -> NDArray[Any] | dict[str, Any] | Columns:
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
