"""`marteau test` / `fl-run-test` as a user runs them: a subprocess in the test's directory."""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from xmlrpc.server import SimpleXMLRPCServer

import pytest

from tests.servers import LocalServer, free_port, ok
from tests.support.commands import MARTEAU, marteau_test
from tests.support.funkload import Credentials, install, serve


@pytest.fixture(scope="module")
def web() -> Iterator[LocalServer]:
    for local in serve():
        local.routes["/index.html"] = lambda r: ok("<html><body>Hello</body></html>", "text/html")
        local.routes["/"] = lambda r: ok("root")
        yield local


def set_url(conf: Path, url: str) -> None:
    conf.write_text(re.sub(r"(?m)^url\s*=.*$", f"url = {url}", conf.read_text()))


# -- the demos ------------------------------------------------------------------------------


def test_simple_demo(web: LocalServer, tmp_path: Path) -> None:
    install(tmp_path, "test_Simple.py", "Simple.conf")
    set_url(tmp_path / "Simple.conf", f"http://localhost:{web.port}/index.html")
    before = len(web.requests)
    run = marteau_test(tmp_path, "test_Simple.py", "-v")
    assert run.returncode == 0, run.stderr
    assert "test_simple" in run.stderr and "OK" in run.stderr
    assert len(web.requests) - before == 20
    lines = (tmp_path / "simple-test.xml").read_text().splitlines()
    assert len(lines) == 21
    assert all('type="get" result="Successful" url="/index.html"' in line for line in lines[:20])
    assert 'description="Get url"' in lines[0]
    assert lines[-1].startswith('<testResult cycle="001" cvus="000" thread="001" suite="Simple"')
    assert 'steps="20"' in lines[-1] and 'pages="20"' in lines[-1]
    log = (tmp_path / "simple-test.log").read_text()
    assert "Access the main URL 20 times" in log  # [test_simple] description, interpolated


def test_old_marteau_stupid_test(web: LocalServer, tmp_path: Path) -> None:
    install(tmp_path, "loadtest.py", "StupidTest.conf")
    set_url(tmp_path / "StupidTest.conf", web.url + "/")
    run = marteau_test(tmp_path, "loadtest.py", "StupidTest.test_simple")
    assert run.returncode == 0, run.stderr
    assert "Ran 1 test" in run.stderr
    assert 'result="Successful"' in (tmp_path / "stupid-test.xml").read_text()


def test_failure_shows_url_code_and_assertion(web: LocalServer, tmp_path: Path) -> None:
    install(tmp_path, "loadtest.py", "StupidTest.conf")
    url = f"{web.url}/nothing-here"
    run = marteau_test(tmp_path, "loadtest.py", "-u", url)  # -u overrides [main] url
    assert run.returncode == 1
    assert "FAIL: test_simple (loadtest.StupidTest" in run.stderr
    assert "/nothing-here\nHTTP Response 404: Not Found" in run.stderr
    assert f"Last request: GET {url} -> HTTP 404" in run.stderr
    assert "FAILED (failures=1)" in run.stderr


def test_backup_of_previous_result_file(web: LocalServer, tmp_path: Path) -> None:
    install(tmp_path, "loadtest.py", "StupidTest.conf")
    set_url(tmp_path / "StupidTest.conf", web.url + "/")
    (tmp_path / "stupid-test.xml").write_text("old\n")
    assert marteau_test(tmp_path, "loadtest.py").returncode == 0
    backups = list(tmp_path.glob("stupid-test.xml.bak-*"))
    assert len(backups) == 1 and backups[0].read_text() == "old\n"


