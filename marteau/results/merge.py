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

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from marteau.errors import MarteauError
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
    from marteau.results.compact import is_compact

    try:
        return bool(is_compact(rs.source))
    except OSError:
        return rs.source.endswith(".mrt")


def load_all(paths: Sequence[str]) -> Merged:
    """Load and merge result files; unreadable or incompatible ones are skipped.

    Raises MarteauError only when no input can be used.
    """
    from marteau.results import load

    loaded: list[ResultSet] = []
    skipped: list[Skipped] = []
    for path in paths:
        try:
            loaded.append(load(path))
        except MarteauError as exc:
            skipped.append(Skipped(os.fspath(path), str(exc)))
    if not loaded:
        reasons = "; ".join(s.reason for s in skipped) or "no input"
        raise MarteauError(f"no usable result file: {reasons}")
    merged = merge(loaded)
    merged.skipped = skipped + merged.skipped
    return merged


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


def merge(resultsets: Sequence[ResultSet]) -> Merged:
    """Merge loaded results of the nodes of one bench (see the module docstring)."""
    import numpy as np

    if not resultsets:
        raise MarteauError("no result to merge")
    first = resultsets[0]
    accepted: list[ResultSet] = [first]
    skipped: list[Skipped] = []
    for rs in resultsets[1:]:
        reason = _compatible(first, rs)
        if reason:
            skipped.append(Skipped(rs.source, f"{rs.source}: skipped: {reason}"))
        else:
            accepted.append(rs)
    taken: set[str] = set()
    nodes = [
        NodeInfo(_node_name(rs, i, taken), i, rs.source, _own_cycles(rs), rs.samples)
        for i, rs in enumerate(accepted)
    ]
    max_thread = max(
        [int(a["thread"].max()) for rs in accepted for a in (rs.responses, rs.tests) if a.size]
        or [0]
    )
    thread_base = 1000 if max_thread < 1000 else 10 ** len(str(max_thread))
    if len(accepted) == 1:
        return Merged(first, nodes, thread_base, skipped, [first])

    width = max(len(n.cycles) for n in nodes)
    users = [sum(n.cycles[c] for n in nodes if c < len(n.cycles)) for c in range(width)]
    count = len(accepted)
    strings: list[str] = []
    ids: dict[str, int] = {}
    details: list[dict[str, Any]] = []
    responses, tests, samples, monitors, warnings = [], [], [], [], []
    users_by_cycle = np.array(users or [0], dtype=np.int64)

    def merged_cvus(array: Any) -> Any:
        cycle = array["cycle"].astype(np.int64)
        inside = cycle < len(users)
        out = array["cvus"].astype(np.int64) * count  # FunkLoad's rule outside the list
        out[inside] = users_by_cycle[cycle[inside]]
        return out

    for node, rs in zip(nodes, accepted, strict=True):
        remap = np.empty(max(len(rs.strings), 1), dtype=np.uint32)
        for old, text in enumerate(rs.strings):
            new = ids.get(text)
            if new is None:
                new = ids[text] = len(strings)
                strings.append(text)
            remap[old] = new
        offset = len(details)
        details.extend(rs.details)
        r = rs.responses.copy()
        for name in ("type", "url", "description"):
            r[name] = remap[r[name]]
        t = rs.tests.copy()
        for array in (r, t):
            array["thread"] = array["thread"] + node.index * thread_base
            array["detail"] = np.where(array["detail"] > 0, array["detail"] + offset, 0)
            array["cvus"] = merged_cvus(array)
        responses.append(r)
        tests.append(t)
        samples.append(rs.samples)
        for monitor in rs.monitors:
            monitor = dict(monitor)
            if monitor.get("host") == "localhost":
                monitor["host"] = node.name
            monitors.append(monitor)
        warnings.extend(rs.warnings)
    warnings.extend(s.reason for s in skipped)
    config = dict(first.config)
    config["cycles"] = str(users)
    config["node"] = ", ".join(n.name for n in nodes)
    merged = ResultSet(
        config=config,
        strings=strings,
        responses=np.concatenate(responses),
        tests=np.concatenate(tests),
        samples=np.concatenate(samples),
        details=details,
        source=", ".join(rs.source for rs in accepted),
        node=config["node"],
        monitors=monitors,
        warnings=warnings,
    )
    return Merged(merged, nodes, thread_base, skipped, accepted)


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
