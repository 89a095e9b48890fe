"""Live per-cycle figures of a running job, read from its console.

`marteau run --plain` prints one line per node and cycle while the bench runs
(marteau.orchestration.live), for example
`[  12.3s] node1: cycle #0 users 5/10, 812 req/s, 90 ok, 1 failures, 2 errors`.
The worker writes that output to the job's console file, so the service needs no
other channel: it parses those lines into a table with one row per cycle and node
(the latest line of each wins), for the job page, its SSE stream and the JSON API.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PROGRESS = re.compile(
    r"^\[\s*(?P<elapsed>\d+(?:\.\d+)?)s\] (?P<node>\S+): cycle #(?P<cycle>\d+)"
    r" users (?P<users>\d+)/(?P<cycle_users>\d+|\?)"
    r"(?:, (?P<rps>\d+(?:\.\d+)?) req/s)?"
    r"(?:, (?P<ok>\d+) ok, (?P<failures>\d+) failures, (?P<errors>\d+) errors)?\s*$"
)
READ_LIMIT = 2**20  # bytes read from the console per update


@dataclass
class CycleFigures:
    """What one node said last about one cycle."""

    cycle: int
    node: str
    users: int
    cycle_users: int | None
    rps: float | None
    ok: int | None
    failures: int | None
    errors: int | None
    elapsed: float


def parse_line(line: str) -> CycleFigures | None:
    """The figures of one console line, or None when it is not a progress line."""
    match = PROGRESS.match(line.rstrip("\r\n"))
    if match is None:
        return None

    def number(key: str) -> int | None:
        value = match[key]
        return None if value is None or value == "?" else int(value)

    return CycleFigures(
        cycle=int(match["cycle"]),
        node=match["node"],
        users=int(match["users"]),
        cycle_users=number("cycle_users"),
        rps=None if match["rps"] is None else float(match["rps"]),
        ok=number("ok"),
        failures=number("failures"),
        errors=number("errors"),
        elapsed=float(match["elapsed"]),
    )


class FiguresReader:
    """Follows one console file from its start and keeps the latest figures per
    (cycle, node). `update()` reads what was appended since the last call, so a
    stream can poll it cheaply while the job runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self._pending = b""
        self._rows: dict[tuple[int, str], CycleFigures] = {}

    def update(self) -> bool:
        """Read new console lines; True when a figure changed."""
        changed = False
        while True:
            try:
                with open(self.path, "rb") as console:
                    console.seek(self.offset)
                    data = console.read(READ_LIMIT)
            except FileNotFoundError:
                return changed
            if not data:
                return changed
            self.offset += len(data)
            *lines, self._pending = (self._pending + data).split(b"\n")
            for raw in lines:
                figures = parse_line(raw.decode("utf-8", "replace"))
                if figures is not None:
                    key = (figures.cycle, figures.node)
                    if self._rows.get(key) != figures:
                        self._rows[key] = figures
                        changed = True

    def rows(self) -> list[dict[str, Any]]:
        """One row per cycle and node, in cycle then node order."""
        return [asdict(self._rows[key]) for key in sorted(self._rows)]


def job_figures(console: Path) -> list[dict[str, Any]]:
    """The per-cycle figures the console holds now."""
    reader = FiguresReader(console)
    reader.update()
    return reader.rows()


SUMMED = ("users", "cycle_users", "rps", "ok", "failures", "errors")


def cycle_totals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each cycle that more than one node reported, the sums over its nodes:
    what the whole pool did (each node's figures are from its own last line)."""
    by_cycle: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_cycle.setdefault(row["cycle"], []).append(row)
    totals = []
    for cycle, group in sorted(by_cycle.items()):
        if len(group) < 2:
            continue
        total: dict[str, Any] = {"cycle": cycle, "nodes": len(group)}
        for key in SUMMED:
            values = [row[key] for row in group if row[key] is not None]
            total[key] = sum(values) if values else None
        totals.append(total)
    return totals


def with_totals(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return {"rows": rows, "totals": cycle_totals(rows)}
