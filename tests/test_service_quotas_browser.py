"""Quotas and cost in headless Chromium (Debian's, driven by Playwright): the estimate
in the new-job preview, the actual cost on the job page, the profile's usage and its
old-report deletion, the admin's usage page and quota form. No console error, no
failed request."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")

from tests.service_helpers import ADMIN, ADMIN_PASSWORD, Service, make_project  # noqa: E402
from tests.support.browser import CHROMIUM, open_watched_page  # noqa: E402

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


def test_browser_estimate_cost_profile_and_admin_usage(tmp_path: Path) -> None:
    project = make_project(tmp_path / "shop", name="shop")
    (project / "Simple.conf").write_text(
        "[main]\nurl = http://127.0.0.1:9/\n\n[bench]\ncycles = 1:2\nduration = 30\n"
        "startup_delay = 0.5\ncycle_time = 2\n"
    )
    config = tmp_path / "marteau.toml"
    config.write_text("[marteau]\nenforce_quotas = true\npool_prices = { marteau = 36.0 }\n")
    service = Service(
        tmp_path / "data", tmp_path / "locks", workers=1, options=("--config", str(config))
    )
    problems: list[str] = []
    try:
        with sync_api.sync_playwright() as playwright:
            browser, page = open_watched_page(playwright, problems)
            page.goto(service.url + "/login")
            page.fill("input[name=email]", ADMIN)
            page.fill("input[name=password]", ADMIN_PASSWORD)
            page.click("form[action='/login'] button")
            page.wait_for_url(service.url + "/")

            # the preview shows the estimate: 1 node × ((1 × 0.5 + 30 + 2) + (2 × 0.5 + 30
            # + 2) = 65.5 s of bench + 60 s of provisioning) × 36 per hour = 1.255
            page.click("nav >> text=New job")
            page.fill("input[name=git_url]", str(project))
            page.fill("input[name=label]", "sleep=0.2")
            page.click("button[formaction='/jobs/preview']")
            estimate = page.locator("#estimate").inner_text()
            assert estimate.startswith("Estimated cost: 1.2550 = 1 node(s) × (65.5 s of bench")
            page.click("form[action='/jobs'] button[type=submit]")
            page.wait_for_url(f"{service.url}/jobs/*")
            page.wait_for_selector("#state.state-succeeded")
            job_id = page.url.rsplit("/", 1)[1]
            cost = page.locator("#job-cost").inner_text()
            assert "node-hours × 36.0" in cost and "estimated 1.2550" in cost

            # the profile: usage against every quota, then delete the job's files
            page.click("nav >> text=Profile")
            rows = page.locator("#quotas tbody tr")
            assert rows.count() == 7
            assert page.locator("#quotas tr", has_text="concurrent jobs").locator(
                "td"
            ).all_inner_texts() == ["0", "no limit"]
            page.check(f"#del-{job_id}")
            page.click("button:has-text('Delete the selected reports')")
            assert page.locator(".notice").inner_text() == "Deleted the files of 1 job(s)."
            assert page.locator(f"#del-{job_id}").count() == 0

            # the admin's usage page: the month's spend, and a quota set from the form
            page.click("nav >> text=Usage")
            spend = page.locator("#spend-users tbody tr").first.locator("th, td")
            assert spend.all_inner_texts()[:2] == [ADMIN, "1"]
            form = page.locator("form[action$='/quotas']").first
            form.locator("input[name=concurrent_jobs]").fill("3")
            form.locator("input[name=prune]").check()
            form.locator("button[type=submit]").click()
            page.wait_for_url(service.url + "/admin/usage")
            assert page.locator("input[name=concurrent_jobs]").first.input_value() == "3"
            page.click("nav >> text=Profile")
            assert page.locator("#quotas tr", has_text="concurrent jobs").locator(
                "td"
            ).all_inner_texts() == ["0", "3"]
            assert "deleted automatically" in page.content()
            browser.close()
    finally:
        service.stop()
    assert problems == []
