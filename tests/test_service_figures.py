"""Live per-cycle figures: the progress lines `marteau run --plain` writes (through the
real LiveView) parsed back into one row per cycle and node, read incrementally, and the
live chart of requests/s over time drawn from them."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from marteau.orchestration.live import LiveView
from marteau.service.live_figures import (
    MAX_CELLS,
    MAX_POINTS,
    FiguresReader,
    cycle_totals,
    job_figures,
    job_view,
    parse_line,
)


def _plain_lines(*updates: dict) -> list[str]:
    stream = io.StringIO()
    view = LiveView(Console(file=stream, width=60), live=False)
    for update in updates:
        view.node(**update)
    return stream.getvalue().splitlines()


def test_a_live_view_progress_line_parses_into_its_figures() -> None:
    lines = _plain_lines(
        {"name": "node-1.example.org", "state": "benching"},
        {
            "name": "node-1.example.org",
            "cycle": 2,
            "users": 7,
            "cycle_users": 10,
            "rps": 812.4,
            "ok": 90,
            "failures": 1,
            "errors": 3,
        },
    )
    assert parse_line(lines[0]) is None  # a state change, not figures
    figures = parse_line(lines[1])
    assert figures is not None
    assert (figures.cycle, figures.node, figures.users, figures.cycle_users) == (
        2,
        "node-1.example.org",
        7,
        10,
    )
    assert (figures.rps, figures.ok, figures.failures, figures.errors) == (812.0, 90, 1, 3)


def test_lines_that_are_not_progress_are_left_alone() -> None:
    for line in (
        "[   3.0s] bench",
        "[   3.1s] node1: warning: cycle #1 users 2/2 looks odd",
        "fake progress 1",
        "Error: node1: cycle #x users 1/2",
        "",
    ):
        assert parse_line(line) is None, line


def test_reader_keeps_the_latest_line_per_cycle_and_node_across_partial_writes(
    tmp_path: Path,
) -> None:
    console = tmp_path / "console.log"
    console.write_bytes(
        b"[   1.0s] n2: cycle #0 users 1/2, 10 req/s, 1 ok, 0 failures, 0 errors\n"
        b"[   1.0s] n1: cycle #0 users 2/2, 20 req/s, 4 ok, 0 failures, 0 errors\n"
        b"[   2.0s] n1: cycle #0 users 2/2, 25 req/s, 9 ok, 1 fail"
    )
    reader = FiguresReader(console)
    assert reader.update() is True
    assert [(r["node"], r["rps"]) for r in reader.rows()] == [("n1", 20.0), ("n2", 10.0)]
    assert reader.update() is False  # nothing new
    with open(console, "ab") as f:
        f.write(b"ures, 2 errors\n[   3.0s] n1: cycle #1 users 4/4, 40 req/s\n")
    assert reader.update() is True
    rows = reader.rows()
    assert [(r["cycle"], r["node"], r["rps"], r["errors"]) for r in rows] == [
        (0, "n1", 25.0, 2),
        (0, "n2", 10.0, 0),
        (1, "n1", 40.0, None),
    ]
    assert job_figures(console) == rows


def test_no_console_yet_means_no_figures(tmp_path: Path) -> None:
    assert job_figures(tmp_path / "missing.log") == []


def test_totals_sum_each_cycle_that_several_nodes_ran() -> None:
    def row(cycle: int, node: str, rps: float | None, errors: int | None) -> dict:
        return {
            "cycle": cycle,
            "node": node,
            "users": 5,
            "cycle_users": 5,
            "rps": rps,
            "ok": 10,
            "failures": 0,
            "errors": errors,
            "elapsed": 1.0,
        }

    rows = [row(0, "a", 10.0, 1), row(0, "b", 12.5, None), row(1, "a", 30.0, 0)]
    assert cycle_totals(rows) == [
        {
            "cycle": 0,
            "nodes": 2,
            "users": 10,
            "cycle_users": 10,
            "rps": 22.5,
            "ok": 20,
            "failures": 0,
            "errors": 1,
        }
    ]  # cycle 1: one node, nothing to sum


def test_the_live_chart_sums_each_cycles_nodes_at_each_instant(tmp_path: Path) -> None:
    """The live chart is the report's requests/s over time: one line per cycle, each point
    the sum of the nodes' latest figures when a node reported."""
    console = tmp_path / "console.log"
    console.write_bytes(
        b"[   1.0s] n1: cycle #0 users 2/2, 20 req/s\n"
        b"[   1.0s] n2: cycle #0 users 3/3, 30 req/s\n"
        b"[   2.0s] n1: cycle #0 users 2/2, 25 req/s\n"
        b"[   3.0s] n2: cycle #1 users 6/6, 70 req/s\n"
        b"[   3.5s] bench: not a progress line\n"
    )
    view = job_view(console)
    chart = view["charts"]["live_rps"]
    assert [s["label"] for s in chart["series"]] == ["5 CUs", "6 CUs"]
    assert chart["x"] == [1.0, 2.0, 3.0]
    assert chart["series"][0]["y"] == [50.0, 55.0, None]  # n2's 30 still counts at 2.0 s
    assert chart["series"][1]["y"] == [None, None, 70.0]
    assert chart["xlabel"] == "time since the run started (s)"
    assert view["rows"] == job_figures(console) and view["totals"][0]["rps"] == 55.0


