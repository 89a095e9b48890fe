"""The interactive charts' data (marteau.report.interactive): the specs hold the numbers
the PNG charts and the tables show, the JSON cannot close its <script> element, the
vendored uPlot files are the pinned ones. The charts in a browser: test_report_browser.py."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from marteau.report import interactive, monitor_charts, time_charts
from marteau.report.command import report_command
from marteau.results import load
from marteau.results.records import RESPONSE_FIELDS, numpy_dtype

DATA = Path(__file__).parent / "data" / "report"
HOSTILE = "</script><script>alert(1)</script><!-- \u2028 & 'x'"


def test_script_json_cannot_close_its_element_and_reads_back_unchanged() -> None:
    text = interactive.script_json({"title": HOSTILE, "values": [1.5, None]})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"title": HOSTILE, "values": [1.5, None]}


def test_the_vendored_library_is_the_pinned_one() -> None:
    """The files `make vendor-js` wrote from the npm package, unchanged since (uPlot.sha256)."""
    static = Path(interactive.STATIC)
    lines = (static / "uPlot.sha256").read_text().splitlines()
    assert len(lines) == 3
    for line in lines:
        digest, name = line.split()
        assert hashlib.sha256((static / name).read_bytes()).hexdigest() == digest, name
    makefile = (Path(__file__).parent.parent / "Makefile").read_text()
    version = re.search(r"^UPLOT_VERSION := (\S+)$", makefile, re.M)[1]
    assert f"(v{version})" in (static / "uPlot.iife.min.js").read_text()[:100]
    assert "MIT License" in (static / "uPlot.LICENSE").read_text()


def test_specs_hold_the_numbers_of_the_charts(tmp_path: Path) -> None:
    """Every drawn PNG of the report has its spec in the page, with the same figures."""
    target = tmp_path / "report"
    result = CliRunner().invoke(
        report_command,
        ["--html", "-r", str(target), str(DATA / "simple.xml")],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    html = (target / "index.html").read_text()
    block = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', html)
    specs = json.loads(block[1])
    pngs = {p.stem for p in target.glob("*.png")}
    assert set(specs) == pngs
    summary = json.loads((target / "summary.json").read_text())
    cycles = [c for c in summary["cycles"] if c["requests"]]
    rps = specs["requests_rps"]
    assert rps["xticks"] == [str(c["cvus"]) for c in cycles]
    assert rps["series"][0]["label"] == "RPS"
    assert rps["series"][0]["y"] == [float(f"{c['requests']['rps']:.4g}") for c in cycles]
    med = next(s for s in specs["requests"]["series"] if s["label"] == "MED")
    assert med["y"] == [float(f"{1000 * c['requests']['percentiles']['p50']:.4g}") for c in cycles]
    distribution = specs["distribution"]
    assert distribution["title"].endswith(f"({summary['overall']['requests']['count']:,} requests)")


def test_ten_million_requests_make_a_small_spec() -> None:
    """The wall-clock specs are bounded by the aggregation, not by the requests."""
    rng = np.random.default_rng(3)
    n = 10_000_000
    responses = np.zeros(n, dtype=numpy_dtype(RESPONSE_FIELDS))
    responses["time"] = 1.7e9 + np.sort(rng.uniform(0, 7200, n))  # two hours
    responses["duration"] = rng.lognormal(-3, 1, n)
    responses["cycle"] = (responses["time"] - 1.7e9) // 1440
    responses["cvus"] = 10 * (responses["cycle"] + 1)
    jobs = time_charts.time_jobs(time_charts.aggregate(responses))
    del responses
    text = interactive.script_json(interactive.specs(jobs))
    assert len(text) < 400_000
    specs = json.loads(text)
    assert len(specs["time_rps"]["x"]) <= time_charts.MAX_TIME_POINTS
    assert [s["label"] for s in specs["time_rps"]["series"]] == [
        f"{10 * (c + 1)} CUs" for c in range(5)
    ]


def test_monitor_charts_have_specs() -> None:
    """Each monitored host's chart (tests/data/report/monitor.xml) has its interactive form."""
    results = load(DATA / "monitor.xml")
    hosts = monitor_charts.monitor_hosts(results.monitors, results.config)
    jobs = [job for host in hosts for job in host["jobs"]]
    specs = interactive.specs(jobs)
    assert jobs and set(specs) == {job.name for job in jobs}
    for job in jobs:
        labels = [label for _unit, lines in job.kwargs["panels"] for label, _y in lines]
        assert [s["label"] for s in specs[job.name]["series"]] == labels
