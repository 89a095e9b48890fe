"""`marteau record --har`: HAR files become FunkLoad tests; hostile HARs stay data.

The generated modules are compiled, inspected with `ast` and run with
`marteau test` against a real server on 127.0.0.1, which checks that every
recorded value arrives exactly as recorded.
"""

from __future__ import annotations

import ast
import json
import os
import stat
from pathlib import Path
from urllib.parse import parse_qsl, quote

import pytest
from click.testing import CliRunner

from marteau.funkload.config import FunkLoadConfig
from marteau.record.codegen import module_names, module_source
from marteau.record.command import record_command
from marteau.record.session import Page, Recording, Secret, UploadFile
from tests.record_site import entry, form, recorded_calls, write_har
from tests.servers import LocalServer, ok
from tests.support.commands import marteau_test

EVIL = "__import__('os').system('touch pwned')"
EVIL_QUERY = quote(EVIL, safe="()'")
# Calls a generated module may make: anything else means recorded data became code.
ALLOWED_CALLS = {
    "self.conf_get",
    "self.get",
    "self.post",
    "self.put",
    "self.delete",
    "self.method",
    "Data",
    "Upload",
    "unittest.main",
}


def record(workdir: Path, *args: str):  # type: ignore[no-untyped-def]
    here = os.getcwd()
    os.chdir(workdir)
    try:
        return CliRunner().invoke(record_command, list(args), catch_exceptions=False)
    finally:
        os.chdir(here)


def calls_in(source: str) -> set[str]:
    return {
        ast.unparse(node.func) for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)
    }


def session(url: str) -> list[dict]:
    """A login session: a page, its resources, another host, a login, a redirect, a page after."""
    login = "user=alice&password=hunter2&remember=on"
    return [
        entry("GET", f"{url}/", started=0),
        entry("GET", f"{url}/static/logo.png", mime="image/png", started=0.1),
        entry("GET", f"{url}/app", mime="application/javascript", started=0.1),
        entry("GET", "http://127.0.0.2:9/tracker.gif", mime="image/gif", started=0.2),
        entry("GET", "http://127.0.0.2:9/beacon", mime="text/plain", started=0.2),
        entry(
            "POST",
            f"{url}/login",
            status=302,
            mime="text/plain",
            started=2.5,
            post=form(login),
            redirectURL="/account",
        ),
        entry("GET", f"{url}/account", started=2.6),
        entry("GET", f"{url}/favicon.ico", status=404, started=2.7),
        entry("GET", f"{url}/orders?page=2", started=6.0),
        entry("GET", f"{url}/gone", status=404, started=7.0),
    ]


def test_a_session_becomes_fl_record_shaped_test_and_conf(tmp_path: Path) -> None:
    url = "http://127.0.0.1:8123"
    har = write_har(tmp_path / "s.har", session(url))
    result = record(tmp_path, "--har", str(har), "foo_bar")
    assert result.exit_code == 0, result.output
    module = (tmp_path / "test_FooBar.py").read_text()
    conf_path = tmp_path / "FooBar.conf"
    assert "class FooBar(FunkLoadTestCase):" in module
    assert "def test_foo_bar(self):" in module
    calls = recorded_calls(module)
    assert calls == [("get", "/"), ("post", "/login"), ("get", "/orders?page=2"), ("get", "/gone")]
    assert "description='Post /login'" in module
    assert "['user', 'alice']," in module and "['remember', 'on']," in module
    assert "['password', self.conf_get('secrets', 'password')]," in module
    assert "hunter2" not in module
    assert "ok_codes=[404]" in module  # the page answered 404 when recorded
    assert "#   http://127.0.0.2:9 (2)" in module  # other hosts listed, not requested
    assert "# think time: 3.3 s" in module  # /orders started 3.3 s after the redirect ended
    compile(module, "test_FooBar.py", "exec")
    conf = FunkLoadConfig(str(conf_path))
    assert conf.get("main", "url") == url
    assert conf.get("secrets", "password") == "hunter2"
    assert conf.get("bench", "sleep_time_max") == "3.3"
    assert conf.get("ftest", "sleep_time_max") == "0"
    assert stat.S_IMODE(conf_path.stat().st_mode) & 0o077 == 0  # it holds a secret
    assert "2 pages" not in result.output and "4 pages" in result.output


