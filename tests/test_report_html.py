"""index.html: FunkLoad's figures in the tables (in ms), escaping, options, charts, offline."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from marteau.report.command import report_command
from tests.support.html import tables_of

DATA = Path(__file__).parent / "data" / "report"
SIMPLE = DATA / "simple.xml"
WIDE = ("time_rps", "percentiles_time", "distribution")
MALICIOUS = "<script>window.__pwned = 1; document.title = 'pwned'</script>"


def words(text: str) -> list[str]:
    return text.split()


def build(tmp_path: Path, *args: str, source: Path = SIMPLE) -> tuple[Path, str]:
    target = tmp_path / "report"
    result = CliRunner().invoke(
        report_command, ["--html", "-r", str(target), *args, str(source)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return target, (target / "index.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return build(tmp_path_factory.mktemp("html"))


def test_funkload_tables_have_funkloads_figures_in_milliseconds(
    report: tuple[Path, str],
) -> None:
    """FunkLoad's figures, times in ms (index.rst keeps FunkLoad's seconds, see test_report_rst)."""
    _, html = report
    tables = tables_of(html)
    assert tables["Test stats"] == [
        ["CUs", "STPS", "TOTAL", "SUCCESS", "ERROR"],
        ["2", "0.100", "2", "1", "50.00%"],
    ]
    pages = tables["Page stats (times in ms)"]
    assert pages[0] == (
        words("CUs Apdex* Rating SPPS maxSPPS TOTAL SUCCESS ERROR MIN AVG MAX P10 MED P90 P95")
    )
    # the hand-computed rows of tests/test_report_rst.py
    assert pages[1] == (
        words("2 0.750 FAIR 0.400 2.000 6 4 33.33% 10.0 1,332 5,990 10.0 1,490 5,990 5,990")
    )
    assert pages[2] == (
        words("4 1.000 Excellent 0.200 2.000 2 2 0.00% 100 150 200 100 200 200 200")
    )
    requests = tables["Request stats (times in ms)"]
    assert requests[0][:5] == ["CUs", "Apdex*", "Rating*", "RPS", "maxRPS"]
    assert requests[1] == (
        words("2 0.778 FAIR 0.900 4.000 9 7 22.22% 10.0 1,777 6,000 10.0 400 6,000 6,000")
    )
    # Marteau's tails are a separate table: FunkLoad's columns stay as they are
    assert "P99" not in pages[0] and "P99" not in requests[0]
    tails = tables["Requests: response time tails (ms)"]
    assert tails[0] == ["CUs", "P95", "P99", "P99.9", "MAX"]
    assert tails[1] == ["2", "6,000", "6,000", "6,000", "6,000"]


def test_sections_and_content(report: tuple[Path, str]) -> None:
    _, html = report
    for section in (
        "configuration",
        "content",
        "test-stats",
        "page-stats",
        "request-stats",
        "response-times",
        "slowest",
        "page-detail",
        "errors",
        "definitions",
    ):
        assert f'<section id="{section}"' in html, section
    assert "PAGE 001: /early.png" in html  # FunkLoad's page detail title: url without description
    assert "8 pages, 2 error(s)" in html and "11 requests, 2 error(s)" in html
    assert "socket.timeout: timed out" in html  # the Error's traceback
    # FunkLoad's Bench metadata, and the inputs
    assert "<dt>build</dt><dd>42</dd>" in html
    assert "tests/data/report/simple.xml" in html
    assert "Sleeptime between requests" in html


def test_charts_written_and_inlined(report: tuple[Path, str]) -> None:
    directory, html = report
    names = [
        "tests",
        "pages_spps",
        "pages",
        "requests_rps",
        "requests",
        "time_rps",
        "percentiles_time",
        "distribution",
        "request_001.002",
        "request_004.001",
    ]
    for name in names:
        png = directory / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        # the page holds the very file, as a data: URI: it loads nothing else
        inline = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
        assert f'<figure class="chart{" wide" if name in WIDE else ""}" id="chart-{name}">' in html
        assert f'src="{inline}"' in html, name
    assert not re.search(r'(?:src|href)="[^"#]*\.png"', html)
    # index.rst links the same names (FunkLoad's .. image:: lines)
    assert ".. image:: pages_spps.png" in (directory / "index.rst").read_text()


def test_offline_only_its_own_scripts_no_external_resource(report: tuple[Path, str]) -> None:
    _, html = report
    # the chart data (not run) and two inline scripts: uPlot and Marteau's, nothing loaded
    assert html.count("<script") == 3
    assert '<script type="application/json" id="chart-data">' in html
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert len(scripts) == 2 and "uPlot" in scripts[0] and "MarteauCharts" in scripts[1]
    # the CSP allows those two, by their hashes, and no other script
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html)[1]
    script_src = re.search(r"script-src ([^;]*);", csp)[1].split()
    assert script_src == [
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in scripts
    ]
    assert "default-src 'none'" in csp and "connect-src" not in csp
    # images are data: URIs and the CSP allows no other; links are anchors
    assert "img-src data:;" in csp
    for url in re.findall(r'src="([^"]*)"', html):
        assert url.startswith("data:image/png;base64,"), url[:40]
    for url in re.findall(r'href="([^"]*)"', html):
        assert url.startswith("#"), url
    assert "@import" not in html and "url(" not in html


def test_malicious_body_is_escaped(tmp_path: Path) -> None:
    xml = SIMPLE.read_text().replace("<html>Not <b>found</b></html>", MALICIOUS)
    xml = xml.replace('description="Search"', 'description="Search &lt;b onmouseover=x&gt;"')
    source = tmp_path / "evil.xml"
    source.write_text(xml)
    _, html = build(tmp_path, source=source)
    assert MALICIOUS not in html
    assert (
        "&lt;script&gt;window.__pwned = 1; document.title = &#39;pwned&#39;&lt;/script&gt;" in html
    )
    assert "<b onmouseover" not in html and "&lt;b onmouseover=x&gt;" in html
    # the sample body section is there, with its url
    assert "Sample body of a 404 response" in html


def test_skip_definitions_no_percentiles_and_css(tmp_path: Path) -> None:
    css = tmp_path / "house.css"
    css.write_text("body { color: #123456; }\n")
    directory, html = build(
        tmp_path, "--skip-definitions", "--no-percentiles", "-x", str(css), "-T", "2"
    )
    assert 'id="definitions"' not in html
    pages = tables_of(html)["Page stats (times in ms)"]
    assert pages[0] == words("CUs Apdex* Rating SPPS maxSPPS TOTAL SUCCESS ERROR MIN AVG MAX")
    # with T = 2 the cycle 0 page Apdex is 0.875 (see test_report_command)
    assert pages[1][:3] == ["2", "0.875", "Good"]
    assert (directory / "house.css").read_text() == css.read_text()
    assert '<link rel="stylesheet" href="house.css">' in html
    assert "Apdex T = 2.0 s" in html


def test_warnings_and_nodes(tmp_path: Path) -> None:
    target = tmp_path / "merged"
    result = CliRunner().invoke(
        report_command,
        [
            "-H",
            "-r",
            str(target),
            str(SIMPLE),
            str(DATA / "node2.xml"),
            str(DATA / "other_duration.xml"),
        ],
    )
    assert result.exit_code == 0, result.output
    html = (target / "index.html").read_text()
    assert 'id="warnings"' in html and "skipped: cycle duration 20 differs from 10" in html
    assert 'id="nodes"' in html
    assert '<th scope="rowgroup" rowspan="' in html and ">alpha</th>" in html
    assert ">beta</th>" in html


def test_render_page_from_summary_only() -> None:
    """The page needs only the summary data (e.g. re-rendered from summary.json)."""
    from marteau.report import stats, summary
    from marteau.report.html import render_page
    from marteau.results import load

    data = summary.build_summary(stats.compute(load(SIMPLE)))
    html = render_page(data, {})
    assert "<img" not in html  # no chart given, none linked
    assert "<script" not in html and "script-src 'none'" in html  # nor any chart script
    assert tables_of(html)["Page stats (times in ms)"][1][1] == "0.750"


def test_time_aggregation_percentiles_and_counts() -> None:
    """The wall-clock charts' numbers: exact counts, percentiles within a bin (±1.2 %)."""
    import numpy as np

    from marteau.report.time_charts import aggregate
    from marteau.results.records import RESPONSE_FIELDS, numpy_dtype

    rng = np.random.default_rng(3)
    n = 200_000
    r = np.zeros(n, dtype=numpy_dtype(RESPONSE_FIELDS))
    r["time"] = 1_700_000_000.25 + np.sort(rng.uniform(0, 120, n))
    r["duration"] = rng.lognormal(-2.5, 1.0, n)
    r["cycle"] = (r["time"] - r["time"][0] >= 60).astype(int)
    r["cvus"] = np.where(r["cycle"] == 0, 10, 20)
    series = aggregate(r)
    assert series.bucket == 1 and series.cycles == [0, 1] and series.cvus == [10, 20]
    seconds = (np.floor(r["time"]) - series.start).astype(int)
    assert series.counts.sum() == n
    assert np.array_equal(series.counts.sum(axis=0), np.bincount(seconds))
    for p in (50, 95, 99):
        values = series.percentile(p)
        for second in (0, 30, 90, 119):
            durations = np.sort(r["duration"][seconds == second])
            exact = durations[int(p / 100.0 * durations.size)]
            assert values[second] == pytest.approx(exact, rel=0.012), (p, second)
    edges, counts = series.distribution()
    assert counts.sum() == n and edges.size == counts.size + 1
    # a long bench is cut into wider buckets: at most MAX_TIME_POINTS points
    r["time"] = 1_700_000_000 + np.sort(rng.uniform(0, 86_400, n))
    wide = aggregate(r)
    assert wide.bucket == 58 and wide.counts.shape[1] <= 1500 and wide.counts.sum() == n


