"""End to end: Chromium logs in to a local site; the recorded tests pass `marteau test` and bench.

Debian's Chromium (Playwright) browses ``/``, the login form, posts the
password, lands on ``/account`` and opens ``/orders`` (both answer 401
without the session cookie). Once through the recording proxy of
``marteau record``, once with Playwright's own HAR recording converted by
``marteau record --har``. Each generated test is then run with
``marteau test`` and ``marteau bench`` against the same site: the protected
pages must answer 200 to them, so a lost cookie or password fails.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.record_site import PASSWORD, USER, LoginSite, recorded_calls
from tests.servers import LocalServer
from tests.support.commands import BIN, bench, marteau_test
from tests.support.recording import needs_mitmdump, start_recording
from tests.support.records import parse_xml

FL_RECORD = str(BIN / "fl-record")
PAGES = [("get", "/"), ("get", "/login"), ("post", "/login"), ("get", "/orders")]


@pytest.fixture
def site() -> Any:
    with LocalServer() as server:
        yield LoginSite(server)


def browse(context: Any, site: LoginSite) -> None:
    """A user's visit: home page (image, stylesheet), log in, then a page behind the login."""
    page = context.new_page()
    page.goto(f"{site.url}/", wait_until="load")
    page.click("#login")
    page.wait_for_url("**/login")
    page.fill("input[name=user]", USER)
    page.fill("input[name=pw]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/account")
    page.click("#orders")
    page.wait_for_url("**/orders")
    assert "No order yet" in page.content()
    page.close()


def check_and_replay(workdir: Path, site: LoginSite, class_name: str, test_name: str) -> None:
    """The generated test's shape, then `marteau test` and `marteau bench` against the site."""
    module_file = f"test_{class_name}.py"
    module = (workdir / module_file).read_text()
    calls = recorded_calls(module)
    assert calls == PAGES, module
    assert f"['user', {USER!r}]," in module
    assert "['pw', self.conf_get('secrets', 'pw')]," in module and PASSWORD not in module
    assert "logo.png" not in module and "site.css" not in module
    conf = (workdir / f"{class_name}.conf").read_text()
    assert f"url = {site.url}\n" in conf and f"pw = {PASSWORD}\n" in conf

    browsed = len(site.protected)
    run = marteau_test(workdir, module_file)
    assert run.returncode == 0, run.stdout + run.stderr
    assert site.protected[browsed:] == [("/account", 200), ("/orders", 200)]

    result = bench(
        workdir,
        module_file,
        f"{class_name}.test_{test_name}",
        "-c",
        "2",
        "-D",
        "5",  # a loaded machine still fits whole tests, their first page's image with them
        "--workers",
        "1",
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    xml = re.search(r"Log xml: (\S+)", result.stdout)
    assert xml, result.stdout
    _, responses, tests = parse_xml(Path(xml.group(1)))
    assert tests and all(t.get("result") == "Successful" for t in tests)
    kinds = {(r.get("type"), r.get("url").split("?")[0]) for r in responses}
    assert {("post", "/login"), ("get", "/orders"), ("image", "/static/logo.png")} <= kinds
    assert all(status == 200 for _, status in site.protected[browsed:])


@needs_mitmdump
def test_chromium_through_the_recording_proxy(browser, site: LoginSite, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    process, proxy = start_recording(tmp_path, "login_flow")
    # Playwright keeps loopback traffic on the proxy (Chromium's <-loopback> bypass rule).
    context = browser.new_context(proxy={"server": proxy})
    try:
        browse(context, site)
    finally:
        context.close()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    check_and_replay(tmp_path, site, "LoginFlow", "login_flow")


def test_chromium_har_converted_with_record_har(browser, site: LoginSite, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    har = tmp_path / "visit.har"
    context = browser.new_context(record_har_path=str(har))
    try:
        browse(context, site)
    finally:
        context.close()  # writes the HAR
    run = marteau_test(tmp_path, "--har", str(har), "login-har", program=FL_RECORD)
    assert run.returncode == 0, run.stderr
    check_and_replay(tmp_path, site, "LoginHar", "login_har")
