"""index.rst: FunkLoad's table text, byte for byte, and what --diff/--trend parse."""

from __future__ import annotations

from pathlib import Path

import pytest

from marteau.report.rst import render_rst
from marteau.report.stats import compute
from marteau.results import load
from tests.support.records import make_rs

DATA = Path(__file__).parent / "data" / "report"
DECO = "=================="


def row(*cells: str, indent: int = 0) -> str:
    """A FunkLoad table row built independently: indent, then ' ' + each cell."""
    return " " * indent + "".join(" " + c for c in cells)


@pytest.fixture(scope="module")
def text() -> str:
    return render_rst(compute(load(DATA / "simple.xml")))


def lines_after(text: str, title: str) -> list[str]:
    lines = text.split("\n")
    return lines[lines.index(title) :]


def table_rows(text: str, title: str) -> list[str]:
    """What FunkLoad's --diff reads: rows between the 2nd and 3rd ' =====' after the title."""
    delim, rows = 0, []
    for line in lines_after(text, title):
        if line.startswith(" ====="):
            delim += 1
            continue
        if delim == 3:
            break
        if delim == 2:
            rows.append(line)
    return rows


def test_page_stats_table_exact(text: str) -> None:
    lines = lines_after(text, "Page stats")
    assert lines[1] == "-" * len("Page stats")
    deco = " " + " ".join([DECO] * 15)
    header = row(
        *(
            f"{h:>18}"
            for h in [
                "CUs",
                "Apdex*",
                "Rating",
                "SPPS",
                "maxSPPS",
                "TOTAL",
                "SUCCESS",
                "ERROR",
                "MIN",
                "AVG",
                "MAX",
                "P10",
                "MED",
                "P90",
                "P95",
            ]
        )
    )
    start = lines.index(deco)
    assert lines[start : start + 3] == [deco, header, deco]
    cycle0 = row(
        "                 2",
        "             0.750",
        "              FAIR",
        "             0.400",
        "             2.000",
        "                 6",
        "                 4",
        "           33.33%",
        "             0.010",
        "             1.332",
        "             5.990",
        "             0.010",
        "             1.490",
        "             5.990",
        "             5.990",
    )
    cycle1 = row(
        "                 4",
        "             1.000",
        "         Excellent",
        "             0.200",
        "             2.000",
        "                 2",
        "                 2",
        "            0.00%",
        "             0.100",
        "             0.150",
        "             0.200",
        "             0.100",
        "             0.200",
        "             0.200",
        "             0.200",
    )
    assert lines[start + 3 : start + 8] == [cycle0, cycle1, deco, "", " \\* Apdex |APDEXT|"]
    assert table_rows(text, "Page stats") == [cycle0, cycle1]


def test_request_and_test_tables(text: str) -> None:
    rows = table_rows(text, "Request stats")
    assert rows[0] == row(
        "                 2",
        "             0.778",
        "              FAIR",
        "             0.900",
        "             4.000",
        "                 9",
        "                 7",
        "           22.22%",
        "             0.010",
        "             1.777",
        "             6.000",
        "             0.010",
        "             0.400",
        "             6.000",
        "             6.000",
    )
    header = lines_after(text, "Request stats")[6]
    assert header.split() == [
        "CUs",
        "Apdex*",
        "Rating*",
        "RPS",
        "maxRPS",
        "TOTAL",
        "SUCCESS",
        "ERROR",
        "MIN",
        "AVG",
        "MAX",
        "P10",
        "MED",
        "P90",
        "P95",
    ]
    # the test table: only cycle 0 has finished tests
    assert table_rows(text, "Test stats") == [
        row(
            "                 2",
            "             0.100",
            "                 2",
            "                 1",
            "           50.00%",
        )
    ]
    test_lines = lines_after(text, "Test stats")
    decos = [i for i, line in enumerate(test_lines) if line == " " + " ".join([DECO] * 5)]
    footer_at = decos[2]
    assert test_lines[footer_at + 1 : footer_at + 3] == ["", ""]  # no Apdex footnote