def test_credential_xmlrpc_demo(tmp_path: Path) -> None:
    server = SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False, allow_none=True)
    server.register_instance(Credentials())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        install(tmp_path, "test_Credential.py")
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        (tmp_path / "Credential.conf").write_text(
            f"[main]\nurl = {url}\n[ftest]\nlog_to =\nresult_path = cred.xml\n"
        )
        run = marteau_test(tmp_path, "test_Credential.py", "-v")
    finally:
        server.shutdown()
        server.server_close()
    assert run.returncode == 0, run.stderr
    lines = (tmp_path / "cred.xml").read_text().splitlines()
    assert len(lines) == 6
    assert f'type="xmlrpc" result="Successful" url="{url}#getStatus" code="200"' in lines[0]
    assert 'xmlrpc="5"' in lines[-1]


# -- loader behaviours (FunkLoad's test_Install expectations) ------------------------------


def listed(run: subprocess.CompletedProcess) -> list[str]:
    assert run.returncode == 0, run.stderr
    return run.stdout.split()


def test_list_and_regex(tmp_path: Path) -> None:
    install(tmp_path, "test_dummy.py")
    everything = listed(marteau_test(tmp_path, "test_dummy.py", "--list"))
    assert len(everything) == 6
    assert everything[0] == "test_dummy.TestDummy1.test_dummy1_1"
    assert listed(marteau_test(tmp_path, "test_dummy.py", "test_suite", "--list")) == [
        "test_dummy.TestDummy1.test_dummy1_1",
        "test_dummy.TestDummy1.test_dummy1_2",
        "test_dummy.TestDummy2.test_dummy2_1",
        "test_dummy.TestDummy2.test_dummy2_2",
    ]
    assert len(listed(marteau_test(tmp_path, "test_dummy.py", "TestDummy1", "--list"))) == 2
    assert listed(marteau_test(tmp_path, "test_dummy.py", "-e", "dummy1_1", "--list")) == [
        "test_dummy.TestDummy1.test_dummy1_1"
    ]
    ending_2 = listed(marteau_test(tmp_path, "test_dummy.py", "-e", "2$", "--list"))
    assert ending_2 == [
        "test_dummy.TestDummy1.test_dummy1_2",
        "test_dummy.TestDummy2.test_dummy2_2",
        "test_dummy.TestDummy3.test_dummy3_2",
    ]
    others = listed(marteau_test(tmp_path, "test_dummy.py", "-e", "!2$", "--list"))
    assert len(others) == 3 and not set(others) & set(ending_2)
    # the module name works as well as the file name
    assert len(listed(marteau_test(tmp_path, "test_dummy", "--list"))) == 6


def test_exit_codes_of_plain_unittest_classes(tmp_path: Path) -> None:
    install(tmp_path, "test_dummy.py")
    passing = marteau_test(tmp_path, "test_dummy.py", "TestDummy1", "TestDummy2.test_dummy2_1")
    assert passing.returncode == 0 and "Ran 3 tests" in passing.stderr
    failing = marteau_test(tmp_path, "test_dummy.py", "TestDummy3")
    assert failing.returncode == 1
    assert "FAILED (failures=1, errors=1)" in failing.stderr
    stop = marteau_test(tmp_path, "test_dummy.py", "TestDummy3", "--stop-on-fail")
    assert stop.returncode == 1 and "Ran 1 test" in stop.stderr


def test_fl_run_test_alias(tmp_path: Path) -> None:
    install(tmp_path, "test_dummy.py")
    alias = str(Path(MARTEAU).with_name("fl-run-test"))
    run = marteau_test(tmp_path, "test_dummy.py", "TestDummy2", "--list", program=alias)
    assert run.returncode == 0 and len(run.stdout.split()) == 2
    usage = marteau_test(tmp_path, "--help", program=alias)
    assert "fl-run-test" in usage.stdout


# -- bad input: exit 2, one clear message, no traceback ---------------------------------------


