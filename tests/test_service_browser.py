"""The service's pages in headless Chromium (Debian's, driven by Playwright): log in,
add nodes as a host list and manage them, submit a job from the form, watch its console
and its per-cycle figures and live charts (requests/s, response time percentiles,
users and failed tests) update live, open the report, cancel a running job, manage
users. No console error, no failed request.

With MARTEAU_SCREENSHOTS=1 the pages are also saved into docs/ for the README and
docs/service.md (desktop width 1280, and one phone-width shot); otherwise into the
test's temporary folder, so that a normal run leaves the tree alone."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")

from tests.screenshots import shoot  # noqa: E402
from tests.service_helpers import ADMIN, ADMIN_PASSWORD, Service, make_project, tar_of  # noqa: E402
from tests.support.browser import CHROMIUM, DESKTOP, PHONE, open_watched_page  # noqa: E402

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


def _hover_last_point(page, name: str, series: int, until: float | None = None) -> list[str]:  # type: ignore[no-untyped-def]
    """Hover the last point of `series` of chart `name` (at x `until` or before); the
    legend's value of that series."""
    x, y = page.evaluate(
        """([name, s, until]) => {
          const u = MarteauCharts.charts[name];
          u.root.scrollIntoView({block: "center"});
          let i = u.data[s].length - 1;
          while (u.data[s][i] === null || (until !== null && u.data[0][i] > until)) { i -= 1; }
          const r = u.over.getBoundingClientRect();
          return [r.left + u.valToPos(u.data[0][i], "x"),
                  r.top + u.valToPos(u.data[s][i], u.series[s].scale)];
        }""",
        [name, series, until],
    )
    page.mouse.move(x, y)
    return (
        page.locator(f"#chart-{name} .u-legend .u-series")
        .nth(series)
        .locator(".u-value")
        .all_inner_texts()
    )


