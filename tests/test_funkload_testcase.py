"""`FunkLoadTestCase`: identity, conf access, outcomes, records, xmlrpc, hooks, aliases."""

from __future__ import annotations

import contextlib
import logging
import threading
import unittest
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

import pytest

import funkload.FunkLoadTestCase as fl  # the module: pytest would build a TestCase class found here
from marteau.funkload import testcase as testcase_module
from marteau.funkload.config import MissingConfOption
from tests.servers import LocalServer, free_port, ok
from tests.support.funkload import Credentials, ListSink, make_test, run_test, serve


@pytest.fixture(scope="module")
def shared_web() -> Iterator[LocalServer]:
    yield from serve()


@pytest.fixture
def web(shared_web: LocalServer) -> LocalServer:
    shared_web.routes.clear()
    shared_web.requests.clear()
    shared_web.routes["/"] = lambda r: ok("root")
    shared_web.routes["/missing"] = lambda r: (
        404,
        [("Content-Type", "text/html"), ("X-Why", "gone")],
        b"<p>no such page</p>",
    )
    return shared_web


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


class Scenario(fl.FunkLoadTestCase):
    """Behaviour chosen by the ``scenario`` attribute set by each test."""

    __test__ = False  # a fixture class, not for pytest to collect

    scenario = "ok"

    def setUp(self) -> None:
        self.url = self.conf_get("main", "url")
        if self.scenario == "setup_error":
            raise RuntimeError("setUp broke")

    def test_it(self) -> None:
        kind = self.scenario
        if kind == "ok":
            self.get(self.url, description="Root")
        elif kind == "http_failure":
            self.get(self.url, description="Root")
            self.get(self.url + "missing", description="Missing")
        elif kind == "caught":
            with contextlib.suppress(AssertionError):
                self.get(self.url + "missing")
            self.get(self.url)
        elif kind == "assertion":
            response = self.get(self.url)
            self.assertEqual(response.code, 201)
        elif kind == "exception":
            self.get(self.url)
            raise KeyError("boom")
        elif kind == "refused":
            self.get(f"http://127.0.0.1:{self.refused_port}/x", description="Refused")
        elif kind == "dns":
            self.get("http://no-such-host.invalid/", description="No DNS")


def scenario(kind: str, web: LocalServer, workdir: Path, **options: Any) -> tuple[Any, ListSink]:
    test, sink = make_test(Scenario, "test_it", workdir, url=web.url + "/", **options)
    test.scenario = kind  # type: ignore[attr-defined]
    return test, sink


# -- identity and configuration -----------------------------------------------------------


def test_functional_and_bench_identity(web: LocalServer, workdir: Path) -> None:
    test, _ = make_test(Scenario, "test_it", workdir, url=web.url)
    assert (test.test_name, test.cycle, test.cvus, test.thread_id) == ("test_it", 1, 0, 1)
    assert test.in_bench_mode is False and test.meta_method_name == "test_it"
    assert test.suite_name == "Scenario"
    bench, _ = make_test(Scenario, "test_it:2:10:7", workdir, url=web.url)
    assert (bench.test_name, bench.cycle, bench.cvus, bench.thread_id) == ("test_it", 2, 10, 7)
    assert bench.in_bench_mode is True
    assert bench._testMethodName == "test_it"
    assert bench.result_path == str(workdir / "r.xml")
    assert bench._config_path == str(workdir / "Scenario.conf")


def test_subclass_init_with_args_kwargs(web: LocalServer, workdir: Path) -> None:
    class Market(fl.FunkLoadTestCase):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.root = self.conf_get("main", "url")

        def test_x(self) -> None:
            pass

    test, _ = make_test(Market, "test_x", workdir, url=web.url)
    assert test.root == web.url  # type: ignore[attr-defined]


CONF = """\
[main]
url = {url}
admin_id = 42

[test_it]
description = Access %(nb)s times
nb = 3
ratio = 0.5

[ftest]
log_to =
ok_codes = 200:404
sleep_time_min = 0.25
sleep_time_max = 0.5
result_path = {result}
"""


