"""Reading the response records: by cycle as contiguous columns, and once in file order.

Why this shape: gathering whole records (or many columns) through index
arrays dominated the time of a 10-million-request report.  Each cycle's
responses are taken once as contiguous columns (copies of file slices
when the file is grouped by cycle, as recorders write it).  What needs
the whole file in its order (the bench's sums, which must add left to
right as FunkLoad did, and the responses by HTTP code) is one more pass,
chunk by chunk, so that no column of the whole file is held at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from numpy.typing import DTypeLike, NDArray

from marteau.report.stats.arrays import (
    Floats,
    Indexes,
    Ints,
    Mask,
    Records,
    carried_sum,
    segments,
    stable_order,
)
from marteau.results.merge import NodeInfo
from marteau.results.records import SUCCESSFUL

_BLOCK = 1 << 13

# a cycle's rows: slices of the file (in order), or an index array
Part = list[slice] | Indexes

RESPONSE_COLUMNS = (
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


def cycle_parts(cycle: NDArray[np.integer[Any]], max_runs: int) -> dict[int, Part]:
    """cycle -> its responses in file order: a list of slices, or an index array.

    Slices while the file has fewer than `max_runs` runs of one cycle (as
    recorders write it); beyond, a stable order by cycle.
    """
    n = int(cycle.size)
    if not n:
        return {}
    change = np.flatnonzero(cycle[1:] != cycle[:-1]) + 1
    if change.size < max_runs:
        bounds = [0, *change.tolist(), n]
        slices: dict[int, list[slice]] = {}
        values = cycle[bounds[:-1]].tolist()
        for value, lo, hi in zip(values, bounds[:-1], bounds[1:], strict=True):
            slices.setdefault(int(value), []).append(slice(lo, hi))
        return dict(slices)
    order = stable_order(cycle)
    ordered = cycle[order]
    starts, lengths = segments(ordered)
    return {
        int(ordered[s]): order[s : s + n]
        for s, n in zip(starts.tolist(), lengths.tolist(), strict=True)
    }


def take_columns(
    array: Records, part: Part, names: Sequence[str], types: dict[str, DTypeLike] | None = None
) -> dict[str, NDArray[Any]]:
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


def node_slot(thread: NDArray[np.integer[Any]], thread_base: int, size: int) -> Indexes:
    """thread // thread_base, with nodes beyond the table sent to its last slot."""
    return cast(Indexes, np.minimum(thread // thread_base, size - 1).astype(np.intp))


def node_table(nodes: Sequence[NodeInfo]) -> Indexes:
    """node index (thread // base) -> position in `nodes`; the last slot: no node."""
    table = np.full(max(n.index for n in nodes) + 2, len(nodes), np.intp)
    for i, node in enumerate(nodes):
        table[node.index] = i
    return table


@dataclass
class FileTotals:
    """What needs the whole file in its order: sums, and the responses by HTTP code."""

    total: float  # left-to-right sum of all durations
    per_node: Floats  # per node slot (see node_table), left to right
    per_description: Floats  # per description string id, left to right
    codes: dict[int, Ints] | None  # code -> counts by result value; None: too spread
    first: dict[int, int]  # code -> its first row
    bad: Indexes  # rows whose result is not SUCCESSFUL
    bad_codes: NDArray[np.integer[Any]]  # their codes


def read_file_totals(
    responses: Records, nodes: Indexes | None, thread_base: int, nonempty: Mask, chunk: int
) -> FileTotals:
    """One pass over the responses in file order, `chunk` rows at a time.

    `nodes`: the `node_table` (None: no per-node sums); `nonempty`: which
    string ids are non-empty descriptions.  Each chunk's sums start from
    the previous chunk's (the carries go first: added to the chunk's first
    value, or first in the bincount), so the additions are exactly those
    of one pass over the whole file.
    """
    n = int(responses.size)
    sums = _Sums(nodes, thread_base, nonempty)
    codes = _CodeCounts()
    bad, bad_codes = [], []
    names = ["duration", "description", "code", "result"]
    if nodes is not None:
        names.append("thread")
    for lo in range(0, n, chunk):
        columns = take_columns(responses, [slice(lo, min(n, lo + chunk))], names)
        sums.add(columns, first_chunk=not lo)
        code, result = columns["code"], columns["result"]
        rows = np.flatnonzero(result != SUCCESSFUL)
        bad.append(rows + lo)
        bad_codes.append(code[rows])
        codes.add(code, result, lo)
    return FileTotals(
        sums.total,
        sums.per_node,
        sums.per_description,
        codes.by_code,
        codes.first,
        np.concatenate(bad) if bad else np.zeros(0, np.intp),
        np.concatenate(bad_codes) if bad_codes else np.zeros(0, np.int32),
    )


class _Sums:
    """Left-to-right sums of durations: all, per node, per non-empty description."""

    def __init__(self, nodes: Indexes | None, thread_base: int, nonempty: Mask) -> None:
        self.nodes = nodes
        self.thread_base = thread_base
        self.nonempty = nonempty
        self.total = 0.0
        slots = int(nodes.max()) + 1 if nodes is not None else 1
        self.per_node = np.zeros(slots)
        self.every_node = np.arange(slots)
        self.per_description = np.zeros(nonempty.size)
        self.description_ids = np.arange(nonempty.size)

    def add(self, columns: dict[str, NDArray[Any]], first_chunk: bool) -> None:
        """Add a chunk's durations (the next in file order)."""
        d = columns["duration"]
        self.total = carried_sum(d, None if first_chunk else self.total)
        if self.nodes is not None:
            node = self.nodes[node_slot(columns["thread"], self.thread_base, self.nodes.size)]
            # numpy's stubs type bincount as integer counts even with float weights
            self.per_node = np.bincount(  # type: ignore[assignment]
                np.concatenate([self.every_node, node]),
                weights=np.concatenate([self.per_node, d]),
                minlength=self.every_node.size,
            )
            del node
        description = columns["description"]
        described = self.nonempty[description]
        # float sums, as above
        self.per_description = np.bincount(  # type: ignore[assignment]
            np.concatenate([self.description_ids, description[described].astype(np.intp)]),
            weights=np.concatenate([self.per_description, d[described]]),
            minlength=self.nonempty.size,
        )


@dataclass
class _CodeCounts:
    """Responses by HTTP code and result, and the first row of each code."""

    by_code: dict[int, Ints] | None = field(default_factory=dict)  # None: codes too spread
    first: dict[int, int] = field(default_factory=dict)

    def add(self, code: NDArray[np.integer[Any]], result: NDArray[np.uint8], lo: int) -> None:
        """Count a chunk whose first row is row `lo` of the file."""
        if self.by_code is None:
            return
        low, high = int(code.min()), int(code.max())
        if high - low >= 100_000:
            self.by_code = None
            return
        offset = code.astype(np.int64) - low
        present = np.flatnonzero(np.bincount(offset))
        offset *= 256
        offset += result
        by_result = np.bincount(offset, minlength=(high - low + 1) * 256).reshape(-1, 256)
        offset //= 256
        for index in present.tolist():
            value = index + low
            if value in self.by_code:
                self.by_code[value] += by_result[index]
            else:
                self.by_code[value] = by_result[index].copy()
                self.first[value] = lo + int(np.argmax(offset == index))