def test_thresholds_verdict_and_table(tmp_path: Path) -> None:
    rules = tmp_path / "thresholds.yml"
    rules.write_text("thresholds:\n  - error_rate < 20%\n  - p95 < 0.5\n")
    target = tmp_path / "gated"
    result = CliRunner().invoke(
        report_command, ["-H", "-r", str(target), "--thresholds", str(rules), str(SIMPLE)]
    )
    assert result.exit_code == 1  # p95 is 6 s
    html = (target / "index.html").read_text()
    assert 'class="verdict fail"' in html and "1 of 2 threshold(s) failed." in html
    assert 'id="thresholds"' in html
    rows = re.findall(r'<tr class="(pass|fail)">\s*<td class="badge">(PASS|FAIL)</td>', html)
    assert rows == [("pass", "PASS"), ("fail", "FAIL")]
    assert "<code>p95 &lt; 0.5</code>" in html


def test_chart_workers_and_failure(tmp_path: Path) -> None:
    """Charts drawn by worker processes; a chart that cannot be drawn is a MarteauError."""
    from marteau.errors import MarteauError
    from marteau.report import stats
    from marteau.report.chart_pool import Job, Rendering
    from marteau.report.charts import candle_chart, plan
    from marteau.results import load

    rs = load(SIMPLE)
    jobs = plan(stats.compute(rs), rs.responses)
    names = Rendering(str(tmp_path), jobs, workers=2).wait()
    assert sorted(names) == sorted(job.name for job in jobs)
    assert all((tmp_path / f).read_bytes()[:4] == b"\x89PNG" for f in names.values())
    broken = jobs[:3] + [Job("broken", candle_chart, {"title": "x", "candles": [{}]})]
    with pytest.raises(MarteauError, match="cannot draw the charts"):
        Rendering(str(tmp_path), broken, workers=2).wait()


def test_header_keeps_the_two_descriptions_apart(report: tuple[Path, str]) -> None:
    """The class's description and the test's are two lines, not one run-on sentence."""
    _, html = report
    header = html.split("<header", 1)[1].split("</header>", 1)[0]
    assert (
        '<p class="abstract" id="class-description">Simply testing a default static page.</p>'
        in (header)
    )
    assert (
        '<p class="abstract" id="test-description"><code>Simple.test_simple</code>: '
        "The simple test.</p>"
    ) in header
    assert "static page. The simple test." not in html
