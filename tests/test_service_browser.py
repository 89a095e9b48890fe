"""The service's pages in headless Chromium (Debian's, driven by Playwright): log in,
manage a node, submit a job from the form, watch its console update live, open the
report, cancel a running job. No console error, no failed request."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")

from tests.service_helpers import ADMIN, ADMIN_PASSWORD, Service, make_project, tar_of  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


def _failed(request, problems: list[str]) -> None:  # type: ignore[no-untyped-def]
    # leaving a page closes its live console stream: not a failure
    if not ("/console/stream" in request.url and "ERR_ABORTED" in (request.failure or "")):
        problems.append(f"{request.url} {request.failure}")


def test_browser_login_node_job_console_report_cancel(tmp_path: Path) -> None:
    archive = tmp_path / "shop.tar.gz"
    archive.write_bytes(tar_of(make_project(tmp_path / "shop", name="shop"), "shop"))
    service = Service(tmp_path / "data", tmp_path / "locks", workers=1)
    problems: list[str] = []
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("requestfailed", lambda r: _failed(r, problems))
            page.set_default_timeout(20000)

            page.goto(service.url + "/")
            assert page.url.startswith(service.url + "/login")
            page.fill("input[name=email]", ADMIN)
            page.fill("input[name=password]", ADMIN_PASSWORD)
            page.click("form[action='/login'] button")
            page.wait_for_url(service.url + "/")
            assert page.locator("h1").inner_text() == "Dashboard"

            # a node: add, disable, enable, remove
            page.click("nav >> text=Nodes")
            page.fill("input[name=name]", "web1")
            page.fill("input[name=pool]", "web")
            page.fill("input[name=vars]", "ansible_host=127.0.0.9")
            page.click("form[action='/nodes'] button")
            row = page.locator("tr", has_text="web1")
            assert "idle" in row.inner_text()
            row.locator("button", has_text="Disable").click()
            assert "disabled" in page.locator("tr", has_text="web1").inner_text()
            page.locator("tr", has_text="web1").locator("button", has_text="Enable").click()
            page.locator("tr", has_text="web1").locator("button", has_text="Remove").click()
            assert page.locator("tr", has_text="web1").count() == 0
            page.screenshot(path=str(tmp_path / "nodes.png"), full_page=True)

            # a job from the form; its console grows live, then the page shows the result
            page.click("nav >> text=New job")
            page.set_input_files("input[name=archive]", str(archive))
            page.fill("input[name=label]", "sleep=2.5")
            page.fill("input[name=cycles]", "1:2")
            page.click("form[action='/jobs'] button[type=submit]")
            page.wait_for_url(f"{service.url}/jobs/*")
            job_url = page.url
            # SSE appends text nodes to the console while the job runs
            page.wait_for_function(
                "document.getElementById('console') && "
                "document.getElementById('console').childNodes.length > 1 && "
                "document.getElementById('console').textContent.includes('fake progress')"
            )
            page.screenshot(path=str(tmp_path / "job-running.png"), full_page=True)
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
            page.goto(service.url + "/")
            assert page.locator("tr", has_text="cancelled").count() == 1
            assert page.locator("tr", has_text="succeeded").count() == 1
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            browser.close()
    finally:
        service.stop()
    assert not problems, problems
