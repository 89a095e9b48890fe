"""The HTML report in a real headless Chromium (Debian's), loaded from disk.

Builds a report from generated bench results (two nodes' compact files,
with failures whose body holds a script), opens ``index.html`` as a
``file://`` URL and checks: no console error, no request but the page
itself (the charts are inline), tables and charts visible, the script of
the failure body not run, no sideways scrolling of the page on a phone.
The interactive charts: hovering a point shows the value of the table,
a click on a legend entry hides its series, a drag zooms a time range, the
page draws them with the network off, and a description holding
``</script><script>alert(1)`` stays text.
With MARTEAU_SCREENSHOTS=1 it saves ``docs/report.png`` and
``docs/report-phone.png`` (the README's screenshots).  Then a diff report
of two such benches loads as cleanly.
"""

from __future__ import annotations

import datetime
import os
import re
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from marteau.report.command import report_command
from marteau.results.compact import RESPONSES, SAMPLES, TESTS, CompactWriter
from marteau.results.records import RESPONSE_FIELDS, SAMPLE_FIELDS, TEST_FIELDS, numpy_dtype
from tests.screenshots import shoot

EVIL_BODY = (
    "<html><body><h1>Internal Server Error</h1>"
    "<script>window.__pwned = 1; document.title = 'pwned';</script>"
    '<img src=x onerror="window.__pwned = 2"></body></html>'
)
# (step, number, type, url, description, typical seconds)
SCRIPT = (
    (1, 1, "get", "/", "Home page", 0.040),
    (1, 2, "image", "/static/logo.png", "", 0.004),
    (1, 3, "link", "/static/site.css", "", 0.003),
    (2, 1, "post", "/login", "Log in", 0.090),
    (2, 2, "get", "/account", "Redirect to the account", 0.030),
    (3, 1, "get", "/search?q=hammer&page=1", "Search", 0.150),
    (4, 1, "post", "/cart", "Add to cart</script><script>alert(1)</script>", 0.120),
)
CYCLES = (5, 10, 20, 40)
DURATION = 30