def bad(run: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit 2, one ``Error:`` line at the end, no traceback and no unittest summary.

    (FunkLoad's own debug lines may come first: with no conf file, ``log_to``
    defaults to ``console file``.)
    """
    assert run.returncode == 2, (run.stdout, run.stderr)
    last = run.stderr.rstrip("\n").splitlines()[-1]
    assert last.startswith("Error: ")
    assert run.stderr.count("\nError: ") + run.stderr.startswith("Error: ") == 1
    assert "Traceback" not in run.stderr and "Ran " not in run.stderr
    for fragment in fragments:
        assert fragment in last


def test_missing_conf_file(tmp_path: Path) -> None:
    install(tmp_path, "loadtest.py")
    bad(
        marteau_test(tmp_path, "loadtest.py"),
        f"configuration file {tmp_path / 'StupidTest.conf'} not found",
        "[main] url",
    )


def test_missing_main_url(tmp_path: Path) -> None:
    install(tmp_path, "loadtest.py")
    conf = tmp_path / "StupidTest.conf"
    conf.write_text("[main]\ntitle = no url\n[ftest]\nlog_to =\n")
    bad(marteau_test(tmp_path, "loadtest.py"), str(conf), "no key 'url' in [main]")


def test_explicit_config_path(web: LocalServer, tmp_path: Path) -> None:
    install(tmp_path, "loadtest.py")
    conf = tmp_path / "elsewhere.conf"
    conf.write_text(f"[main]\nurl = {web.url}/\n[ftest]\nlog_to =\nresult_path = x.xml\n")
    assert marteau_test(tmp_path, "loadtest.py", "--config", str(conf)).returncode == 0
    bad(marteau_test(tmp_path, "loadtest.py", "--config", "nope.conf"), "nope.conf not found")


def test_syntax_error(tmp_path: Path) -> None:
    install(tmp_path, "syntax_error.py")
    bad(
        marteau_test(tmp_path, "syntax_error.py"),
        str(tmp_path / "syntax_error.py"),
        "line 6",
        "syntax error",
    )


def test_failing_import(tmp_path: Path) -> None:
    install(tmp_path, "test_failing_import.py")
    bad(
        marteau_test(tmp_path, "test_failing_import.py"),
        "cannot import test_failing_import.py",
        "ModuleNotFoundError",
        "no_such_module_for_marteau",
        "test_failing_import.py, line 1",
    )


def test_unknown_file_class_and_method(tmp_path: Path) -> None:
    install(tmp_path, "loadtest.py")
    bad(marteau_test(tmp_path, "nope.py"), "test file not found: nope.py")
    bad(marteau_test(tmp_path, "no_such_module"), "test module not found: no_such_module")
    bad(marteau_test(tmp_path, "loadtest.py", "Nope"), "no class or suite 'Nope'")
    bad(
        marteau_test(tmp_path, "loadtest.py", "StupidTest.test_nope"),
        "StupidTest has no test method 'test_nope'",
    )
    bad(marteau_test(tmp_path, "loadtest.py", "FunkLoadTestCase.x.y"), "no test method")


def test_connection_refused(tmp_path: Path) -> None:
    install(tmp_path, "test_Target.py")
    url = f"http://127.0.0.1:{free_port()}/"
    (tmp_path / "Target.conf").write_text(f"[main]\nurl = {url}\n[ftest]\nlog_to =\n")
    run = marteau_test(tmp_path, "test_Target.py", "Target.test_get")
    assert run.returncode == 1
    assert f"Can't load {url}." in run.stderr
    assert "Connection refused" in run.stderr
    assert f"Last request: GET {url} -> connection failed" in run.stderr
    xml = (tmp_path / "funkload.xml").read_text()
    assert f'result="Error" url="{url}" code="-1"' in xml


def test_dns_failure(tmp_path: Path) -> None:
    install(tmp_path, "test_Target.py")
    url = "http://no-such-host.invalid/"
    (tmp_path / "Target.conf").write_text(f"[main]\nurl = {url}\n[ftest]\nlog_to =\n")
    run = marteau_test(tmp_path, "test_Target.py", "Target.test_get")
    assert run.returncode == 1
    assert f"Can't load {url}." in run.stderr
    assert "FAILED" in run.stderr
