"""The FunkLoad API tests' tools: their stored test files, a test case run in-process
with a list sink, a fast local server, a stand-in credential server."""

from __future__ import annotations

import os
import shutil
import unittest
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from marteau.funkload import (
    testcase as fl,
)  # the module: pytest would build a TestCase class found here
from marteau.results.records import RESPONSE_ARGS, TEST_RESULT_ARGS
from tests.servers import LocalServer

DATA = Path(__file__).parents[1] / "data" / "funkload_tests"
# Test files are stored as demo_*.py so that pytest does not collect them (and
# the syntax error as .txt so that no tool parses it); `install` restores the
# names a FunkLoad user would run.
STORED = {
    "test_Simple.py": "demo_Simple.py",
    "test_Credential.py": "demo_Credential.py",
    "test_Target.py": "demo_Target.py",
    "test_dummy.py": "demo_dummy.py",
    "test_failing_import.py": "demo_failing_import.py",
    "syntax_error.py": "demo_syntax_error.py.txt",
}


class ListSink:
    """A `ResultSink` that keeps everything in lists, for assertions."""

    recording = True

    def __init__(self) -> None:
        self.responses: list[dict[str, Any]] = []
        self.tests: list[dict[str, Any]] = []
        self.configs: list[tuple[str, str]] = []

    def response(self, *fields: Any, **named: Any) -> None:
        self.responses.append(dict(zip(RESPONSE_ARGS, fields, strict=False), **named))

    def test_result(self, *fields: Any, **named: Any) -> None:
        self.tests.append(dict(zip(TEST_RESULT_ARGS, fields, strict=False), **named))

    def config(self, key: str, value: str) -> None:
        self.configs.append((key, value))


def install(directory: Path, *names: str) -> Path:
    """Copy test files and confs into ``directory`` under their FunkLoad names."""
    for name in names:
        shutil.copy(DATA / STORED.get(name, name), directory / name)
    return directory


def fast_server(server: LocalServer) -> LocalServer:
    """No Nagle on the test server: avoids 40 ms delayed-ACK stalls per keep-alive request."""
    server._httpd.RequestHandlerClass.disable_nagle_algorithm = True  # type: ignore[attr-defined]
    return server


def serve() -> Iterator[LocalServer]:
    """Body of the ``web`` fixtures: a started local server without Nagle."""
    with LocalServer() as local:
        yield fast_server(local)


def write_conf(directory: Path, class_name: str, text: str) -> Path:
    path = directory / f"{class_name}.conf"
    path.write_text(text)
    return path


QUIET_CONF = """\
[main]
url = {url}

[ftest]
log_to =
result_path = {result}

[bench]
log_to =
result_path = {result}
"""


def make_test(
    klass: type[fl.FunkLoadTestCase],
    method: str,
    directory: Path,
    url: str = "http://127.0.0.1:9/",
    conf: str | None = None,
    sink: ListSink | None = None,
    **options: Any,
) -> tuple[fl.FunkLoadTestCase, ListSink]:
    """An instance with its conf in ``directory`` (which must be the CWD) and a list sink."""
    assert Path(os.getcwd()) == directory, "chdir to the conf directory first"
    text = conf if conf is not None else QUIET_CONF
    write_conf(directory, klass.__name__, text.format(url=url, result=directory / "r.xml"))
    sink = sink or ListSink()
    test = klass(method, SimpleNamespace(marteau_sink=sink, **options))
    return test, sink


def run_test(test: unittest.TestCase) -> unittest.TestResult:
    result = unittest.TestResult()
    test.run(result)
    return result


class Credentials:
    """Like FunkLoad's credential server: round-robin logins per group."""

    def __init__(self) -> None:
        self.users = {"alice": "a1", "bob": "b2", "carol": "c3"}
        self.groups = {"admins": ["alice"], "members": ["bob", "carol"]}
        self.next = 0
        self.seq = 0

    def getStatus(self) -> str:  # noqa: N802
        return "Credential server running"

    def getCredential(self, group: str | None = None) -> list[str]:  # noqa: N802
        logins = self.groups[group] if group else sorted(self.users)
        login = logins[self.next % len(logins)]
        self.next += 1
        return [login, self.users[login]]

    def listCredentials(self, group: str | None = None) -> list[Any]:  # noqa: N802
        if group is None:
            return sorted(self.users)
        return [[login, self.users[login]] for login in self.groups[group]]

    def listGroups(self) -> list[str]:  # noqa: N802
        return sorted(self.groups)

    def getSeq(self) -> int:  # noqa: N802
        self.seq += 1
        return self.seq