def test_browser_login_node_job_console_report_cancel(tmp_path: Path) -> None:
    archive = tmp_path / "shop.tar.gz"
    archive.write_bytes(tar_of(make_project(tmp_path / "shop", name="shop"), "shop"))
    service = Service(tmp_path / "data", tmp_path / "locks", workers=1)
    problems: list[str] = []
    try:
        with sync_api.sync_playwright() as playwright:
            browser, page = open_watched_page(playwright, problems)

            page.goto(service.url + "/")
            assert page.url.startswith(service.url + "/login")
            page.fill("input[name=email]", ADMIN)
            page.fill("input[name=password]", ADMIN_PASSWORD)
            page.click("form[action='/login'] button")
            page.wait_for_url(service.url + "/")
            assert page.locator("h1").inner_text() == "Dashboard"

            # nodes as a host list: add three, disable, enable, remove one
            page.click("nav >> text=Nodes")
            page.fill("textarea[name=name]", "web1\nweb2, web3")
            page.fill("input[name=pool]", "web")
            page.fill("input[name=vars]", "ansible_user=bench")
            page.click("form[action='/nodes'] button")
            for name in ("web1", "web2", "web3"):
                row = page.locator("tr", has=page.locator(f"td:text-is('{name}')"))
                assert "idle" in row.inner_text() and "ansible_user=bench" in row.inner_text()
            web1 = page.locator("tr", has=page.locator("td:text-is('web1')"))
            web1.locator("button", has_text="Disable").click()
            assert "disabled" in web1.inner_text()
            web1.locator("button", has_text="Enable").click()
            web1.locator("button", has_text="Remove").click()
            assert web1.count() == 0
            # a node whose own lock another run holds: the check shows the holder
            page.fill("textarea[name=name]", "locked1")
            page.fill("input[name=pool]", "lab")
            page.click("form[action='/nodes'] button")
            page.locator("tr", has=page.locator("td:text-is('locked1')")).locator(
                "button", has_text="Check"
            ).click()
            holder = page.locator("tr", has=page.locator("td:text-is('locked1')")).locator(
                "td.lock"
            )
            assert "job #7" in holder.inner_text() and "ops@lab" in holder.inner_text()

            # a job from the form; its console grows live, then the page shows the result
            page.click("nav >> text=New job")
            page.set_input_files("input[name=archive]", str(archive))
            page.fill("input[name=label]", "sleep=10,slower=1")  # a real summary.json
            page.fill("input[name=cycles]", "1:2")
            page.fill("input[name=pool]", "web")  # web2 and web3, run by the stand-in
            page.fill("input[name=nodes]", "2")
            page.click("button[formaction='/jobs/preview']")
            assert "Simple.test_simple" in page.locator("section.preview").inner_text()
            shoot(page, tmp_path, "service-new-job.png", full_page=True)
            page.set_input_files("input[name=archive]", str(archive))
            page.click("form[action='/jobs'] button[type=submit]")
            page.wait_for_url(f"{service.url}/jobs/*")
            job_url = page.url
            # SSE appends text nodes to the console while the job runs
            page.wait_for_function(
                "document.getElementById('console') && "
                "document.getElementById('console').childNodes.length > 1 && "
                "document.getElementById('console').textContent.includes('fake progress')"
            )
            # the duration of the running job (the page was loaded while it was queued)
            # ticks without a reload
            page.reload()
            started = page.locator("#job-duration").inner_text()
            assert started
            page.wait_for_function(
                f"document.getElementById('job-duration').textContent !== {started!r}"
            )
            # and fills the figures table, one row per cycle and node and the sums of each
            # cycle, as cycles come (the page is the one loaded before the job ended: its
            # end event reloads it)
            page.wait_for_function(
                "document.querySelectorAll('#figures tbody tr.total').length >= 3 && "
                "!document.querySelector('#state.state-succeeded')"
            )
            rows = page.locator("#figures tbody tr")
            first = rows.first.locator("td").all_inner_texts()
            assert first == ["0", "web2", "1/1", "100", "10", "0", "1"]
            total = rows.nth(2).locator("td").all_inner_texts()
            assert total == ["0", "all 2 nodes", "2/2", "201", "20", "0", "2"]
            # the live chart, from the same stream: one line per cycle; hovering cycle 0's
            # last point shows its requests/s, the sum of its two nodes (100 + 101)
            page.wait_for_function(
                "window.MarteauCharts && MarteauCharts.charts.live_rps && "
                "MarteauCharts.charts.live_rps.series.length >= 4"
            )
            assert _hover_last_point(page, "live_rps", 1) == ["201"]
            page.reload()  # without the stream, the page shows the figures so far
            assert page.locator("#figures tbody tr").first.locator("td").all_inner_texts() == first
            page.wait_for_function("MarteauCharts.charts.live_rps.series.length >= 4")
            assert _hover_last_point(page, "live_rps", 1) == ["201"]
            # the response time percentiles, drawn from the page, then growing with each
            # event of the stream; hovering cycle 0's last P95 shows its slower node's p95
            # (web3 said 21 ms, web2 20 ms)
            page.wait_for_function("MarteauCharts.charts.live_percentiles")
            drawn = page.evaluate("MarteauCharts.charts.live_percentiles.data[0].length")
            page.wait_for_function(
                f"MarteauCharts.charts.live_percentiles.data[0].length > {drawn}"
            )
            labels = page.locator("#chart-live_percentiles .u-legend .u-series .u-label")
            assert labels.all_inner_texts()[1:] == ["P50 (median)", "P95", "P99"]
            end_of_cycle_0 = page.evaluate("MarteauCharts.charts.live_percentiles.spec.bands[0][1]")
            assert _hover_last_point(page, "live_percentiles", 2, end_of_cycle_0) == ["21.0"]
            # and the users with the failed tests so far: 2 users in cycle 0
            assert _hover_last_point(page, "live_users", 1, end_of_cycle_0) == ["2.00"]
            shoot(page, tmp_path, "service-job.png", full_page=True)
            page.set_viewport_size(PHONE)
            shoot(page, tmp_path, "service-job-phone.png", full_page=True)
            page.set_viewport_size(DESKTOP)
            page.wait_for_selector("#state.state-succeeded")  # the end event reloads the page
            assert "job succeeded" in page.locator("#console").inner_text()
            page.click("a.button:has-text('Report')")
            assert "fake report" in page.content()
            page.goto(job_url)

            # cancel a running job from its page
            page.click("nav >> text=New job")
            page.set_input_files("input[name=archive]", str(archive))
            page.fill("input[name=label]", "sleep=60")
            page.click("form[action='/jobs'] button[type=submit]")
            page.wait_for_function(
                "document.getElementById('console').textContent.includes('fake run of')"
            )
            page.click("button:has-text('Cancel')")
            page.wait_for_selector("#state.state-cancelled")
            page.screenshot(path=str(tmp_path / "job-cancelled.png"), full_page=True)
            # the same project again, 1.5 times slower: the lists show each run's key
            # figures, this one's p95 flagged against job #1's
            page.click("nav >> text=New job")
            page.set_input_files("input[name=archive]", str(archive))
            page.fill("input[name=label]", "slower=1.5")
            page.fill("input[name=pool]", "web")
            page.click("form[action='/jobs'] button[type=submit]")
            page.wait_for_selector("#state.state-succeeded")
            page.goto(service.url + "/")
            assert page.locator("tr", has_text="cancelled").count() == 1
            assert page.locator("tr", has_text="succeeded").count() == 2
            slower = page.locator("tr", has=page.locator("a", has_text="#3"))
            assert "worse" in slower.locator("td.figure-p95").inner_html()
            assert slower.locator("td.figure-peak_rps").inner_text().endswith("req/s")
            shoot(page, tmp_path, "service-dashboard.png", full_page=True)
            page.click("nav >> text=Nodes")
            shoot(page, tmp_path, "service-nodes.png", full_page=True)

            # users: add one, make them an admin, reset their password, delete them
            page.click("nav >> text=Users")
            page.fill("form[action='/users'] input[name=email]", "erin@example.org")
            page.fill("form[action='/users'] input[name=password]", "erin-password")
            page.click("form[action='/users'] button")
            assert "Added erin@example.org." in page.locator("p.notice").inner_text()
            erin = page.locator("tr", has=page.locator("td:text-is('erin@example.org')"))
            assert erin.locator("td").nth(1).inner_text() == "user"
            erin.locator("button", has_text="Make an admin").click()
            assert erin.locator("td").nth(1).inner_text() == "admin"
            erin.get_by_label("New password for erin@example.org").fill("erin-password-2")
            erin.locator("button", has_text="Set").click()
            assert "New password set for erin@example.org" in page.locator("p.notice").inner_text()
            me = page.locator("tr", has=page.locator("td", has_text="(you)"))
            assert me.locator("button", has_text="Delete").count() == 0
            shoot(page, tmp_path, "service-users.png", full_page=True)
            erin.locator("button", has_text="Delete").click()
            assert "Deleted erin@example.org." in page.locator("p.notice").inner_text()
            assert erin.count() == 0
            browser.close()
    finally:
        service.stop()
    assert not problems, problems