def test_the_generated_test_replays_hostile_values_verbatim(tmp_path: Path) -> None:
    """Quotes, newlines, triple quotes and code in URLs and forms end up as inert data."""
    seen: list[tuple[str, str, bytes]] = []

    def keep(request):  # type: ignore[no-untyped-def]
        seen.append((request.method, request.path, request.body))
        return ok("<html>ok</html>", "text/html")

    with LocalServer() as server:
        evil_path = '/q\'"""x'
        for path in ("/", evil_path, "/form", "/api", "/secret"):
            server.routes[path] = keep
        values = ["line1\nline2", 'say """hi""" and \'bye\'', EVIL, "back\\slash", "é €"]
        body = json.dumps({"code": EVIL, "quote": '"""'})
        entries = [
            entry("GET", f"{server.url}/?x={EVIL_QUERY}", started=0),
            entry("GET", f"{server.url}{evil_path}", started=1),
            entry(
                "POST",
                f"{server.url}/form",
                started=2,
                post={
                    "mimeType": "application/x-www-form-urlencoded",
                    "params": [{"name": f"f{i}", "value": v} for i, v in enumerate(values)]
                    + [{"name": "na\nme'\"", "value": "v"}],
                },
            ),
            entry(
                "PUT",
                f"{server.url}/api",
                started=3,
                post={"mimeType": "application/json", "text": body},
            ),
            entry(
                "POST",
                f"{server.url}/secret",
                started=4,
                post=form("token=a%0Ab"),
            ),
        ]
        har = write_har(tmp_path / "evil.har", entries)
        result = record(tmp_path, "--har", str(har), "evil")
        assert result.exit_code == 0, result.output
        assert "Warning: [secrets] token" in result.output  # a line break cannot go in a conf
        module = (tmp_path / "test_Evil.py").read_text()
        assert calls_in(module) <= ALLOWED_CALLS, calls_in(module) - ALLOWED_CALLS
        conf_text = (tmp_path / "Evil.conf").read_text()
        conf_text = conf_text.replace("token =\n", "token = filled in\n")
        (tmp_path / "Evil.conf").write_text(conf_text)
        run = marteau_test(tmp_path, "test_Evil.py")
        assert run.returncode == 0, run.stdout + run.stderr
    assert not (tmp_path / "pwned").exists()
    assert [(method, path) for method, path, _ in seen] == [
        ("GET", f"/?x={EVIL_QUERY}"),
        ("GET", '/q\'"""x'),
        ("POST", "/form"),
        ("PUT", "/api"),
        ("POST", "/secret"),
    ]
    posted = parse_qsl(seen[2][2].decode(), keep_blank_values=True)
    assert posted == [(f"f{i}", v) for i, v in enumerate(values)] + [("na\nme'\"", "v")]
    assert json.loads(seen[3][2]) == {"code": EVIL, "quote": '"""'}
    assert parse_qsl(seen[4][2].decode()) == [("token", "filled in")]


def test_methods_uploads_and_bodies_run_against_the_server(tmp_path: Path) -> None:
    got: list[tuple[str, str | None, bytes]] = []

    def keep(request):  # type: ignore[no-untyped-def]
        got.append((request.method, request.header("Content-Type"), request.body))
        return ok("<html>ok</html>", "text/html")

    with LocalServer() as server:
        server.routes["/r"] = keep
        multipart = {
            "mimeType": "multipart/form-data; boundary=XyZ",
            "params": [
                {"name": "title", "value": "report"},
                {
                    "name": "file",
                    "fileName": "C:\\Users\\me\\..\\notes.txt",
                    "contentType": "text/plain",
                },
            ],
        }
        entries = [
            entry("GET", f"{server.url}/r", started=0),
            entry("POST", f"{server.url}/r", started=1, post=multipart),
            entry("DELETE", f"{server.url}/r", started=2),
            entry(
                "PATCH",
                f"{server.url}/r",
                started=3,
                post=form("a=1&a=2"),
            ),
        ]
        har = write_har(tmp_path / "m.har", entries)
        result = record(tmp_path, "--har", str(har), "verbs")
        assert result.exit_code == 0, result.output
        module = (tmp_path / "test_Verbs.py").read_text()
        assert "from webunit.utility import Upload" in module
        assert "['file', Upload('notes.txt')]," in module
        assert "self.method('PATCH'," in module
        (tmp_path / "notes.txt").write_text("the notes")
        run = marteau_test(tmp_path, "test_Verbs.py")
        assert run.returncode == 0, run.stdout + run.stderr
    assert [method for method, _, _ in got] == ["GET", "POST", "DELETE", "PATCH"]
    assert got[1][1].startswith("multipart/form-data")
    assert b'filename="notes.txt"' in got[1][2] and b"the notes" in got[1][2]
    assert got[3][2] == b"a=1&a=2"


