"""--org: FunkLoad's report as org-mode, with the ReST report's figures."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from marteau.report.command import report_command
from marteau.report.org import render_org
from marteau.report.rst import render_rst
from marteau.report.stats import compute
from marteau.results import load

DATA = Path(__file__).parent / "data" / "report"
SIMPLE = str(DATA / "simple.xml")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(report_command, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def org() -> str:
    code, out, err = run("--org", SIMPLE)
    assert code == 0, err
    return out


def rst_rows(text: str, title: str) -> list[list[str]]:
    """The cells of the rows of the first table after `title` in the ReST report."""
    lines = text.split("\n")
    delim, rows = 0, []
    for line in lines[lines.index(title) :]:
        if line.startswith(" ====="):
            delim += 1
            continue
        if delim == 3:
            break
        if delim == 2:
            rows.append(line.split())
    return rows


def org_rows(text: str, heading: str) -> list[list[str]]:
    """The cells of the body rows of the first table under `heading`."""
    lines = text.split("\n")
    rows, seen_rule = [], False
    for line in lines[lines.index(heading) + 1 :]:
        if line.startswith("* "):
            break
        if line == "|-":
            seen_rule = True
        elif line.startswith("|") and seen_rule:
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif seen_rule and not line.startswith("|"):
            break
    return rows


def test_header_lines(org: str) -> None:
    lines = org.split("\n")
    assert lines[0] == "#+TITLE: FunkLoad bench report"
    assert lines[1] == "#+DATE: 2015-06-01 10:00:00"
    assert any(line.startswith("#+LATEX_HEADER:") for line in lines)
    assert "Bench result of =Simple.test_simple=:" in org


def test_headings(org: str) -> None:
    lines = org.split("\n")
    for heading in (
        "* Bench configuration",
        "* Bench content",
        "* Test stats",
        "* Page stats",
        "* Request stats",
        "* Slowest requests",
        "* Page detail stats",
        "* Failures and Errors",
        "* Definitions",
    ):
        assert heading in lines
    assert "** PAGE 001: /early.png" in lines
    assert "** Failures" in lines and "** Errors" in lines
    # bullets are '- ', never '* ' (a heading in org)
    assert "- Cycles of concurrent users: [2, 4, 6]" in lines
    assert "[[http://funkload.nuxeo.org/][FunkLoad]]" in org


def test_tables_have_the_rest_numbers(org: str) -> None:
    rst = render_rst(compute(load(SIMPLE)))
    lines = org.split("\n")
    header = lines.index(
        "| CUs | Apdex* | Rating | SPPS | maxSPPS | TOTAL | SUCCESS | ERROR | MIN | AVG | MAX"
        " | P10 | MED | P90 | P95 |"
    )
    assert lines[header + 1] == "|-"
    assert lines[header + 2] == (
        "| 2 | 0.750 | FAIR | 0.400 | 2.000 | 6 | 4 | 33.33% | 0.010 | 1.332 | 5.990"
        " | 0.010 | 1.490 | 5.990 | 5.990 |"
    )
    for title in ("Test stats", "Page stats", "Request stats"):
        rows = org_rows(org, f"* {title}")
        assert rows and rows == rst_rows(rst, title)
    assert "Apdex* : Apdex T = 1.5" in lines


def test_no_percentiles_and_literal_blocks(org: str) -> None:
    text = render_org(compute(load(SIMPLE)), with_percentiles=False)
    assert "| CUs | STPS | TOTAL | SUCCESS | ERROR |" in text
    assert "| ERROR | MIN | AVG | MAX |\n|-" in text
    assert "| ERROR | MIN | AVG | MAX | P10 |" not in text
    assert "#+BEGIN_EXAMPLE\nNo traceback.\n#+END_EXAMPLE" in org
    assert "socket.timeout: timed out" in org


def test_charts_referenced_as_latex_paths() -> None:
    text = render_org(compute(load(SIMPLE)), with_charts=True)
    assert "\\includegraphics[scale=0.5]{{./pages_spps}.png}" in text
    assert "{{./request_001.002}.png}" in text


def test_html_writes_index_org(tmp_path: Path) -> None:
    code, out, err = run("--org", "-H", "-r", str(tmp_path / "r"), SIMPLE)
    assert code == 0, err
    assert (tmp_path / "r" / "index.org").read_text().startswith("#+TITLE: ")
    assert (tmp_path / "r" / "index.rst").is_file()