def test_page_detail_table_indented_by_4(text: str) -> None:
    lines = lines_after(text, "PAGE 001: /early.png")
    assert lines[1] == "~" * len("PAGE 001: /early.png")
    assert "* Req: 001, image, url ``/early.png``" in lines
    deco = "     " + " ".join([DECO] * 13)
    assert deco in lines
    expected = row(
        "                 2",
        "             1.000",
        "         Excellent",
        "                 1",
        "                 1",
        "            0.00%",
        "             0.100",
        "             0.100",
        "             0.100",
        "             0.100",
        "             0.100",
        "             0.100",
        "             0.100",
        indent=4,
    )
    assert expected in lines
    assert "     \\* Apdex |APDEXT|" in lines


def test_configuration_lines_trend_parses(text: str) -> None:
    lines = text.split("\n")
    assert "* Launched: 2015-06-01 10:00:00" in lines
    assert "* Cycles of concurrent users: [2, 4, 6]" in lines
    assert "* From: alpha" in lines
    assert "* Test: ``test_Simple.py Simple.test_simple``" in lines
    assert "* build: 42" in lines
    assert ".. |APDEXT| replace:: \\ :sub:`1.5`" in lines
    # FunkLoad's trend: value[1:-2] of the line with its newline, last item = max CUs
    value = next(line for line in lines if line.startswith("* Cycles of concurrent users: "))
    assert int((value[len("* Cycles of concurrent users: ") :] + "\n")[1:-2].split(",")[-1]) == 6


def test_content_slowest_errors_and_definitions(text: str) -> None:
    lines = text.split("\n")
    assert "The test ``Simple.test_simple`` contains: " in lines
    assert "* 4 page(s)" in lines and "* 1 redirect(s)" in lines
    assert "* 2 tests, 1 error(s)" in lines
    assert "* 8 pages, 2 error(s)" in lines
    assert "* 11 requests, 2 error(s)" in lines
    assert "The 5 slowest average response time during the best cycle with **4** CUs:" in lines
    assert (
        "* In page 001, Apdex rating: Excellent, avg response time: 0.15s, get: ``/index.html``"
        in lines
    )
    assert "* 1 time(s), code: 404::" in lines
    assert "    No traceback." in lines
    assert "    socket.timeout: timed out" in lines
    assert "Definitions" in lines
    assert "P99 and P99.9" in text
    no_defs = render_rst(
        compute(load(DATA / "simple.xml")), skip_definitions=True, with_percentiles=False
    )
    assert "Definitions" not in no_defs.split("\n")
    assert lines_after(no_defs, "Page stats")[7].split()[-1] == "MAX"


def test_sorry_sentences_when_nothing_finished() -> None:
    rs = make_rs(tests=[{"cycle": 0, "cvus": 3, "connection_duration": 1.0}])
    text = render_rst(compute(rs))
    lines = text.split("\n")
    assert "Sorry no page have finished during a cycle, the cycle duration is too short." in lines
    assert (
        "Sorry no response have finished during a cycle, the cycle duration is too short." in lines
    )
    no_tests = render_rst(compute(make_rs([{"time": 1.0, "duration": 0.5}])))
    assert (
        "Sorry no test have finished during a cycle, the cycle duration is too short." in no_tests
    )
    assert "Bench content" not in no_tests.split("\n")  # representative cycle has no test


def test_no_cycle() -> None:
    assert render_rst(compute(make_rs())).endswith("No cycle found")


def test_apdex_t_and_charts() -> None:
    text = render_rst(compute(load(DATA / "simple.xml"), apdex_t=0.25), with_charts=True)
    assert (
        ".. |APDEXT| replace:: \\ :sub:`0.2`" in text
        or ".. |APDEXT| replace:: \\ :sub:`0.3`" in text
    )
    assert " .. image:: pages_spps.png" in text.split("\n")
    assert "     .. image:: request_001.002.png" in text.split("\n")