def test_without_a_name_the_calls_go_to_stdout(tmp_path: Path) -> None:
    har = write_har(tmp_path / "s.har", session("http://127.0.0.1:8123"))
    result = record(tmp_path, "--har", str(har))
    assert result.exit_code == 0, result.output
    assert "self.post(" in result.output and "hunter2" not in result.output
    assert "Add to the conf, section [secrets]: password" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.har"]


def test_password_inputs_of_recorded_pages_are_secrets(tmp_path: Path) -> None:
    url = "http://127.0.0.1:8123"
    page = "<html><form><input name='login'><INPUT TYPE=Password name='code'></form></html>"
    entries = [
        entry("GET", f"{url}/login", started=0, content={"mimeType": "text/html", "text": page}),
        entry(
            "POST",
            f"{url}/login",
            started=1,
            post=form("login=bob&code=1234"),
        ),
    ]
    result = record(tmp_path, "--har", str(write_har(tmp_path / "s.har", entries)), "pin")
    assert result.exit_code == 0, result.output
    module = (tmp_path / "test_Pin.py").read_text()
    assert "['code', self.conf_get('secrets', 'code')]," in module and "1234" not in module
    assert FunkLoadConfig(str(tmp_path / "Pin.conf")).get("secrets", "code") == "1234"


def broken(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def good_entry() -> dict:
    return entry("GET", "http://127.0.0.1:1/")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", ":1:2: not JSON"),
        ("[" * 100_000, "nested too deeply"),
        ("[]", "(top): expected an object"),
        ("{}", ": log: missing"),
        ('{"log": {"entries": {}}}', "log.entries: expected a list, got dict"),
        ('{"log": {"entries": [1]}}', "log.entries[0]: expected an object"),
        (
            json.dumps(
                {"log": {"entries": [good_entry(), {**good_entry(), "request": {"method": "GET"}}]}}
            ),
            "log.entries[1].request.url: missing",
        ),
        (
            json.dumps(
                {"log": {"entries": [{**good_entry(), "request": {"method": "G T", "url": "x"}}]}}
            ),
            "log.entries[0].request.method: not an HTTP method",
        ),
        (
            json.dumps({"log": {"entries": [{**good_entry(), "startedDateTime": "yesterday"}]}}),
            "log.entries[0].startedDateTime: not an ISO 8601 date",
        ),
        (
            json.dumps({"log": {"entries": [{**good_entry(), "response": {"status": "200"}}]}}),
            "log.entries[0].response.status: expected an integer, got str",
        ),
        (
            json.dumps(
                {
                    "log": {
                        "entries": [
                            entry(
                                "POST",
                                "http://127.0.0.1:1/",
                                post={"mimeType": "x", "params": [{"name": 3}]},
                            )
                        ]
                    }
                }
            ),
            "log.entries[0].request.postData.params[0].name: expected a string, got int",
        ),
        (
            json.dumps({"log": {"entries": [entry("GET", "http://127.0.0.1:1@evil\x00/")]}}),
            "log.entries[0].request.url: not a host[:port]",
        ),
        (
            json.dumps({"log": {"entries": [entry("GET", "data:image/png;base64,AA==")]}}),
            "no HTTP request",
        ),
        (
            json.dumps(
                {"log": {"entries": [entry("GET", "http://127.0.0.1:1/a.png", mime="image/png")]}}
            ),
            "no page recorded",
        ),
    ],
)
def test_bad_har_files_are_refused_naming_the_field(
    tmp_path: Path, content: str, message: str
) -> None:
    har = broken(tmp_path, "bad.har", content)
    result = record(tmp_path, "--har", str(har), "foo")
    assert result.exit_code == 2, result.output
    assert message in result.output and str(har) in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.har"]


