"""`marteau test` options --doctest, -V/--firefox-view, --profile and --no-color, run as a user would."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.servers import LocalServer, ok
from tests.support.commands import marteau_test
from tests.support.funkload import serve

TEST_MODULE = '''\
"""Pages of the local site.

>>> 1 + 1
2
"""
from funkload.FunkLoadTestCase import FunkLoadTestCase


def title_of(html):
    """The text of the <title> element.

    >>> title_of("<html><title>Hi</title></html>")
    'Hi'
    """
    return html.split("<title>")[1].split("</title>")[0]


class Pages(FunkLoadTestCase):
    def setUp(self):
        self.server_url = self.conf_get("main", "url")

    def test_pages(self):
        self.get(self.server_url + "/a.html", description="Page A")
        self.get(self.server_url + "/b.html", description="Page B")
'''

CONF = """\
[main]
url = {url}

[ftest]
log_to =
result_path = pages.xml
"""

DOCTEST_FILE = """\
A FunkLoad doctest: a browser at the prompt.

>>> from funkload.FunkLoadDocTest import FunkLoadDocTest
>>> fl = FunkLoadDocTest()
>>> response = fl.get("{url}/a.html")
>>> response.code
{code}
>>> "Page A" in response.body
True
"""

PAGE_A = "<html><head><title>A</title></head><body>Page A</body></html>"
PAGE_B = "<html><head><title>B</title></head><body>Page B</body></html>"
NO_DISPLAY: dict[str, str | None] = {"DISPLAY": None, "WAYLAND_DISPLAY": None}


@pytest.fixture(scope="module")
def web() -> Iterator[LocalServer]:
    for local in serve():
        local.routes["/a.html"] = lambda r: ok(PAGE_A, "text/html")
        local.routes["/b.html"] = lambda r: ok(PAGE_B, "text/html")
        yield local


@pytest.fixture
def project(web: LocalServer, tmp_path: Path) -> Path:
    (tmp_path / "test_Pages.py").write_text(TEST_MODULE)
    (tmp_path / "Pages.conf").write_text(CONF.format(url=web.url))
    return tmp_path


def own_tmp(directory: Path) -> dict[str, str | None]:
    """FunkLoadDocTest logs to the temp dir: keep its files in the test's directory."""
    return {"TMPDIR": str(directory)}


def doctest_file(directory: Path, web: LocalServer, code: int = 200) -> Path:
    path = directory / "pages.txt"
    path.write_text(DOCTEST_FILE.format(url=web.url, code=code))
    return path


# -- --doctest ------------------------------------------------------------------------------


def test_doctest_adds_the_module_doctests(project: Path) -> None:
    plain = marteau_test(project, "test_Pages.py", "--list")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.split() == ["test_Pages.Pages.test_pages"]
    listed = marteau_test(project, "test_Pages.py", "--doctest", "--list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == [
        "test_Pages.Pages.test_pages",
        "test_Pages",
        "test_Pages.title_of",
    ]
    # -e matches a doctest by its name.
    only = marteau_test(project, "test_Pages.py", "--doctest", "--list", "-e", "title")
    assert only.stdout.split() == ["test_Pages.title_of"]
    run = marteau_test(project, "test_Pages.py", "--doctest", "-v")
    assert run.returncode == 0, run.stderr
    assert "Ran 3 tests" in run.stderr and "title_of" in run.stderr


def test_a_failing_module_doctest_fails_the_run(project: Path) -> None:
    source = project / "test_Pages.py"
    source.write_text(source.read_text().replace("'Hi'", "'Hello'"))
    run = marteau_test(project, "test_Pages.py", "--doctest")
    assert run.returncode == 1
    assert "Expected:\n    'Hello'\nGot:\n    'Hi'" in run.stderr
    assert "FAILED (failures=1)" in run.stderr
    # Without --doctest the docstrings are not tests.
    assert marteau_test(project, "test_Pages.py").returncode == 0


def test_doctest_text_file(web: LocalServer, tmp_path: Path) -> None:
    doctest_file(tmp_path, web)
    before = len(web.requests)
    run = marteau_test(tmp_path, "pages.txt", "--doctest", "-v", env_changes=own_tmp(tmp_path))
    assert run.returncode == 0, run.stderr
    assert "Ran 1 test" in run.stderr and "pages.txt" in run.stderr
    assert [r.path for r in web.requests[before:]] == ["/a.html"]
    assert "Trying:" not in run.stdout


def test_debug_traces_each_doctest_example(web: LocalServer, tmp_path: Path) -> None:
    doctest_file(tmp_path, web)
    run = marteau_test(tmp_path, "pages.txt", "--doctest", "-d", env_changes=own_tmp(tmp_path))
    assert run.returncode == 0, run.stderr
    assert "Trying:\n    response.code\nExpecting:\n    200\nok" in run.stdout


