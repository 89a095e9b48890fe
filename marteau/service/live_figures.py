"""Live per-cycle figures of a running job, read from its console.

`marteau run --plain` prints one line per node and cycle while the bench runs
(marteau.orchestration.live), for example
`[  12.3s] node1: cycle #0 users 5/10, 812 req/s, 90 ok, 1 failures, 2 errors`.
The worker writes that output to the job's console file, so the service needs no
other channel: it parses those lines into a table with one row per cycle and node
(the latest line of each wins), for the job page, its SSE stream and the JSON API,
and into the history of each cycle's requests/s (the sum of its nodes' latest
figures at each progress line) for the live chart: the report's "requests per
second over time" chart (`marteau.report.interactive.time_rps_spec`), drawn by
the same script.
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
MAX_POINTS = 1500  # points of the live chart, all cycles: every other one dropped beyond


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
        self._rates: dict[int, dict[str, float]] = {}  # cycle -> node -> latest req/s
        self._history: dict[int, list[tuple[float, float]]] = {}  # cycle -> (elapsed, req/s)

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
                        self._record_rate(figures)
                        changed = True

    def _record_rate(self, figures: CycleFigures) -> None:
        """A point of the cycle's line: its nodes' latest req/s summed, at this line's time
        (one point per instant: the nodes' lines come in batches)."""
        if figures.rps is None:
            return
        rates = self._rates.setdefault(figures.cycle, {})
        rates[figures.node] = figures.rps
        points = self._history.setdefault(figures.cycle, [])
        point = (figures.elapsed, sum(rates.values()))
        if points and points[-1][0] == figures.elapsed:
            points[-1] = point
        else:
            points.append(point)
        if sum(len(p) for p in self._history.values()) > MAX_POINTS:
            for cycle, kept in self._history.items():
                self._history[cycle] = kept[-1::-2][::-1]  # every other one, the last kept

    def rows(self) -> list[dict[str, Any]]:
        """One row per cycle and node, in cycle then node order."""
        return [asdict(self._rows[key]) for key in sorted(self._rows)]

    def chart(self) -> dict[str, Any]:
        """The live chart's spec: requests/s over the run's time, one line per cycle,
        named by its users (the sum of its nodes')."""
        from marteau.report.interactive import time_rps_spec

        lines = []
        for cycle, points in sorted(self._history.items()):
            rows = [row for (c, _node), row in self._rows.items() if c == cycle]
            users = sum(row.cycle_users or row.users for row in rows)
            lines.append((f"{users} CUs", [t for t, _ in points], [v for _, v in points]))
        return time_rps_spec(1, lines, xlabel="time since the run started (s)")

    def view(self) -> dict[str, Any]:
        """The rows, the totals of each cycle and the chart: what the job page shows."""
        return {**with_totals(self.rows()), "chart": self.chart()}


def job_view(console: Path) -> dict[str, Any]:
    """The rows, totals and chart the console holds now (`FiguresReader.view`)."""
    reader = FiguresReader(console)
    reader.update()
    return reader.view()


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