def test_the_live_chart_stays_bounded(tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    lines = [f"[{t:6.1f}s] n1: cycle #{t // 1000} users 5/5, {t % 97} req/s\n" for t in range(4000)]
    console.write_text("".join(lines))
    chart = job_view(console)["charts"]["live_rps"]
    assert len(chart["x"]) <= MAX_POINTS
    assert chart["x"][-1] == 3999.0  # the latest point is kept
    assert len(chart["series"]) == 4


def test_a_progress_line_with_quantiles_parses_into_them() -> None:
    """The plain view's line ends with the node's p50/p95/p99 (the bench's own estimate
    over its last 10 s), which the service parses back in ms."""
    lines = _plain_lines(
        {
            "name": "n1",
            "cycle": 0,
            "users": 3,
            "cycle_users": 3,
            "rps": 50.0,
            "ok": 9,
            "failures": 0,
            "errors": 1,
            "p50": 0.0042,
            "p95": 0.0312,
            "p99": 0.25,
        },
    )
    assert lines[0].endswith("1 errors, p50 4.2 ms  p95 31 ms  p99 250 ms")
    figures = parse_line(lines[0])
    assert figures is not None
    assert (figures.p50, figures.p95, figures.p99, figures.errors) == (4.2, 31.0, 250.0, 1)
    assert parse_line(lines[0].replace("p95 31 ms", "p95 many ms")) is None


def test_the_live_percentiles_and_users_charts(tmp_path: Path) -> None:
    """P50/P95/P99 over time are each the slowest node's, cycles shaded; the users are
    the sum of the cycle's nodes', the failed tests the run's so far."""
    console = tmp_path / "console.log"
    tail = "p50 4.0 ms  p95 {} ms  p99 90 ms"
    console.write_text(
        f"[   1.0s] n1: cycle #0 users 1/2, 10 req/s, 5 ok, 0 failures, 1 errors, {tail.format(30)}\n"
        f"[   1.0s] n2: cycle #0 users 2/2, 20 req/s, 5 ok, 1 failures, 0 errors, {tail.format(50)}\n"
        f"[   2.0s] n1: cycle #0 users 2/2, 10 req/s, 9 ok, 0 failures, 2 errors, {tail.format(40)}\n"
        "[   3.0s] n1: cycle #1 users 4/4, 40 req/s, 1 ok, 0 failures, 0 errors\n"
    )
    charts = job_view(console)["charts"]
    percentiles = charts["live_percentiles"]
    assert percentiles["x"] == [1.0, 2.0, 3.0]
    series = {s["label"]: s["y"] for s in percentiles["series"]}
    assert list(series) == ["P50 (median)", "P95", "P99"]
    assert series["P95"] == [50.0, 50.0, None]  # n2's 50 ms is still its latest at 2 s
    assert series["P50 (median)"] == [4.0, 4.0, None]  # no quantiles on cycle 1's line
    assert percentiles["bands"] == [[1.0, 2.0, "4 CUs"], [3.0, 3.0, "4 CUs"]]
    assert percentiles["xlabel"] == "time since the run started (s)"
    users = charts["live_users"]
    series = {s["label"]: s["y"] for s in users["series"]}
    assert series["CUs"] == [3.0, 4.0, 4.0]
    assert series["failures"] == [1.0, 1.0, 1.0]
    assert series["errors"] == [1.0, 2.0, 2.0]  # n1's 1 then 2: its latest line counts
    assert users["bands"] == percentiles["bands"]


def test_no_quantiles_no_percentiles_chart(tmp_path: Path) -> None:
    """A bench that prints no quantiles (an older one) gets no percentiles chart."""
    console = tmp_path / "console.log"
    console.write_text("[   1.0s] n1: cycle #0 users 2/2, 20 req/s, 2 ok, 0 failures, 0 errors\n")
    charts = job_view(console)["charts"]
    assert charts["live_percentiles"]["series"] == []
    assert charts["live_rps"]["series"][0]["y"] == [20.0]


def test_a_run_of_many_cycles_keeps_each_event_small(tmp_path: Path) -> None:
    """The requests/s chart has a y per cycle at each point: the timeline is halved so
    that the values stay within MAX_CELLS, and an SSE event within a few hundred kB,
    with the points spread evenly over the run."""
    console = tmp_path / "console.log"
    tail = "5 ok, 0 failures, 0 errors, p50 4.0 ms  p95 31 ms  p99 90 ms"
    console.write_text(
        "".join(
            f"[{t:6.1f}s] n{n}: cycle #{t // 60} users 5/5, {t % 97} req/s, {tail}\n"
            for t in range(3000)
            for n in range(4)
        )
    )
    view = job_view(console)
    chart = view["charts"]["live_rps"]
    assert len(chart["series"]) == 50
    # as many points for the first cycles as for the last ones: halved evenly
    points = [sum(y is not None for y in line["y"]) for line in chart["series"]]
    assert min(points) >= 5 and max(points) <= 2 * min(points)
    assert len(chart["x"]) * (1 + len(chart["series"])) <= MAX_CELLS
    assert len(json.dumps(view)) < 300_000
