"""Live per-cycle figures of a running job, read from its console.

`marteau run --plain` prints one line per node and cycle while the bench runs
(marteau.orchestration.live), for example
`[  12.3s] node1: cycle #0 users 5/10, 812 req/s, 90 ok, 1 failures, 2 errors,
p50 1.2 ms  p95 31 ms  p99 120 ms` (the quantiles are the node's estimate over
its last 10 s: `marteau.engine.figures`). The worker writes that output to the
job's console file, so the service needs no other channel: it parses those
lines into a table with one row per cycle and node (the latest line of each
wins), for the job page, its SSE stream and the JSON API, and into a timeline
(one point per console instant and cycle) for the live charts, the report's
own chart specs (`marteau.report.interactive`) drawn by the same script:

- requests per second over time, one line per cycle: the sum of the cycle's
  nodes' latest req/s;
- response time percentiles over time, the cycles shaded: for each quantile
  the highest of the cycle's nodes' latest (the pool's quantile is never above
  its slowest node's, so the chart never looks better than the run);
- concurrent users (the sum of the cycle's nodes') and the run's failed tests
  so far (failures and errors) over time, the report's monitored "concurrent
  users over time" chart with a second axis.

The report's per-CUs charts (tests/s, pages/s with errors % and Apdex,
candles) and its distribution need each cycle's exact window and every
response: they come with the report, not live.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

PROGRESS = re.compile(
    r"^\[\s*(?P<elapsed>\d+(?:\.\d+)?)s\] (?P<node>\S+): cycle #(?P<cycle>\d+)"
    r" users (?P<users>\d+)/(?P<cycle_users>\d+|\?)"
    r"(?:, (?P<rps>\d+(?:\.\d+)?) req/s)?"
    r"(?:, (?P<ok>\d+) ok, (?P<failures>\d+) failures, (?P<errors>\d+) errors)?"
    r"(?:, (?P<quantiles>p\d+ \d+(?:\.\d+)? ms(?:  p\d+ \d+(?:\.\d+)? ms)*))?\s*$"
)
QUANTILE = re.compile(r"(p\d+) (\d+(?:\.\d+)?) ms")
QUANTILES = ("p50", "p95", "p99")  # the ones kept and charted, in ms
READ_LIMIT = 2**20  # bytes read from the console per update
MAX_POINTS = 1500  # points of the live charts' timeline: every other one dropped beyond
# and values of the requests/s chart (a y per cycle at each point: one line per cycle
# over the same x), which keeps an SSE event of a run of many cycles near 200 kB
MAX_CELLS = 24000


@dataclass
class CycleFigures:
    """What one node said last about one cycle (quantiles in ms)."""

    cycle: int
    node: str
    users: int
    cycle_users: int | None
    rps: float | None
    ok: int | None
    failures: int | None
    errors: int | None
    elapsed: float
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None


class Point(NamedTuple):
    """One instant of a cycle, over its nodes' latest figures (quantiles in ms)."""

    elapsed: float
    cycle: int
    rps: float | None
    users: int
    p50: float | None
    p95: float | None
    p99: float | None
    failures: int  # the run's so far, every cycle and node
    errors: int


def parse_line(line: str) -> CycleFigures | None:
    """The figures of one console line, or None when it is not a progress line."""
    match = PROGRESS.match(line.rstrip("\r\n"))
    if match is None:
        return None

    def number(key: str) -> int | None:
        value = match[key]
        return None if value is None or value == "?" else int(value)

    quantiles = dict(QUANTILE.findall(match["quantiles"] or ""))
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
        **{key: float(quantiles[key]) for key in QUANTILES if key in quantiles},
    )