def test_a_har_larger_than_the_bound_is_not_read(tmp_path: Path) -> None:
    har = write_har(tmp_path / "s.har", session("http://127.0.0.1:8123"))
    result = record(tmp_path, "--har", str(har), "--max-har-size", "100", "big")
    assert result.exit_code == 2
    assert "bytes, more than the 100 a HAR may have" in result.output
    missing = record(tmp_path, "--har", str(tmp_path / "nope.har"), "big")
    assert missing.exit_code == 2 and "nope.har: cannot read: No such file" in missing.output


def test_existing_files_are_never_overwritten(tmp_path: Path) -> None:
    har = write_har(tmp_path / "s.har", session("http://127.0.0.1:8123"))
    (tmp_path / "FooBar.conf").write_text("mine")
    result = record(tmp_path, "--har", str(har), "foo-bar")
    assert result.exit_code == 2 and "FooBar.conf already exists: not overwritten" in result.output
    assert (tmp_path / "FooBar.conf").read_text() == "mine"
    assert not (tmp_path / "test_FooBar.py").exists()


@pytest.mark.parametrize("name", ["1abc", "a b", "../x", "none", "x" * 101, "a;b"])
def test_bad_test_names_are_refused(tmp_path: Path, name: str) -> None:
    har = write_har(tmp_path / "s.har", session("http://127.0.0.1:8123"))
    result = record(tmp_path, "--har", str(har), name)
    assert result.exit_code == 2 and "test name" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.har"]


def test_redirect_hops_are_left_to_the_browser(tmp_path: Path) -> None:
    """307 keeps the method, 302 turns to GET, chains follow, a self-redirect is one page."""
    url = "http://127.0.0.1:8123"
    entries = [
        entry("POST", f"{url}/a", status=307, started=0, post=form("x=1"), redirectURL="/b"),
        entry(
            "POST", f"{url}/b", status=302, started=0.1, post=form("x=1"), redirectURL=f"{url}/c"
        ),
        entry("GET", f"{url}/c", started=0.2),
        entry("GET", f"{url}/loop", status=302, started=1, redirectURL="/loop"),
        entry("GET", f"{url}/loop", started=1.1),
        entry("GET", f"{url}/c", started=2),
    ]
    result = record(tmp_path, "--har", str(write_har(tmp_path / "r.har", entries)))
    assert result.exit_code == 0, result.output
    calls = recorded_calls(result.output)
    assert calls == [("post", "/a"), ("get", "/loop"), ("get", "/c")]
    assert "# 3 redirects: followed by the browser." in result.output


def test_any_string_reaches_the_module_as_the_same_literal() -> None:
    """Below the HAR reader too: line breaks, quotes and code in every recorded string."""
    nasty = ['a\nb\r\n"""', "x'''\\", EVIL, "\u2028\x00\ud800é", '"; import os; "']
    pages = [
        Page(
            method="POST",
            path=f"/p{text}",
            description=text,
            think_time=1.0,
            params=[(text, text), (text, UploadFile(text)), (text, Secret("k"))],
        )
        for text in nasty
    ] + [Page(method="PUT", path="/d", description="d", think_time=0, data=(EVIL, EVIL))]
    recording = Recording(server_url="http://127.0.0.1:1", pages=pages, uploads=nasty)
    recording.other_hosts["http://127.0.0.2:9"] = 1
    source = module_source(recording, module_names("nasty"))
    tree = ast.parse(source)
    assert calls_in(source) <= ALLOWED_CALLS
    constants = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)}
    for text in nasty:
        assert {text, f"/p{text}"} <= constants
    assert EVIL in constants


@pytest.mark.parametrize("value", ["a\nb", "x ;y", "%(main)s", " padded ", "\ud800"])
def test_a_secret_the_conf_cannot_hold_is_left_to_fill_in(tmp_path: Path, value: str) -> None:
    url = "http://127.0.0.1:8123"
    post = {
        "mimeType": "application/x-www-form-urlencoded",
        "params": [{"name": "password", "value": value}],
    }
    entries = [entry("POST", f"{url}/login", post=post)]
    result = record(tmp_path, "--har", str(write_har(tmp_path / "s.har", entries)), "odd")
    assert result.exit_code == 0, result.output
    assert "Warning: [secrets] password: the recorded value" in result.output
    assert FunkLoadConfig(str(tmp_path / "Odd.conf")).get("secrets", "password") == ""