def test_failing_doctest_text_file(web: LocalServer, tmp_path: Path) -> None:
    doctest_file(tmp_path, web, code=201)
    run = marteau_test(tmp_path, "pages.txt", "--doctest", env_changes=own_tmp(tmp_path))
    assert run.returncode == 1
    assert "Failed example:\n    response.code\nExpected:\n    201\nGot:\n    200" in run.stderr


def test_doctest_text_file_bad_input(web: LocalServer, tmp_path: Path) -> None:
    doctest_file(tmp_path, web)
    without = marteau_test(tmp_path, "pages.txt", env_changes=own_tmp(tmp_path))
    assert without.returncode == 2
    assert "Error: test module not found: pages.txt" in without.stderr
    assert "add --doctest to run it as a doctest text file" in without.stderr
    with_names = marteau_test(
        tmp_path, "pages.txt", "--doctest", "Pages.test_pages", env_changes=own_tmp(tmp_path)
    )
    assert with_names.returncode == 2
    assert "pages.txt is run as a doctest text file: it takes no test names" in with_names.stderr
    (tmp_path / "bad.txt").write_text(">>> x = (1,\n  ... 2)\n")
    bad = marteau_test(tmp_path, "bad.txt", "--doctest", env_changes=own_tmp(tmp_path))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "Error: bad.txt: line 2 of the docstring for bad.txt" in bad.stderr


# -- -V / --firefox-view --------------------------------------------------------------------


def recording_browser(directory: Path) -> tuple[Path, Path]:
    """A $BROWSER command that appends each URL it is asked to open to a file."""
    log = directory / "opened.txt"
    script = directory / "record-browser"
    script.write_text(f'#!/bin/sh\necho "$1" >> "{log}"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, log


def test_firefox_view_opens_each_page_in_the_browser(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tools = tmp_path_factory.mktemp("tools")
    browser, log = recording_browser(tools)
    temp = tmp_path_factory.mktemp("tmp")
    run = marteau_test(
        project,
        "test_Pages.py",
        "-V",
        env_changes={**NO_DISPLAY, "BROWSER": str(browser), "TMPDIR": str(temp)},
    )
    assert run.returncode == 0, run.stderr
    opened = [Path(unquote(urlsplit(line).path)) for line in log.read_text().split()]
    assert [path.name for path in opened] == ["001.html", "002.html"]
    assert all(line.startswith("file:///") for line in log.read_text().split())
    dump_dir = opened[0].parent
    assert dump_dir.parent == temp.resolve() and dump_dir.name.startswith("marteau-view-")
    assert f"Pages are dumped in {dump_dir}" in run.stderr
    assert opened[0].read_text() == PAGE_A and opened[1].read_text() == PAGE_B


def test_firefox_view_uses_the_dump_directory_when_given(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tools = tmp_path_factory.mktemp("tools")
    browser, log = recording_browser(tools)
    dump = project / "dump"
    run = marteau_test(
        project,
        "test_Pages.py",
        "--firefox-view",
        "--dump-directory",
        str(dump),
        env_changes={**NO_DISPLAY, "BROWSER": str(browser)},
    )
    assert run.returncode == 0, run.stderr
    assert log.read_text().split() == [(dump / n).as_uri() for n in ("001.html", "002.html")]


def test_firefox_view_without_a_browser_warns_once(project: Path) -> None:
    missing = str(project / "no-such-browser")
    run = marteau_test(
        project,
        "test_Pages.py",
        "-V",
        env_changes={**NO_DISPLAY, "BROWSER": missing, "TMPDIR": str(project)},
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("-V: no web browser could be started (set $BROWSER)") == 1


# -- --profile and --no-color ---------------------------------------------------------------


def test_profile_prints_the_top_functions(project: Path) -> None:
    run = marteau_test(project, "test_Pages.py", "--profile")
    assert run.returncode == 0, run.stderr
    assert "function calls" in run.stdout
    assert "Ordered by: internal time, call count" in run.stdout
    assert "due to restriction <30>" in run.stdout
    rows = [line for line in run.stdout.splitlines() if "(" in line and ":" in line]
    assert 0 < len(rows) <= 30
    assert "Ran 1 test" in run.stderr and "OK" in run.stderr


def test_profile_keeps_the_exit_status(project: Path, web: LocalServer) -> None:
    run = marteau_test(project, "test_Pages.py", "--profile", "-u", web.url + "/missing")
    assert run.returncode == 1
    assert "function calls" in run.stdout


def test_no_color_is_accepted_and_output_is_plain(project: Path) -> None:
    plain = marteau_test(project, "test_Pages.py", "-v", "--no-color")
    default = marteau_test(project, "test_Pages.py", "-v")
    assert plain.returncode == default.returncode == 0, plain.stderr
    for run in (plain, default):
        assert "\x1b[" not in run.stdout + run.stderr
        assert "test_pages (test_Pages.Pages" in run.stderr and "ok" in run.stderr