def write_node(path: Path, node: int, slower: float = 1.0, day: int = 27) -> None:
    """A node's compact result file: 4 cycles, ~4,000 tests, failures with a script body."""
    rng = np.random.default_rng(node + int(slower * 10))
    strings = [""]
    ids = {}
    for _step, _number, kind, url, description, _t in SCRIPT:
        for text in (kind, url, description):
            if text and text not in ids:
                ids[text] = len(strings)
                strings.append(text)
    start = datetime.datetime(2026, 11, day, 3, 0, 0)
    config = {
        "id": "test_shop",
        "class": "Shop",
        "method": "test_shop",
        "module": "test_Shop",
        "class_title": "Shop",
        "class_description": "Browse, log in, search and buy.",
        "description": "The shop's main path.",
        "cycles": str(list(CYCLES)),
        "duration": str(DURATION),
        "sleep_time": "0.0",
        "sleep_time_min": "0.0",
        "sleep_time_max": "0.2",
        "startup_delay": "0.05",
        "server_url": "http://127.0.0.1:8080",
        "node": f"node{node + 1}",
        "label": "nightly",
        "marteau:time": start.isoformat(timespec="microseconds"),
        "meta:build": "1.4.2",
    }
    steps = len(SCRIPT)
    typical = np.array([s[5] for s in SCRIPT])
    with CompactWriter(path, config) as writer:
        writer.strings(strings[1:])
        writer.details([{"headers": [["content-type", "text/html"]], "body": EVIL_BODY}])
        for cycle, users in enumerate(CYCLES):
            tests = 60 * users
            n = tests * steps
            t0 = start.timestamp() + cycle * (DURATION + 5)
            index = np.tile(np.arange(steps), tests)
            duration = typical[index] * (1 + 0.5 * cycle) * slower * rng.lognormal(0, 0.4, n)
            test_start = t0 + rng.uniform(0, DURATION - 2, tests)
            offsets = (
                np.cumsum(duration.reshape(tests, steps), axis=1) - duration.reshape(tests, steps)
            ).reshape(-1)
            r = np.zeros(n, dtype=numpy_dtype(RESPONSE_FIELDS))
            r["time"] = np.repeat(test_start, steps) + offsets
            r["duration"] = duration
            r["cycle"] = cycle
            r["cvus"] = users
            r["thread"] = np.repeat(np.arange(tests) % users, steps)
            r["step"] = np.array([s[0] for s in SCRIPT])[index]
            r["number"] = np.array([s[1] for s in SCRIPT])[index]
            r["type"] = np.array([ids[s[2]] for s in SCRIPT])[index]
            r["url"] = np.array([ids[s[3]] for s in SCRIPT])[index]
            r["description"] = np.array([ids.get(s[4], 0) for s in SCRIPT])[index]
            r["code"] = 200
            failed = (index == 5) & (rng.random(n) < 0.01 * (cycle + 1))
            r["code"][failed] = 500
            r["result"][failed] = 1
            r["detail"][failed] = 1
            r = r[np.argsort(r["time"] + r["duration"], kind="stable")]
            writer.records(RESPONSES, r.tobytes())
            t = np.zeros(tests, dtype=numpy_dtype(TEST_FIELDS))
            t["time"] = test_start
            t["duration"] = t["connection_duration"] = duration.reshape(tests, steps).sum(axis=1)
            t["cycle"], t["cvus"], t["thread"] = cycle, users, np.arange(tests) % users
            t["result"] = failed.reshape(tests, steps).any(axis=1)
            t["steps"], t["requests"], t["pages"], t["redirects"] = 4, steps, 4, 1
            t["images"], t["links"] = 1, 1
            writer.records(TESTS, t.tobytes())
            s = np.zeros(DURATION, dtype=numpy_dtype(SAMPLE_FIELDS))
            s["time"] = t0 + np.arange(DURATION)
            s["cpu_percent"] = 30 + 15 * cycle + 10 * node  # node2 overloaded in the last cycle
            s["users"] = users
            writer.records(SAMPLES, s.tobytes())


def build(root: Path, name: str, slower: float = 1.0, day: int = 27) -> Path:
    """Two nodes' results in `root` and their report `root/name`.

    The report is built from inside `root` with relative names, so the page
    (and its screenshot) does not change with the temporary directory.
    """
    paths = []
    for node in range(2):
        path = f"{name}-node{node + 1}.mrt"
        write_node(root / path, node, slower, day)
        paths.append(path)
    here = os.getcwd()
    os.chdir(root)
    try:
        result = CliRunner().invoke(
            report_command, ["--html", "-r", name, *paths], catch_exceptions=False
        )
    finally:
        os.chdir(here)
    assert result.exit_code == 0, result.output
    return root / name


def open_page(browser, path: Path, **context):  # type: ignore[no-untyped-def]
    """The page loaded, and its problems: errors and any request but the page itself."""
    page = browser.new_page(**context)
    problems: list[str] = []
    url = path.resolve().as_uri()
    page.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url} {r.failure}"))
    page.on("request", lambda r: None if r.url == url else problems.append(f"request: {r.url}"))
    page.goto(url, wait_until="load")
    return page, problems


