"""Several result files = several nodes of one bench: merge them into one ResultSet.

FunkLoad XML inputs follow FunkLoad's merge (FUNKLOAD.md §5.1): a file
whose ``cycles`` or ``duration`` differ from the first accepted file is
skipped with a reason; the users of each cycle become the node cycles ×
the number of files; thread ids get the file index as a prefix (node i,
thread t -> ``i * base + t`` with base 1000, as FunkLoad's text prefix
``"i" + "%03d" % t``, or a larger power of ten when a node ran more than
1000 threads, so ids never collide); monitor hosts ``localhost`` take the
node's name; the ``node`` config lists the node names.

Marteau compact inputs (``.mrt``) carry each node's real users, which may
differ per node (users split across nodes): only the duration and the
number of cycles must agree, and the users of a cycle are the **sum** of
the nodes' users.  For identical FunkLoad files the sum is the same as
"× number of files", so one rule serves both.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from marteau.errors import MarteauError
from marteau.results import load
from marteau.results.compact import (
    MAGIC_PREFIX,
    RECORD_FIELDS,
    RESPONSES,
    SAMPLES,
    TESTS,
    CompactScan,
    is_compact,
    read_records,
    resultset_of,
    scan_compact,
)
from marteau.results.records import numpy_dtype
from marteau.results.resultset import ResultSet


@dataclass
class NodeInfo:
    """One input node as the merger saw it (name, thread id range, own samples)."""

    name: str
    index: int  # its records' threads are index * thread_base + thread
    source: str
    cycles: list[int]  # the node's own users per cycle
    samples: Any = None  # numpy array, SAMPLE_FIELDS dtype


def parse_cycles(value: str | None) -> list[int]:
    """The ``cycles`` config value, FunkLoad's list repr ``[1, 2, 3]``; [] if unreadable."""
    text = (value or "").strip().strip("[]")
    try:
        return [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        return []


def cycle_duration(config: dict[str, str]) -> float:
    """The config ``duration`` as a float, 0 when absent or unreadable."""
    try:
        return float(config.get("duration", 0) or 0)
    except ValueError:
        return 0.0


@dataclass
class Skipped:
    """An input left out of the report, and why."""

    path: str
    reason: str


@dataclass
class Merged:
    """One ResultSet for the whole bench, plus what the report must say about its inputs."""

    results: ResultSet
    nodes: list[NodeInfo]
    thread_base: int
    skipped: list[Skipped] = field(default_factory=list)
    sources: list[ResultSet] = field(default_factory=list)  # the accepted inputs, in order

    def inputs(self) -> list[dict[str, Any]]:
        """The ``inputs`` list of summary.json."""
        used = [
            {"path": rs.source, "node": node.name, "used": True, "reason": None}
            for rs, node in zip(self.sources, self.nodes, strict=True)
        ]
        return used + [
            {"path": s.path, "node": "", "used": False, "reason": s.reason} for s in self.skipped
        ]


def is_compact_source(rs: ResultSet) -> bool:
    """Whether `rs` came from a compact ``.mrt`` file (else: FunkLoad XML)."""
    try:
        return bool(is_compact(rs.source))
    except OSError:
        return rs.source.endswith(".mrt")


@contextlib.contextmanager
def small_pages() -> Iterator[None]:
    """numpy without madvise(MADV_HUGEPAGE) on its large arrays, for the block.

    Why: with transparent huge pages in ``madvise`` mode (this machine's
    setting), numpy asks for huge pages for every large array, and the
    kernel may compact memory synchronously to find them: on a loaded
    machine, reading 10 million records (530 MB) into fresh arrays took
    1.1 to 1.8 s of CPU that way, 0.57 s without.  Restored on exit.
    """
    try:
        # numpy's private switch, not in its stubs; another numpy raises ImportError
        from numpy._core.multiarray import _set_madvise_hugepage  # type: ignore[attr-defined]
    except ImportError:  # another numpy: leave it as it is
        yield
        return
    previous = _set_madvise_hugepage(False)
    try:
        yield
    finally:
        _set_madvise_hugepage(previous)


def load_all(paths: Sequence[str], names: dict[str, str] | None = None) -> Merged:
    """Load and merge result files; unreadable or incompatible ones are skipped.

    `names` (path -> node name, e.g. ``marteau run``'s inventory names)
    overrides the node names the files carry.

    Raises MarteauError only when no input can be used.  When every input
    is a compact file whose config gives its cycles (what nodes write), the
    files' tables are read first and the records of the accepted ones are
    then read straight into their slices of the merged arrays: no node's
    arrays are ever held next to the merged ones.
    """
    with small_pages():
        return _load_all(paths, names or {})


def _load_all(paths: Sequence[str], names: dict[str, str]) -> Merged:
    entries: list[Any] = []
    skipped: list[Skipped] = []
    for path in paths:
        try:
            entries.append(_scan(path) or load(path))
        except MarteauError as exc:
            skipped.append(Skipped(os.fspath(path), str(exc)))
    if not entries:
        reasons = "; ".join(s.reason for s in skipped) or "no input"
        raise MarteauError(f"no usable result file: {reasons}")
    loaded, into = _read_in_place(entries)
    del entries
    wanted = {os.path.abspath(path): name for path, name in names.items()}
    for rs in loaded:
        rs.node = wanted.get(os.path.abspath(rs.source), rs.node)
    merged = merge(loaded, release=True, _into=into)
    del loaded
    merged.skipped = skipped + merged.skipped
    return merged


def _scan(path: str) -> Any:
    """A compact file's `CompactScan` (records not read), None for another format.

    Errors are worded as `marteau.results.load` words them.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            head = f.read(len(MAGIC_PREFIX))
    except OSError:
        return None  # load() reports it
    if head != MAGIC_PREFIX:
        return None
    try:
        return scan_compact(name)
    except MarteauError:
        raise
    except (ValueError, OSError, UnicodeError) as exc:
        raise MarteauError(f"{name}: unreadable result file: {exc}") from exc


def _read_in_place(entries: list[Any]) -> tuple[list[ResultSet], Any]:
    """ResultSets of the entries; scanned files' records read into one set of merged arrays.

    Returns the ResultSets and, when the records were read in place, the
    merged (responses, tests, samples) arrays that `merge` completes.
    """
    import numpy as np

    kinds = (RESPONSES, TESTS, SAMPLES)
    dtypes = [numpy_dtype(RECORD_FIELDS[kind]) for kind in kinds]
    scans = [e for e in entries if isinstance(e, CompactScan)]
    in_place = len(scans) == len(entries) > 1 and all(
        parse_cycles(s.raw.config.get("cycles")) for s in scans
    )

    def empty_set(scan: CompactScan) -> ResultSet:
        return resultset_of(scan, *(np.empty(0, dtype) for dtype in dtypes))

    if not in_place:
        out = []
        for entry in entries:
            if isinstance(entry, CompactScan):
                arrays = [np.empty(entry.count(k), d) for k, d in zip(kinds, dtypes, strict=True)]
                for kind, array in zip(kinds, arrays, strict=True):
                    read_records(entry, kind, array)
                entry = resultset_of(entry, *arrays)
            out.append(entry)
        return out, None
    # the same acceptance as merge(), decided on the configs alone
    sets = [empty_set(scan) for scan in scans]
    accepted = [0] + [i for i in range(1, len(sets)) if not _compatible(sets[0], sets[i])]
    into = [
        np.empty(sum(scans[i].count(kind) for i in accepted), dtype)
        for kind, dtype in zip(kinds, dtypes, strict=True)
    ]
    at = [0, 0, 0]
    for i in accepted:
        arrays = []
        for j, kind in enumerate(kinds):
            n = scans[i].count(kind)
            part = into[j][at[j] : at[j] + n]
            read_records(scans[i], kind, part)
            at[j] += n
            arrays.append(part)
        sets[i].responses, sets[i].tests, sets[i].samples = arrays
    return sets, tuple(into)


def _own_cycles(rs: ResultSet) -> list[int]:
    cycles = parse_cycles(rs.config.get("cycles"))
    if cycles:
        return cycles
    # no readable config: the users each cycle's records carry
    out: dict[int, int] = {}
    for array in (rs.responses, rs.tests):
        for cycle, cvus in zip(array["cycle"].tolist(), array["cvus"].tolist(), strict=True):
            out[cycle] = max(out.get(cycle, 0), cvus)
    return [out.get(i, 0) for i in range(max(out) + 1)] if out else []


def _node_name(rs: ResultSet, index: int, taken: set[str]) -> str:
    name = rs.node or rs.config.get("node", "") or f"node-{index}"
    if name in taken:
        name = f"{name}-{index}"
    taken.add(name)
    return name


def _compatible(first: ResultSet, rs: ResultSet) -> str | None:
    """Why `rs` cannot join a bench started by `first`, or None."""
    if cycle_duration(first.config) != cycle_duration(rs.config):
        return (
            f"cycle duration {rs.config.get('duration', '?')} differs from "
            f"{first.config.get('duration', '?')} in {first.source}"
        )
    mine, theirs = _own_cycles(rs), _own_cycles(first)
    if is_compact_source(rs) and is_compact_source(first):
        if len(mine) != len(theirs):
            return f"{len(mine)} cycles where {first.source} has {len(theirs)}"
    elif mine != theirs:
        return f"cycles {mine} differ from {theirs} in {first.source}"
    return None


def merge(resultsets: Sequence[ResultSet], *, release: bool = False, _into: Any = None) -> Merged:
    """Merge loaded results of the nodes of one bench (see the module docstring).

    The merged arrays are allocated once and each node's records copied and
    remapped into their slice.  With `release` (`load_all`, which owns its
    inputs), each accepted input's record arrays are replaced by empty ones
    as soon as they are copied, so the nodes' arrays are not kept next to
    the merged ones: `Merged.sources` then keep their config, source and
    tables, which is all the report reads from them afterwards.  `_into`
    (from `load_all`): the merged arrays, the accepted inputs' records
    already read into their slices, completed in place.
    """
    if not resultsets:
        raise MarteauError("no result to merge")
    first = resultsets[0]
    accepted, skipped = _accepted(first, resultsets[1:])
    taken: set[str] = set()
    nodes = [
        NodeInfo(_node_name(rs, i, taken), i, rs.source, _own_cycles(rs), rs.samples)
        for i, rs in enumerate(accepted)
    ]
    thread_base = _thread_base(accepted)
    if len(accepted) == 1:
        return Merged(first, nodes, thread_base, skipped, [first])

    width = max(len(n.cycles) for n in nodes)
    users = [sum(n.cycles[c] for n in nodes if c < len(n.cycles)) for c in range(width)]
    if _into is None:
        _into = tuple(_allocate(accepted, name) for name in ("responses", "tests", "samples"))
    all_responses, all_tests, all_samples = _into
    cvus = _MergedUsers(users, len(accepted))
    strings: list[str] = []
    ids: dict[str, int] = {}
    details: list[dict[str, Any]] = []
    monitors: list[dict[str, str]] = []
    warnings: list[str] = []
    r_at = t_at = s_at = 0
    for node, rs in zip(nodes, accepted, strict=True):
        remap = _remap_strings(rs.strings, ids, strings)
        offset = len(details)
        details.extend(rs.details)
        r = all_responses[r_at : r_at + rs.responses.size]
        t = all_tests[t_at : t_at + rs.tests.size]
        r_at += r.size
        t_at += t.size
        for out, source in ((r, rs.responses), (t, rs.tests)):
            _copy_records(out, source, node.index * thread_base, offset, cvus)
        if remap is not None:
            for name in ("type", "url", "description"):
                r[name] = remap[r[name]]
        part = all_samples[s_at : s_at + rs.samples.size]
        if not _same_memory(part, rs.samples):
            part[...] = rs.samples
        s_at += rs.samples.size
        if release:
            rs.responses = rs.responses[:0]
            rs.tests = rs.tests[:0]
        monitors.extend(_node_monitors(rs, node.name))
        warnings.extend(rs.warnings)
    warnings.extend(s.reason for s in skipped)
    config = dict(first.config)
    config["cycles"] = str(users)
    config["node"] = ", ".join(n.name for n in nodes)
    merged = ResultSet(
        config=config,
        strings=strings,
        responses=all_responses,
        tests=all_tests,
        samples=all_samples,
        details=details,
        source=", ".join(rs.source for rs in accepted),
        node=config["node"],
        monitors=monitors,
        warnings=warnings,
        iterations=_merged_iterations(nodes, accepted, thread_base),
    )
    return Merged(merged, nodes, thread_base, skipped, accepted)


def _accepted(
    first: ResultSet, others: Sequence[ResultSet]
) -> tuple[list[ResultSet], list[Skipped]]:
    """The inputs of the same bench as `first` (itself included), and the others, with why."""
    accepted: list[ResultSet] = [first]
    skipped: list[Skipped] = []
    for rs in others:
        reason = _compatible(first, rs)
        if reason:
            skipped.append(Skipped(rs.source, f"{rs.source}: skipped: {reason}"))
        else:
            accepted.append(rs)
    return accepted, skipped


def _thread_base(accepted: Sequence[ResultSet]) -> int:
    """The multiple of the node index added to its thread ids: 1000, or above its largest id."""
    max_thread = max(
        [int(a["thread"].max()) for rs in accepted for a in (rs.responses, rs.tests) if a.size]
        or [0]
    )
    return 1000 if max_thread < 1000 else 10 ** len(str(max_thread))


def _allocate(accepted: Sequence[ResultSet], name: str) -> Any:
    """The merged array of the `name` records (uninitialised), one slice per node."""
    import numpy as np

    arrays = [getattr(rs, name) for rs in accepted]
    dtype = np.result_type(*[a.dtype for a in arrays])
    return np.empty(sum(a.size for a in arrays), dtype=dtype)


def _remap_strings(own: list[str], ids: dict[str, int], strings: list[str]) -> Any:
    """A node's string ids → merged ids (new strings appended), or None if they are the same."""
    import numpy as np

    remap = np.empty(max(len(own), 1), dtype=np.uint32)
    for old, text in enumerate(own):
        new = ids.get(text)
        if new is None:
            new = ids[text] = len(strings)
            strings.append(text)
        remap[old] = new
    if np.array_equal(remap[: len(own)], np.arange(len(own))):
        return None
    return remap


class _MergedUsers:
    """FunkLoad's ``cvus`` of merged records: the users of all nodes in the record's cycle."""

    def __init__(self, users: list[int], count: int) -> None:
        import numpy as np

        self.np = np
        self.users = users
        self.count = count
        self.by_cycle = np.array(users or [0], dtype=np.int64)

    def of(self, array: Any) -> Any:
        np = self.np
        cycle = array["cycle"].astype(np.int64)
        inside = cycle < len(self.users)
        out = array["cvus"].astype(np.int64) * self.count  # FunkLoad's rule outside the list
        out[inside] = self.by_cycle[cycle[inside]]
        return out

    def set(self, array: Any) -> None:
        """array["cvus"] = self.of(array), run by run of one cycle (records come so)."""
        np = self.np
        cycle = np.ascontiguousarray(array["cycle"])
        n = int(cycle.size)
        change = np.flatnonzero(cycle[1:] != cycle[:-1]) + 1 if n else None
        if change is None or change.size >= 4096:
            array["cvus"] = self.of(array)
            return
        bounds = [0, *change.tolist(), n]
        column = array["cvus"]
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            number = int(cycle[lo])
            if number < len(self.users):
                column[lo:hi] = self.by_cycle[number]
            else:
                column[lo:hi] = column[lo:hi].astype(np.int64) * self.count


def _copy_records(
    out: Any, source: Any, thread_offset: int, detail_offset: int, cvus: _MergedUsers
) -> None:
    """A node's records into their slice of the merged array, renumbered in place.

    Same arithmetic as thread + index * base, detail + offset if > 0.
    """
    import numpy as np

    if not _same_memory(out, source):
        out[...] = source
    if thread_offset:
        column = out["thread"]
        column += thread_offset
    if detail_offset:
        column = out["detail"]
        used = np.flatnonzero(column)
        column[used] += detail_offset
    cvus.set(out)


def _node_monitors(rs: ResultSet, node: str) -> list[dict[str, str]]:
    """A node's monitor samples, ``localhost`` named after the node."""
    monitors = []
    for monitor in rs.monitors:
        monitor = dict(monitor)
        if monitor.get("host") == "localhost":
            monitor["host"] = node
        monitors.append(monitor)
    return monitors


def _merged_iterations(
    nodes: Sequence[NodeInfo], accepted: Sequence[ResultSet], thread_base: int
) -> Any:
    """The open model's iterations of every node, threads and workers made unique per node
    as the requests' threads are (None when no node ran the open model)."""
    import numpy as np

    parts = []
    for node, rs in zip(nodes, accepted, strict=True):
        if rs.iterations is None or not rs.iterations.size:
            continue
        part = rs.iterations.copy()
        part["thread"] += node.index * thread_base
        part["worker"] += node.index * thread_base
        parts.append(part)
    return np.concatenate(parts) if parts else None


def _same_memory(a: Any, b: Any) -> bool:
    """Whether `b` is `a` itself (records read in place by `load_all`)."""
    return a.size == b.size and (
        not a.size or a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    )


# -- FunkLoad's merged XML file (the report directory's funkload.xml) ---------

_CVUS = re.compile(r'cycle="(\d+)" cvus="(\d+)"')
_THREAD = re.compile(r'thread="(\d+)"')
_NODE_CONFIG = re.compile(r'<config key="node" value="[^"]*"')


def write_merged_xml(merged: Merged, path: str) -> None:
    """Concatenate the accepted FunkLoad XML inputs as FunkLoad's merge does.

    Line-based text replacement, like FunkLoad: the cycles list, ``cvus``,
    thread ids, ``host="localhost"`` and the ``node`` config of the first
    file; root and config lines of later files dropped; one closing tag.
    """
    users = parse_cycles(merged.results.config.get("cycles"))
    base = merged.thread_base
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for node, rs in zip(merged.nodes, merged.sources, strict=True):
            own_cycles = rs.config.get("cycles", "")
            node_names = ", ".join(n.name for n in merged.nodes)

            def cvus(match: re.Match[str]) -> str:
                cycle = int(match.group(1))
                value = users[cycle] if cycle < len(users) else int(match.group(2)) * len(users)
                return f'cycle="{match.group(1)}" cvus="{value:03d}"'

            def thread(match: re.Match[str], index: int = node.index) -> str:
                return f'thread="{index * base + int(match.group(1)):03d}"'

            with open(rs.source, encoding="utf-8", errors="surrogateescape") as f:
                for line in f:
                    if not line.endswith("\n"):
                        break  # a killed bench's cut last line: not XML
                    if "</funkload>" in line:
                        continue
                    if node.index > 0 and ("<funkload" in line or "<config" in line):
                        continue
                    if own_cycles and f'value="{own_cycles}"' in line:
                        line = line.replace(
                            f'value="{own_cycles}"', f'value="{merged.results.config["cycles"]}"'
                        )
                    if node.index == 0 and '<config key="node"' in line:
                        line = _NODE_CONFIG.sub(f'<config key="node" value="{node_names}"', line)
                    line = _CVUS.sub(cvus, line)
                    line = _THREAD.sub(thread, line)
                    line = line.replace('host="localhost"', f'host="{node.name}"')
                    out.write(line.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
        out.write("</funkload>\n")