def test_conf_access(web: LocalServer, workdir: Path) -> None:
    test, _ = make_test(Scenario, "test_it", workdir, url=web.url, conf=CONF)
    assert test.conf_get("test_it", "description") == "Access 3 times"
    assert test.conf_getInt("test_it", "nb") == 3
    assert test.conf_getFloat("test_it", "ratio") == 0.5
    assert test.conf_getList("main", "url", separator="//") == ["http:", web.url[7:]]
    assert test.conf_getList("main", "nope", ["d"]) == ["d"]
    assert test.conf_get("main", "nope", None) is None
    assert test.conf.main.admin_id == "42"
    assert test.ok_codes == [200, 404]
    assert (test.sleep_time_min, test.sleep_time_max) == (0.25, 0.5)
    with pytest.raises(MissingConfOption, match=r"Scenario\.conf.*\[main\] nope"):
        test.conf_get("main", "nope")


def test_cli_overrides(web: LocalServer, workdir: Path) -> None:
    test, _ = make_test(
        Scenario,
        "test_it",
        workdir,
        url="http://unused/",
        conf=CONF,
        main_url=web.url,
        ftest_sleep_time_max="0",
        ftest_sleep_time_min="0",
    )
    assert test.conf_get("main", "url") == web.url
    assert test.sleep_time_max == 0.0