def test_report_in_chromium(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    directory = build(tmp_path, "report")
    page, problems = open_page(
        browser, directory / "index.html", viewport={"width": 1280, "height": 900}
    )
    assert problems == []
    # FunkLoad's tables and Marteau's, visible and filled
    for caption in (
        "Test stats",
        "Page stats (times in ms)",
        "Request stats (times in ms)",
        "Requests: response time tails (ms)",
    ):
        named = page.locator("caption", has_text=re.compile(f"^{re.escape(caption)}$"))
        table = page.locator("table", has=named)
        assert table.is_visible(), caption
        assert table.locator("tbody tr").count() == len(CYCLES), caption
    assert page.locator("#nodes table").first.is_visible()
    assert "OVERLOADED" in page.locator("#nodes").inner_text()
    # every chart loaded (the PNG fallbacks, hidden) and drawn interactive; the main ones visible
    images = page.evaluate(
        "Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])"
    )
    assert len(images) >= 8 + len(SCRIPT)
    assert all(complete and width > 0 for _src, complete, width in images), images
    assert all(src.startswith("data:image/png;base64,") for src, _c, _w in images)
    assert page.evaluate("Object.keys(MarteauCharts.charts).length") == len(images)
    for name in ("pages_spps", "requests", "time_rps", "percentiles_time", "distribution"):
        assert page.locator(f"#chart-{name} .uplot canvas").is_visible(), name
        assert not page.locator(f"#chart-{name} img").is_visible(), name
    # the failure body is shown as text, and its script did not run
    sample = page.locator("details.sample").first
    sample.locator("summary").click()
    assert "<script>window.__pwned = 1;" in sample.locator("pre.body").inner_text()
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.title() != "pwned"
    assert problems == []
    # a tall viewport rather than full_page: the sticky navigation stays in place
    page.set_viewport_size({"width": 1280, "height": 2300})
    page.evaluate("window.scrollTo(0, 0)")
    # the pointer on the tests chart's 40-CUs point: the legend shows its values
    x, y = page.evaluate(
        """async () => {
          // after the resize the taller viewport caused has been drawn
          await new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)));
          const u = MarteauCharts.charts.tests;
          const r = u.over.getBoundingClientRect();
          return [r.left + u.valToPos(u.data[0][2], "x"), r.top + u.valToPos(u.data[1][2], "y0")];
        }"""
    )
    page.mouse.move(x, y)
    assert legend_values(page, "tests")[0] == "40"
    shoot(page, tmp_path, "report.png")
    page.close()

    phone, problems = open_page(
        browser,
        directory / "index.html",
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
    )
    # the page itself does not scroll sideways: wide tables and charts scroll in their box
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    caption = phone.locator("caption", has_text=re.compile(r"^Page stats \(times in ms\)$"))
    assert phone.locator("table", has=caption).is_visible()
    assert problems == []
    phone.set_viewport_size({"width": 390, "height": 1500})
    phone.locator("#page-stats").scroll_into_view_if_needed()
    phone.evaluate("window.scrollTo(0, document.getElementById('page-stats').offsetTop - 50)")
    shoot(phone, tmp_path, "report-phone.png")
    phone.close()


def test_diff_report_in_chromium(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ref = build(tmp_path, "ref")
    new = build(tmp_path, "new", slower=1.3, day=28)
    result = CliRunner().invoke(
        report_command, ["--diff", str(ref), str(new), "-o", str(tmp_path)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip())
    page, problems = open_page(browser, path, viewport={"width": 1280, "height": 900})
    assert problems == []
    assert page.locator("table.diff").first.is_visible()
    assert page.locator("td.delta.worse").count() > 0  # 30% slower
    images = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
    assert len(images) == 5 and all(images)
    # the links to the two reports resolve to their pages
    hrefs = page.evaluate("Array.from(document.querySelectorAll('#benches a')).map(a => a.href)")
    assert hrefs == [
        (ref / "index.html").resolve().as_uri(),
        (new / "index.html").resolve().as_uri(),
    ]
    page.close()


def chart_point(page, name: str, index: int, series: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Page coordinates of point `index` of `series` (1-based, as uPlot's) of chart `name`."""
    return tuple(
        page.evaluate(
            """([name, i, s]) => {
              const u = MarteauCharts.charts[name];
              u.root.scrollIntoView({block: "center"});
              const r = u.over.getBoundingClientRect();
              return [r.left + u.valToPos(u.data[0][i], "x"),
                      r.top + u.valToPos(u.data[s][i], u.series[s].scale)];
            }""",
            [name, index, series],
        )
    )


def legend_values(page, name: str) -> list[str]:  # type: ignore[no-untyped-def]
    return page.evaluate(
        "name => Array.from(MarteauCharts.charts[name].root"
        ".querySelectorAll('.u-legend .u-series .u-value')).map(v => v.textContent)",
        name,
    )


def canvas(page, name: str) -> str:  # type: ignore[no-untyped-def]
    return page.evaluate("name => MarteauCharts.charts[name].ctx.canvas.toDataURL()", name)


def test_interactive_charts_hover_toggle_zoom_offline(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    directory = build(tmp_path, "report")
    url = (directory / "index.html").resolve().as_uri()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
    requests: list[str] = []
    context.route(
        "**/*", lambda route: route.continue_() if route.request.url == url else route.abort()
    )
    page = context.new_page()
    problems: list[str] = []
    dialogs: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(url, wait_until="load")
    # drawn with the network off, and nothing but the page asked for
    assert page.evaluate("Object.keys(MarteauCharts.charts).length") >= 8 + len(SCRIPT)
    assert requests == [url]

    # hovering the point of 40 CUs shows the RPS of the table's row for 40 CUs
    table = page.locator("table", has=page.locator("caption", has_text="Request stats"))
    row = table.locator("tbody tr").nth(2).locator("td").all_inner_texts()
    assert row[0] == "40"
    x, y = chart_point(page, "requests_rps", 2, 1)
    page.mouse.move(x, y)
    cus, rps, max_rps = legend_values(page, "requests_rps")[:3]
    assert cus == "40"
    assert abs(float(rps.replace(",", "")) - float(row[3])) <= 0.5
    assert abs(float(max_rps.replace(",", "")) - float(row[4])) <= 0.5
    # and a candle's median, the table's MED in ms
    x, y = chart_point(page, "requests", 2, 3)
    page.mouse.move(x, y)
    values = dict(zip(["CUs", "MIN", "P10", "MED"], legend_values(page, "requests"), strict=False))
    assert values["CUs"] == "40"
    assert values["MED"] == row[-3]

    # a click on a legend entry hides its series (drawn again without it), a second shows it
    before = canvas(page, "requests_rps")
    entry = page.locator("#chart-requests_rps .u-legend .u-series", has_text="maxRPS")
    entry.click()
    assert page.evaluate("MarteauCharts.charts.requests_rps.series[2].show") is False
    assert "u-off" in (entry.get_attribute("class") or "")
    hidden = canvas(page, "requests_rps")
    assert hidden != before
    entry.click()
    assert canvas(page, "requests_rps") == before

    # a drag over the time chart zooms to that time range; a double-click shows it all
    full = page.evaluate(
        "[MarteauCharts.charts.time_rps.scales.x.min, MarteauCharts.charts.time_rps.scales.x.max]"
    )
    x0, y0 = chart_point(page, "time_rps", 10, 1)
    x1, _ = chart_point(page, "time_rps", 20, 1)
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x1, y0, steps=5)
    page.mouse.up()
    zoomed = page.evaluate(
        "[MarteauCharts.charts.time_rps.scales.x.min, MarteauCharts.charts.time_rps.scales.x.max]"
    )
    assert full[0] <= zoomed[0] < zoomed[1] <= full[1]
    assert zoomed[1] - zoomed[0] < (full[1] - full[0]) / 4
    # a point more (as the job page's stream brings) keeps the range the reader zoomed to
    grow = """() => {
        const spec = JSON.parse(document.getElementById('chart-data').textContent).time_rps;
        spec.x.push(spec.x[spec.x.length - 1] + 1);
        spec.series.forEach(s => s.y.push(7));
        MarteauCharts.drawAll({time_rps: spec});
        const x = MarteauCharts.charts.time_rps.scales.x;
        return [x.min, x.max];
    }"""
    assert page.evaluate(grow) == zoomed
    page.mouse.dblclick(x0, y0)
    assert page.evaluate("MarteauCharts.charts.time_rps.scales.x.max") == full[1] + 1

    # the hostile description is a title's text: no alert, no extra element
    title = page.locator('[id="chart-request_004.001"] .u-title').text_content()
    assert title == "Request 004.001 (post): Add to cart</script><script>alert(1)</script>"
    assert dialogs == [] and problems == []
    assert requests == [url]
    context.close()