def _highest(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


class FiguresReader:
    """Follows one console file from its start and keeps the latest figures per
    (cycle, node). `update()` reads what was appended since the last call, so a
    stream can poll it cheaply while the job runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self._pending = b""
        self._rows: dict[tuple[int, str], CycleFigures] = {}
        self._cycles: dict[int, dict[str, CycleFigures]] = {}  # cycle -> node -> latest
        self._failed = [0, 0]  # the latest failures and errors summed over every row
        self._points: list[Point] = []
        self._stride = 1  # instants per point, doubled at each halving of the timeline
        self._merged = 0  # instants the last point stands for beyond its own

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
                    before = self._rows.get(key)
                    if before != figures:
                        self._rows[key] = figures
                        self._cycles.setdefault(figures.cycle, {})[figures.node] = figures
                        self._count_failed(before, -1)
                        self._count_failed(figures, 1)
                        self._record(figures)
                        changed = True

    def _count_failed(self, row: CycleFigures | None, sign: int) -> None:
        if row is not None:
            self._failed[0] += sign * (row.failures or 0)
            self._failed[1] += sign * (row.errors or 0)

    def _record(self, figures: CycleFigures) -> None:
        """A point of the timeline: the cycle's nodes' latest figures at this line's time
        (one point per instant and cycle: the nodes' lines come in batches)."""
        nodes = list(self._cycles[figures.cycle].values())
        rates = [row.rps for row in nodes if row.rps is not None]
        point = Point(
            figures.elapsed,
            figures.cycle,
            sum(rates) if rates else None,
            sum(row.users for row in nodes),
            # mypy matches a starred argument against every field after it
            *(_highest([getattr(row, key) for row in nodes]) for key in QUANTILES),  # type: ignore[arg-type]
            *self._failed,
        )
        points = self._points
        same_cycle = bool(points) and points[-1].cycle == point.cycle
        if same_cycle and points[-1].elapsed == point.elapsed:
            points[-1] = point
        elif same_cycle and self._merged + 1 < self._stride:
            points[-1] = point
            self._merged += 1
        else:
            points.append(point)
            self._merged = 0
        if len(points) > min(MAX_POINTS, MAX_CELLS // (1 + len(self._cycles))):
            # every other one (the last kept), and from now on one point for twice as
            # many instants: the density stays even over the whole run
            self._points = points[-1::-2][::-1]
            self._stride *= 2

    def rows(self) -> list[dict[str, Any]]:
        """One row per cycle and node, in cycle then node order."""
        return [asdict(self._rows[key]) for key in sorted(self._rows)]

    def _cycle_label(self, cycle: int) -> tuple[int, str]:
        users = sum(row.cycle_users or row.users for row in self._cycles[cycle].values())
        return users, f"{users} CUs"

    def charts(self) -> dict[str, dict[str, Any]]:
        """The live charts' specs, by chart name: requests/s per cycle, the response time
        percentiles and the users and failed tests, over the run's time."""
        from marteau.report.interactive import monitor_spec, percentiles_time_spec, time_rps_spec

        xlabel = "time since the run started (s)"
        points = self._points
        by_cycle: dict[int, list[Point]] = {}
        for point in points:
            by_cycle.setdefault(point.cycle, []).append(point)
        lines, spans = [], []
        for cycle, part in sorted(by_cycle.items()):
            users, label = self._cycle_label(cycle)
            spans.append((part[0].elapsed, part[-1].elapsed, users))
            rated = [p for p in part if p.rps is not None]
            if rated:
                lines.append((label, [p.elapsed for p in rated], [p.rps for p in rated]))
        x = [p.elapsed for p in points]

        def column(key: str, scale: float = 1.0) -> list[float]:
            return [float("nan") if (v := getattr(p, key)) is None else v * scale for p in points]

        percentiles = [
            (label, column(key, 0.001))
            for key, label in (("p50", "P50 (median)"), ("p95", "P95"), ("p99", "P99"))
        ]
        return {
            "live_rps": time_rps_spec(1, lines, xlabel=xlabel),
            "live_percentiles": percentiles_time_spec(
                1,
                x,
                percentiles if any(p.p50 is not None for p in points) else [],
                spans,
                over="last 10 s, slowest node",
                xlabel=xlabel,
            ),
            "live_users": monitor_spec(
                "Concurrent users and failed tests over time",
                x,
                [
                    ("concurrent users (CUs)", [("CUs", column("users"))]),
                    ("failed tests (run so far)", [(k, column(k)) for k in ("failures", "errors")]),
                ],
                steps=True,
                spans=spans,
                xlabel=xlabel,
            ),
        }

    def view(self) -> dict[str, Any]:
        """The rows, the totals of each cycle and the charts: what the job page shows."""
        return {**with_totals(self.rows()), "charts": self.charts()}


def job_view(console: Path) -> dict[str, Any]:
    """The rows, totals and charts the console holds now (`FiguresReader.view`)."""
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