def test_sleep_is_uniform_between_min_and_max(
    web: LocalServer, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(testcase_module.time, "sleep", slept.append)
    test, _ = make_test(Scenario, "test_it", workdir, url=web.url, conf=CONF)
    for _ in range(30):
        test.sleep()
    assert all(0.25 <= s <= 0.5 for s in slept) and len(set(slept)) > 1
    test.get(web.url + "/")
    assert len(slept) == 31  # each page sleeps


def test_pause_waits_for_enter(
    web: LocalServer, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts: list[str] = []
    monkeypatch.setattr("builtins.input", lambda prompt="": prompts.append(prompt) or "")
    test, _ = make_test(Scenario, "test_it", workdir, url=web.url, pause=True)
    test.get(web.url + "/")
    assert prompts == ["Press ENTER to continue "]


# -- outcomes -------------------------------------------------------------------------------


def test_success(web: LocalServer, workdir: Path) -> None:
    test, sink = scenario("ok", web, workdir)
    result = run_test(test)
    assert result.wasSuccessful() and result.testsRun == 1
    (response,) = sink.responses
    assert response == {
        "cycle": 1,
        "cvus": 0,
        "thread": 1,
        "suite": "Scenario",
        "name": "test_it",
        "step": 1,
        "number": 1,
        "type": "get",
        "result": "Successful",
        "url": "/",
        "code": 200,
        "description": "Root",
        "time": response["time"],
        "duration": response["duration"],
    }
    (record,) = sink.tests
    assert record["result"] == "Successful" and record["traceback"] is None
    assert record["time"] <= response["time"]
    assert record["connection_duration"] == pytest.approx(response["duration"])


def test_http_failure(web: LocalServer, workdir: Path) -> None:
    test, sink = scenario("http_failure", web, workdir)
    result = run_test(test)
    assert len(result.failures) == 1 and not result.errors
    message = result.failures[0][1]
    assert "/missing\nHTTP Response 404: Not Found" in message
    failed = sink.responses[-1]
    assert (failed["result"], failed["code"], failed["step"], failed["url"]) == (
        "Failure",
        404,
        2,
        "/missing",
    )
    assert ("x-why", "gone") in failed["headers"]
    assert failed["body"] == b"<p>no such page</p>"
    assert sink.tests[-1]["result"] == "Failure"
    assert "HTTP Response 404" in sink.tests[-1]["traceback"]
    assert test.step_success is False


def test_caught_failure_quirk(web: LocalServer, workdir: Path) -> None:
    """The test passes for unittest, but its testResult says Failure (FunkLoad quirk)."""
    test, sink = scenario("caught", web, workdir)
    result = run_test(test)
    assert result.wasSuccessful()
    assert sink.tests[-1]["result"] == "Failure"
    # Once a step failed, later responses are logged as Failure too.
    assert [(r["code"], r["result"]) for r in sink.responses] == [
        (404, "Failure"),
        (200, "Failure"),
    ]


def test_assertion_is_a_failure(web: LocalServer, workdir: Path) -> None:
    test, sink = scenario("assertion", web, workdir)
    result = run_test(test)
    assert len(result.failures) == 1 and "201" in result.failures[0][1]
    assert sink.tests[-1]["result"] == "Failure"
    assert sink.responses[-1]["result"] == "Successful"


def test_other_exception_is_a_unittest_failure_with_status_error(
    web: LocalServer, workdir: Path
) -> None:
    test, sink = scenario("exception", web, workdir)
    result = run_test(test)
    assert len(result.failures) == 1 and not result.errors  # quirk
    assert "KeyError" in result.failures[0][1]
    assert sink.tests[-1]["result"] == "Error"


def test_setup_error_writes_the_result_twice(web: LocalServer, workdir: Path) -> None:
    test, sink = scenario("setup_error", web, workdir)
    result = run_test(test)
    assert len(result.errors) == 1 and not result.failures
    assert [t["result"] for t in sink.tests] == ["Error", "Error"]  # FunkLoad quirk
    assert "setUp broke" in sink.tests[0]["traceback"]


def test_connection_refused_is_an_error_record(web: LocalServer, workdir: Path) -> None:
    test, sink = scenario("refused", web, workdir)
    test.refused_port = port = free_port()  # type: ignore[attr-defined]
    result = run_test(test)
    assert len(result.failures) == 1
    assert f"Can't load http://127.0.0.1:{port}/x." in result.failures[0][1]
    (error,) = sink.responses
    assert (error["result"], error["code"], error["url"]) == (
        "Error",
        -1,
        f"http://127.0.0.1:{port}/x",
    )
    assert error["description"] == "Refused"
    assert "Traceback" in error["traceback"]
    assert sink.tests[-1]["result"] == "Error"


def test_dns_failure_names_the_url(web: LocalServer, workdir: Path) -> None:
    test, sink = scenario("dns", web, workdir)
    with pytest.raises(OSError, match=r"Can't load http://no-such-host\.invalid/\.") as info:
        test.get("http://no-such-host.invalid/")
    assert "no-such-host.invalid" in str(info.value.__cause__)
    assert sink.responses[-1]["code"] == -1
    assert sink.responses[-1]["url"] == "http://no-such-host.invalid/"


def test_stop_on_fail_stops_the_result(web: LocalServer, workdir: Path) -> None:
    test, _ = scenario("http_failure", web, workdir, stop_on_fail=True)
    assert run_test(test).shouldStop is True
    test, _ = scenario("ok", web, workdir, stop_on_fail=True)
    assert run_test(test).shouldStop is False


def test_exists_and_other_verbs(web: LocalServer, workdir: Path) -> None:
    web.routes["/dav"] = lambda r: (207, [("Content-Type", "text/xml")], b"<multistatus/>")
    test, sink = make_test(Scenario, "test_it", workdir, url=web.url)
    assert test.exists(web.url + "/") is True
    assert test.exists(web.url + "/missing") is False
    assert test.step_success is True
    assert sink.responses[-1]["description"] == "Checking existence"
    test.head(web.url + "/")
    test.options(web.url + "/")
    test.method("lock", web.url + "/", params=[("a", "1")])
    test.propfind(web.url + "/dav", depth=1)
    assert [r.method for r in web.requests[-4:]] == ["HEAD", "OPTIONS", "LOCK", "PROPFIND"]
    assert web.requests[-2].body == b"a=1"
    assert web.requests[-1].header("depth") == "1"
    assert [r["type"] for r in sink.responses[-4:]] == ["head", "options", "lock", "PROPFIND"]
    test.get(web.url + "/")
    assert web.requests[-1].header("depth") is None  # removed after the propfind


def test_clear_context_resets_state(web: LocalServer, workdir: Path) -> None:
    test, _ = make_test(Scenario, "test_it", workdir, url=web.url)
    test.get(web.url + "/")
    test.setBasicAuth("a", "b")
    test.setHeader("X-Custom", "1")
    test.setUserAgent("Other")
    test.step_success = False
    test.test_status = "Failure"
    test.clearContext()
    assert (test.steps, test.total_pages, test.total_responses, test.total_time) == (0, 0, 0, 0)
    assert test.step_success is True and test.test_status == "Successful"
    assert test._authinfo is None and test._browser.authinfo is None
    assert test._browser.extra_headers == [["User-Agent", "FunkLoad/1.17.2"]]


def test_add_metadata_and_bench_hooks(web: LocalServer, workdir: Path) -> None:
    test, sink = make_test(Scenario, "test_it:0:0:0", workdir, url=web.url)
    test.addMetadata(build="1.2", env="staging")
    test.addMetadata(ns="extra", x=1)
    assert sink.configs == [("meta:build", "1.2"), ("meta:env", "staging"), ("extra:x", "1")]
    for hook in (test.setUpBench, test.tearDownBench, test.setUpCycle, test.tearDownCycle):
        assert hook() is None
    assert test.midCycle(0, 10) is None


def test_bench_mode_without_sink_records_nothing(web: LocalServer, workdir: Path) -> None:
    (workdir / "Scenario.conf").write_text(f"[main]\nurl = {web.url}/\n[bench]\nlog_to =\n")
    test = Scenario("test_it:1:2:3", SimpleNamespace())
    assert run_test(test).wasSuccessful()
    assert not (workdir / "funkload.xml").exists()


# -- functional-mode XML lines --------------------------------------------------------------


def test_functional_mode_writes_xml_lines(web: LocalServer, workdir: Path) -> None:
    result_path = workdir / "out" / "ftest.xml"
    (workdir / "Scenario.conf").write_text(
        f"[main]\nurl = {web.url}/\n[ftest]\nlog_to =\nresult_path = out/ftest.xml\n"
    )
    test = Scenario("test_it")
    test.scenario = "http_failure"  # type: ignore[attr-defined]
    assert test.result_path == str(result_path)
    run_test(test)
    testcase_module.close_functional_sinks()
    lines = result_path.read_text().splitlines()
    assert lines[0].startswith('<response cycle="001" cvus="000" thread="001" suite="Scenario"')
    assert 'result="Successful" url="/" code="200" description="Root"' in lines[0]
    assert 'result="Failure" url="/missing" code="404"' in lines[1]
    assert '<header name="x-why" value="gone" />' in "\n".join(lines)
    assert "<p>no such page</p>" in "\n".join(lines)
    assert lines[-1].startswith("<testResult ")
    assert 'result="Failure" steps="2"' in lines[-1]
    assert not any(line.startswith("<funkload") for line in lines)  # no root element


# -- xml-rpc --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def xmlrpc_server() -> Iterator[tuple[str, list[str | None]]]:
    auth_seen: list[str | None] = []

    class Handler(SimpleXMLRPCRequestHandler):
        def decode_request_content(self, data: bytes) -> bytes | None:
            auth_seen.append(self.headers.get("Authorization"))
            return super().decode_request_content(data)

    server = SimpleXMLRPCServer(
        ("127.0.0.1", 0), requestHandler=Handler, logRequests=False, allow_none=True
    )
    server.register_instance(Credentials())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", auth_seen
    server.shutdown()
    server.server_close()


def test_xmlrpc_calls_and_records(
    xmlrpc_server: tuple[str, list[str | None]], workdir: Path
) -> None:
    url, auth_seen = xmlrpc_server
    test, sink = make_test(Scenario, "test_it", workdir, url=url)
    assert "running" in test.xmlrpc(url, "getStatus", description="Status")
    assert test.xmlrpc(url, "listCredentials", ("admins",)) == [["alice", "a1"]]
    records = sink.responses
    assert [(r["type"], r["url"], r["code"], r["step"]) for r in records] == [
        ("xmlrpc", f"{url}#getStatus", 200, 1),
        ("xmlrpc", f"{url}#listCredentials", 200, 2),
    ]
    assert records[0]["description"] == "Status"
    assert test.total_xmlrpc == 2 and test.total_pages == 0
    test.setBasicAuth("user", "pwd")
    test.xmlrpc(url, "getStatus")
    assert auth_seen[-1] == "Basic dXNlcjpwd2Q="
    with pytest.raises(Exception, match="noSuchMethod"):
        test.xmlrpc(url, "noSuchMethod")
    assert (sink.responses[-1]["code"], sink.responses[-1]["result"]) == (-1, "Error")
    with pytest.warns(DeprecationWarning):
        test.xmlrpc_call(url, "getStatus")


def test_xmlrpc_credential_helpers(xmlrpc_server: tuple[str, list[str | None]]) -> None:
    from funkload.utils import (
        xmlrpc_get_credential,
        xmlrpc_get_seq,
        xmlrpc_list_credentials,
        xmlrpc_list_groups,
    )

    url, _ = xmlrpc_server
    host, port = url[len("http://") :].rstrip("/").split(":")
    assert xmlrpc_get_credential(host, port, "members") in {("bob", "b2"), ("carol", "c3")}
    assert len(xmlrpc_get_credential(host, port)) == 2
    assert xmlrpc_list_groups(host, port) == ["admins", "members"]
    assert xmlrpc_list_credentials(host, port) == ["alice", "bob", "carol"]
    assert xmlrpc_list_credentials(host, port, "admins") == [["alice", "a1"]]
    first = xmlrpc_get_seq(host, port)
    assert xmlrpc_get_seq(host, port) == first + 1
    with pytest.raises(OSError, match="No credential server reachable"):
        xmlrpc_list_groups("127.0.0.1", free_port())


# -- logging ------------------------------------------------------------------------------


def test_logging_prefix_levels_and_file(web: LocalServer, workdir: Path) -> None:
    conf = "[main]\nurl = {url}\n[ftest]\nlog_to = file\nlog_path = t.log\n[bench]\nlog_to = file\nlog_path = t.log\n"
    test, _ = make_test(Scenario, "test_it", workdir, url=web.url, conf=conf, debug_level=1)
    assert test.logger.name == "FunkLoad" and test.logger.level == logging.DEBUG
    test.logd("hello debug")
    test.logdd("hidden below level 2")
    test.logi("hello info")
    log = (workdir / "t.log").read_text()
    assert " DEBUG test_it: hello debug" in log
    assert " INFO test_it: hello info" in log
    assert "hidden" not in log
    bench, _ = make_test(Scenario, "test_it:0:1:0", workdir, url=web.url, conf=conf)
    assert bench.logger.level == logging.INFO
    bench.logd("silent in bench")
    bench.logi("loud in bench")
    log = (workdir / "t.log").read_text()
    assert "silent in bench" not in log and "test_it:0:1:0: loud in bench" in log


# -- helpers on the test case ---------------------------------------------------------------


def test_wait_until_available(web: LocalServer, workdir: Path) -> None:
    test, sink = make_test(Scenario, "test_it", workdir, url=web.url)
    test.waitUntilAvailable(web.url + "/", time_out=2, sleep_time=0.01)
    assert sink.responses == []  # not logged
    with pytest.raises(AssertionError, match="not available"):
        test.waitUntilAvailable(f"http://127.0.0.1:{free_port()}/", 0.05, 0.01)


def test_dump_directory(web: LocalServer, workdir: Path) -> None:
    web.routes["/feed.xml"] = lambda r: ok("<feed/>", "text/xml")
    web.routes["/style.css"] = lambda r: ok("p {}", "text/css")
    dump = workdir / "dump"
    test, _ = make_test(Scenario, "test_it", workdir, url=web.url, dump_dir=str(dump))
    test.get(web.url + "/")
    test.get(web.url + "/feed.xml")
    test.get(web.url + "/style.css")
    assert sorted(p.name for p in dump.iterdir()) == ["001.html", "002.xml", "003.css"]
    assert (dump / "001.html").read_text() == "root"


def test_comet_streams_bytes(web: LocalServer, workdir: Path) -> None:
    web.routes["/stream"] = lambda r: ok("abcdef")
    test, sink = make_test(Scenario, "test_it", workdir, url=web.url)
    chunks: list[bytes] = []

    def consumer(chunk: bytes) -> int:
        chunks.append(chunk)
        return 0 if len(chunks) == 3 else 1

    test.comet(web.url + "/stream", consumer, description="Stream").join(5)
    assert chunks == [b"a", b"b", b"c"]
    assert (sink.responses[-1]["type"], sink.responses[-1]["code"]) == ("GET", 200)


def test_loop_mode_replays_pages(
    web: LocalServer, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    web.routes["/a"] = lambda r: ok("a")
    web.routes["/b"] = lambda r: ok("b")
    test, _ = make_test(Scenario, "test_it", workdir, url=web.url, loop_steps="2", loop_number=3)
    test.get(web.url + "/a")
    test.get(web.url + "/b")
    assert [r.path for r in web.requests] == ["/a", "/b", "/b", "/b", "/b"]
    assert "End of loop: 3 pages rendered in" in capsys.readouterr().out


# -- unittest names removed in Python 3.12 ------------------------------------------------


def test_removed_unittest_aliases(web: LocalServer, workdir: Path) -> None:
    test, _ = make_test(Scenario, "test_it", workdir, url=web.url)
    test.assert_(True)
    test.failUnless(1)
    test.failIf(0)
    test.assertEquals(1, 1)
    test.failUnlessEqual("a", "a")
    test.assertNotEquals(1, 2)
    test.failIfEqual(1, 2)
    test.assertAlmostEquals(1.0, 1.00000001)
    test.failUnlessAlmostEqual(1.0, 1.00000001)
    test.assertNotAlmostEquals(1.0, 1.1)
    test.failIfAlmostEqual(1.0, 1.1)
    test.assertRegexpMatches("abc", "b")
    test.assertNotRegexpMatches("abc", "z")
    test.assertDictContainsSubset({"a": 1}, {"a": 1, "b": 2})
    with test.failUnlessRaises(KeyError):
        raise KeyError
    with test.assertRaisesRegexp(ValueError, "bad"):
        raise ValueError("bad value")
    for failing in (
        lambda: test.assert_(False),
        lambda: test.assertEquals(1, 2),
        lambda: test.failIf(True),
        lambda: test.assertDictContainsSubset({"a": 2}, {"a": 1}),
    ):
        with pytest.raises(AssertionError):
            failing()
    # defined on our class, so they survive Python 3.12's removal from unittest
    for name in ("assert_", "assertEquals", "failUnless", "assertRaisesRegexp"):
        assert name in vars(fl.FunkLoadTestCase)


def test_plain_skip_and_expected_failure(web: LocalServer, workdir: Path) -> None:
    class Marked(fl.FunkLoadTestCase):
        @unittest.skip("not today")
        def test_skipped(self) -> None:
            raise AssertionError

        @unittest.expectedFailure
        def test_expected(self) -> None:
            self.fail("known")

    skipped, sink = make_test(Marked, "test_skipped", workdir, url=web.url)
    result = run_test(skipped)
    assert result.skipped and sink.tests == []
    expected, _ = make_test(Marked, "test_expected", workdir, url=web.url)
    assert run_test(expected).expectedFailures
