"""Debian's Chromium for the browser tests: where it is, how it starts (headless, and
calling nobody but the pages' own 127.0.0.1 servers), and a page whose errors the
tests collect."""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def _failed(request, problems: list[str]) -> None:  # type: ignore[no-untyped-def]
    # leaving a page closes its live console and figures streams: not a failure
    live = "/console/stream" in request.url or "/figures/stream" in request.url
    if not (live and "ERR_ABORTED" in (request.failure or "")):
        problems.append(f"{request.url} {request.failure}")


def open_watched_page(playwright, problems: list[str]):  # type: ignore[no-untyped-def]
    """Chromium and a desktop page whose console errors, page errors and failed
    requests are appended to `problems` (the tests assert it stays empty)."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    page = browser.new_page(viewport=DESKTOP)
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("requestfailed", lambda r: _failed(r, problems))
    page.set_default_timeout(20000)
    return browser, page
