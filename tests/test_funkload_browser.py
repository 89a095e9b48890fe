"""The FunkLoad browser on the wire: headers, params, bodies, redirects, cookies, links."""

from __future__ import annotations

import email.parser
import email.policy
import gzip
import time
from collections.abc import Iterator
from http.cookies import Morsel
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from funkload.utils import Data
from marteau.funkload import (
    testcase as fl,
)  # the module: pytest would build a TestCase class found here
from marteau.funkload.browser import page_links
from marteau.funkload.encoding import BOUNDARY
from tests.servers import LocalServer, Request, free_port, ok
from tests.support.funkload import ListSink, make_test, run_test, serve
from webunit.utility import Upload


class Case(fl.FunkLoadTestCase):
    """A test case used as a browser; tests call its methods directly."""

    __test__ = False  # a fixture class, not for pytest to collect

    def test_nothing(self) -> None:
        pass


@pytest.fixture(scope="module")
def shared_web() -> Iterator[LocalServer]:
    yield from serve()


@pytest.fixture
def web(shared_web: LocalServer) -> LocalServer:
    """One server for the module (stopping one costs 0.5 s); fresh routes per test."""
    shared_web.routes.clear()
    shared_web.requests.clear()
    return shared_web


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def case(web: LocalServer, workdir: Path) -> Case:
    test, _ = make_test(Case, "test_nothing", workdir, url=web.url)
    return test  # type: ignore[return-value]


def sink_of(case: fl.FunkLoadTestCase) -> ListSink:
    return case._sink  # type: ignore[no-any-return]


def names(request: Request) -> list[str]:
    return [name for name, _ in request.headers]


# -- request headers ---------------------------------------------------------------------


def test_header_order_on_the_wire(case: Case, web: LocalServer) -> None:
    web.routes["/form"] = lambda r: ok("done")
    case.setBasicAuth("user", "pwd")
    case.addHeader("X-One", "1")
    case.addHeader("X-Two", "2")
    case._browser.cookies["127.0.0.1"] = {"/": {}}
    morsel: Morsel = Morsel()
    morsel.set("a", "1", "1")
    case._browser.cookies["127.0.0.1"]["/"]["a"] = morsel
    case.post(web.url + "/form", params=[["k", "v w"]])
    request = web.requests[-1]
    assert request.headers == [
        ("Content-type", "application/x-www-form-urlencoded"),
        ("Content-length", "5"),
        ("Authorization", "Basic dXNlcjpwd2Q="),
        ("Host", f"127.0.0.1:{web.port}"),
        ("User-Agent", "FunkLoad/1.17.2"),
        ("X-One", "1"),
        ("X-Two", "2"),
        ("Cookie", "a=1;"),
    ]
    assert request.body == b"k=v+w"


def test_localhost_is_reached_as_127_0_0_1(case: Case, web: LocalServer) -> None:
    web.routes["/"] = lambda r: ok("root")
    response = case.get(f"http://localhost:{web.port}/")
    assert web.requests[-1].header("Host") == f"127.0.0.1:{web.port}"
    assert response.server == "127.0.0.1"
    assert repr(response) == (
        f'<response url="http://127.0.0.1:{web.port}/" code="200" message="OK" />'
    )


def test_user_host_header_replaces_the_automatic_one(case: Case, web: LocalServer) -> None:
    web.routes["/"] = lambda r: ok("root")
    case.setHeader("Host", "example.test")
    case.get(web.url + "/")
    assert names(web.requests[-1]).count("Host") == 1
    assert web.requests[-1].header("Host") == "example.test"


def test_set_add_del_and_clear_headers(case: Case, web: LocalServer) -> None:
    web.routes["/"] = lambda r: ok("root")
    case.setHeader("X-A", "1")
    case.setHeader("X-A", "2")  # replaces
    case.addHeader("X-B", "1")
    case.addHeader("X-B", "2")  # duplicates allowed
    case.setHeader("x-a", "lower")  # case-sensitive match: a new header
    case.get(web.url + "/", load_auto_links=False)
    sent = web.requests[-1].headers
    assert ("X-A", "2") in sent and ("x-a", "lower") in sent
    assert [v for k, v in sent if k == "X-B"] == ["1", "2"]
    case.delHeader("X-A")
    case.clearHeaders()
    case.get(web.url + "/")
    sent_names = names(web.requests[-1])
    assert "User-Agent" not in sent_names and "X-B" not in sent_names
    assert "Referer" not in sent_names  # clearHeaders removed it too
    case.clearContext()
    case.get(web.url + "/")
    assert web.requests[-1].header("User-Agent") == "FunkLoad/1.17.2"


def test_user_agent_from_conf_and_set_user_agent(web: LocalServer, workdir: Path) -> None:
    conf = "[main]\nurl = {url}\nuser_agent = Marteau-Test/1\n[ftest]\nlog_to =\n"
    case, _ = make_test(Case, "test_nothing", workdir, url=web.url, conf=conf)
    web.routes["/"] = lambda r: ok("root")
    case.get(web.url + "/")
    assert web.requests[-1].header("User-Agent") == "Marteau-Test/1"
    case.setUserAgent("Other/2")
    case.get(web.url + "/")
    assert web.requests[-1].header("User-Agent") == "Other/2"


# -- params and bodies ---------------------------------------------------------------------


def test_get_params_formats(case: Case, web: LocalServer) -> None:
    web.routes["/p"] = lambda r: ok("p")
    case.get(web.url + "/p", params={"a": "1 2"})
    assert web.requests[-1].path == "/p?a=1+2"
    case.get(
        web.url + "/p",
        params=[["a", "1"], ("b", ["x", "y"]), ("c", {"on": 1, "off": 0, "yes": True})],
    )
    assert web.requests[-1].path == "/p?a=1&b=x&b=y&c=on&c=yes"
    # The URL is not checked for an existing `?` (FunkLoad's behaviour).
    response = case.get(web.url + "/p?z=0", params=[("a", "1")])
    assert web.requests[-1].path == "/p?z=0?a=1"
    assert response.url == "/p?z=0?a=1"


def test_post_params_formats(case: Case, web: LocalServer) -> None:
    web.routes["/p"] = lambda r: ok("p")
    case.post(web.url + "/p", params=[["a", "1"], ["b", ["x", "y"]], ("c", {"on": 1, "no": 0})])
    request = web.requests[-1]
    assert request.method == "POST"
    assert parse_qsl(request.body.decode()) == [("a", "1"), ("b", "x"), ("b", "y"), ("c", "on")]
    assert request.header("Content-type") == "application/x-www-form-urlencoded"
    case.post(web.url + "/p", params={"k": "é"})
    assert web.requests[-1].body == b"k=%C3%A9"


def test_data_body_is_sent_verbatim(case: Case, web: LocalServer) -> None:
    web.routes["/api"] = lambda r: ok("{}")
    payload = '{"a": [1, 2]}'
    case.post(web.url + "/api", params=Data("application/json", payload))
    request = web.requests[-1]
    assert request.body == payload.encode()
    assert request.headers[:2] == [
        ("Content-type", "application/json"),
        ("Content-length", str(len(payload))),
    ]
    case.put(web.url + "/api", params=Data(None, b"raw"))
    request = web.requests[-1]
    assert request.method == "PUT" and request.body == b"raw"
    assert request.header("Content-type") is None
    assert request.header("Content-length") == "3"
    assert repr(Data("text/xml", "<a/>")) == "[User data text/xml]"


def test_get_with_data_puts_it_in_the_query_as_typed(case: Case, web: LocalServer) -> None:
    """FunkLoad's GET appends a Data's text after "?"; bytes are that text, with what a
    URL cannot hold percent-encoded (not the `b'...'` of their repr)."""
    web.routes["/q"] = lambda r: ok("q")
    for data, path in [
        ("a=1&b=%20x", "/q?a=1&b=%20x"),
        (b"a=1&b=%20x;c=d/e?f", "/q?a=1&b=%20x;c=d/e?f"),
        (b"k=\xc3\xa9 z", "/q?k=%C3%A9%20z"),
    ]:
        case.get(web.url + "/q", params=Data(None, data))
        assert web.requests[-1].path == path


def test_no_params_means_no_body_and_no_content_headers(case: Case, web: LocalServer) -> None:
    web.routes["/p"] = lambda r: ok("p")
    for call in (case.post, case.put):
        call(web.url + "/p")
        request = web.requests[-1]
        assert request.body == b""
        assert request.header("Content-type") is None
        assert request.header("Content-length") is None
    case.post(web.url + "/p", params=[])  # empty but not None: an empty form
    assert web.requests[-1].header("Content-length") == "0"
    case.delete(web.url + "/p")
    assert web.requests[-1].method == "DELETE"
    assert web.requests[-1].header("Content-length") is None


def test_multipart_upload(case: Case, web: LocalServer, workdir: Path) -> None:
    web.routes["/upload"] = lambda r: ok("stored")
    image = workdir / "icon.png"
    upload = Upload(str(image))
    image.write_bytes(b"\x89PNG-late")  # read at send time, not when Upload was made
    case.post(
        web.url + "/upload",
        params=[["title", "My app"], ["icon", upload], ["empty", Upload("")]],
    )
    request = web.requests[-1]
    content_type = request.header("Content-type")
    assert content_type == f"multipart/form-data; boundary={BOUNDARY}"
    assert request.header("Content-length") == str(len(request.body))
    assert request.body.startswith(f"--{BOUNDARY}\r\n".encode())
    assert request.body.endswith(f"--{BOUNDARY}--\r\n".encode())
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + request.body
    )
    parts = list(message.iter_parts())
    assert [p.get_param("name", header="content-disposition") for p in parts] == [
        "title",
        "icon",
        "empty",
    ]
    assert parts[0].get_content() == "My app"
    assert parts[1].get_filename() == "icon.png"
    assert parts[1].get_content_type() == "image/png"
    assert parts[1].get_payload(decode=True) == b"\x89PNG-late"
    assert parts[2].get_filename() == ""
    assert parts[2].get_payload(decode=True) == b""


def test_multipart_body_is_funkload_mime_encode(
    case: Case, web: LocalServer, workdir: Path
) -> None:
    """FunkLoad's mimeEncode, byte for byte: an empty name is skipped, a value ending in
    CR gets one more CRLF, the parts are joined by CRLF (none before the first)."""
    web.routes["/upload"] = lambda r: ok("stored")
    (workdir / "note.txt").write_bytes(b"line\r")
    case.post(
        web.url + "/upload",
        params=[
            ["a", "1"],
            ["", "dropped"],
            ["cr", "ends\r"],
            ["f", Upload("note.txt")],
            ["none", Upload("")],
        ],
    )
    boundary = b"--------------GHSKFJDLGDS7543FJKLFHRE75642756743254"
    expected = (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="a"\r\n'
        b"\r\n"
        b"1\r\n"
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="cr"\r\n'
        b"\r\n"
        b"ends\r\r\n"
        b"\r\n"
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="f"; filename="note.txt"\r\n'
        b"Content-Type: text/plain\r\n"
        b"\r\n"
        b"line\r\r\n"
        b"\r\n"
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="none"; filename=""\r\n'
        b"\r\n"
        b"\r\n"
        b"--" + boundary + b"--\r\n"
    )
    assert web.requests[-1].body == expected
    assert web.requests[-1].header("Content-length") == str(len(expected))


def test_multipart_body_with_only_unnamed_params(case: Case, web: LocalServer) -> None:
    web.routes["/upload"] = lambda r: ok("stored")
    case.post(web.url + "/upload", params=[["", Upload("")]])
    assert web.requests[-1].body == f"\r\n--{BOUNDARY}--\r\n".encode()


def test_debug_headers_prints_funkload_lines(
    case: Case, web: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    web.routes["/p"] = lambda r: ok("done")
    case.debugHeaders()
    case.post(web.url + "/p", params=[["k", "v"]])
    printed = capsys.readouterr().out.splitlines()
    assert printed == [
        f"Putting header -- {name}: {value}" for name, value in web.requests[-1].headers
    ]
    assert printed[0] == "Putting header -- Content-type: application/x-www-form-urlencoded"
    case.debugHeaders(False)
    case.get(web.url + "/p")
    assert "Putting header" not in capsys.readouterr().out


# -- redirects -----------------------------------------------------------------------------

VERBS = {"get": "GET", "post": "POST", "put": "PUT", "delete": "DELETE"}
HANDLERS = {"get": "/_getter", "post": "/_poster", "put": "/_putter", "delete": "/_deleter"}


def redirect_app(web: LocalServer) -> None:
    """FunkLoad's django_demo as a stdlib app: /methods/<verb>?code=N → /_<verb>er."""

    def methods(verb: str):  # type: ignore[no-untyped-def]
        def route(request: Request):  # type: ignore[no-untyped-def]
            code = int(dict(parse_qsl(urlsplit(request.path).query)).get("code", "302"))
            return code, [("Location", HANDLERS[verb])], b""

        return route

    def handler(verb: str):  # type: ignore[no-untyped-def]
        def route(request: Request):  # type: ignore[no-untyped-def]
            if request.method != VERBS[verb]:
                return 405, [("Content-Type", "text/plain")], b"wrong verb"
            return ok(f"{verb} ok")

        return route

    for verb in VERBS:
        web.routes[f"/methods/{verb}"] = methods(verb)
        web.routes[HANDLERS[verb]] = handler(verb)


@pytest.mark.parametrize("code", [301, 307])
@pytest.mark.parametrize("verb", ["post", "put", "delete"])
def test_301_and_307_keep_the_method_without_body(
    case: Case, web: LocalServer, verb: str, code: int
) -> None:
    redirect_app(web)
    url = f"{web.url}/methods/{verb}?code={code}"
    if verb == "delete":
        response = case.delete(url)
    else:
        response = getattr(case, verb)(url, params=[["a", "1"]])
    assert response.code == 200
    assert response.body == f"{verb} ok"
    first, second = web.requests[-2:]
    assert second.method == VERBS[verb] and second.path == HANDLERS[verb]
    assert second.body == b"" and second.header("Content-length") is None
    records = sink_of(case).responses
    assert [(r["type"], r["code"], r["number"], r["step"]) for r in records] == [
        (verb, code, 1, 1),
        (verb, 200, 2, 1),
    ]
    assert records[1]["description"] == ""
    assert case.total_redirects == 1 and case.total_pages == 1


@pytest.mark.parametrize("code", [302, 303])
def test_302_and_303_switch_to_get(case: Case, web: LocalServer, code: int) -> None:
    redirect_app(web)
    response = case.post(
        f"{web.url}/methods/post?code={code}",
        params=[["a", "1"]],
        description="Post it",
        ok_codes=[200, 302, 303, 405],
    )
    assert response.code == 405  # /_poster accepts only POST and got a GET
    assert web.requests[-1].method == "GET"
    records = sink_of(case).responses
    assert [(r["type"], r["description"]) for r in records] == [("post", "Post it"), ("get", "")]
    closing = web.requests[-1].header("Connection")
    if code == 303:  # a 303 sets a persistent `Connection: close`
        assert closing == "close"
        web.routes["/"] = lambda r: ok("root")
        case.get(web.url + "/")
        assert web.requests[-1].header("Connection") == "close"
    else:
        assert closing is None


def test_redirect_limit_and_relative_location(case: Case, web: LocalServer) -> None:
    hops = []

    def loop(request: Request):  # type: ignore[no-untyped-def]
        hops.append(request.path)
        return 302, [("Location", "../loop/again")], b""

    web.routes["/loop/again"] = loop
    web.routes["/start/page"] = lambda r: (302, [("Location", "../loop/again")], b"")
    response = case.get(web.url + "/start/page")
    assert response.code == 302  # still a redirect after 10 hops: returned as is
    assert len(hops) == 10 and hops[0] == "/loop/again"
    assert case.total_redirects == 10
    assert len(sink_of(case).responses) == 11


def test_follow_redirect_false(case: Case, web: LocalServer) -> None:
    redirect_app(web)
    response = case.get(f"{web.url}/methods/get?code=302", follow_redirect=False)
    assert response.code == 302 and len(web.requests) == 1


def test_referer_follows_pages_and_hops(case: Case, web: LocalServer) -> None:
    redirect_app(web)
    web.routes["/a"] = lambda r: ok("a")
    case.get(web.url + "/a")
    assert web.requests[-1].header("Referer") is None
    case.get(f"{web.url}/methods/get?code=302")
    assert web.requests[-2].header("Referer") == web.url + "/a"
    assert web.requests[-1].header("Referer") == f"{web.url}/methods/get?code=302"
    case.head(web.url + "/a")  # head does not update the Referer
    case.get(web.url + "/a")
    assert web.requests[-1].header("Referer") == web.url + "/_getter"
    assert case.getLastUrl() == "/a"


# -- cookies -------------------------------------------------------------------------------


def test_cookies_domain_path_secure_and_deleted(case: Case, web: LocalServer) -> None:
    future = time.strftime("%a, %d-%b-%Y %H:%M:%S GMT", time.gmtime(time.time() + 3600))
    cookies = [
        ("Set-Cookie", "root=1; Path=/"),
        ("Set-Cookie", "app=2"),  # default path: /app (from /app/)
        ("Set-Cookie", "sec=3; Path=/; Secure"),
        ("Set-Cookie", "gone=deleted; Path=/"),
        ("Set-Cookie", "nul=null; Path=/"),
        ("Set-Cookie", "other=4; Domain=example.org; Path=/"),
        ("Set-Cookie", f"later=5; Path=/; expires={future}"),
        ("Set-Cookie", "dot=6; Domain=.0.0.1; Path=/"),
    ]
    web.routes["/app/"] = lambda r: (200, cookies, b"set")
    web.routes["/app/x"] = lambda r: ok("x")
    web.routes["/else"] = lambda r: ok("else")
    case.get(web.url + "/app/")
    store = case._browser.cookies
    assert set(store) == {"127.0.0.1", "0.0.1"}
    assert isinstance(store["127.0.0.1"]["/"]["root"], Morsel)
    assert set(store["127.0.0.1"]["/app"]) == {"app"}
    assert "other" not in str(store)
    case.get(web.url + "/app/x")
    sent = web.requests[-1].header("Cookie")
    assert sent is not None
    assert sorted(sent.split(" ")) == sorted(["root=1;", "later=5;", "app=2;", "dot=6;"])
    case.get(web.url + "/else")
    assert "app=2" not in (web.requests[-1].header("Cookie") or "")


def test_localhost_session_survives_an_absolute_redirect_to_127_0_0_1(
    case: Case, web: LocalServer
) -> None:
    """A login on localhost, then the app's absolute redirect built from the Host header
    (127.0.0.1, FunkLoad's rewrite): the session cookie goes along."""

    def login(request: Request) -> tuple[int, list[tuple[str, str]], bytes]:
        home = f"http://{request.header('Host')}/home"
        return 302, [("Set-Cookie", "session=s3cret; Path=/"), ("Location", home)], b""

    def home(request: Request) -> tuple[int, list[tuple[str, str]], bytes]:
        if request.header("Cookie") == "session=s3cret;":
            return ok("welcome")
        return 401, [], b"who are you?"

    web.routes["/login"] = login
    web.routes["/home"] = home
    response = case.post(f"http://localhost:{web.port}/login", params=[["user", "bob"]])
    assert web.requests[-1].path == "/home"
    assert response.code == 200 and response.body == "welcome"
    assert list(case._browser.cookies) == ["127.0.0.1"]
    case.get(f"http://localhost:{web.port}/home")  # and the other way round
    assert web.requests[-1].header("Cookie") == "session=s3cret;"


def test_cookie_expiry_and_max_age(case: Case, web: LocalServer) -> None:
    web.routes["/set"] = lambda r: (
        200,
        [("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/; Max-Age=100")],
        b"",
    )
    web.routes["/expire"] = lambda r: (
        200,
        [
            ("Set-Cookie", "a=x; Path=/; expires=Thu, 01-Jan-1970 00:00:01 GMT"),
            ("Set-Cookie", "b=x; Path=/; Max-Age=0"),
        ],
        b"",
    )
    web.routes["/see"] = lambda r: ok("see")
    case.get(web.url + "/set")
    case.get(web.url + "/see")
    assert web.requests[-1].header("Cookie") == "a=1; b=2;"
    case.get(web.url + "/expire")
    assert case._browser.cookies["127.0.0.1"]["/"] == {}
    case.get(web.url + "/see")
    assert web.requests[-1].header("Cookie") is None


def test_injected_cookie_and_clear_context(case: Case, web: LocalServer) -> None:
    web.routes["/"] = lambda r: ok("root")
    morsel: Morsel = Morsel()
    morsel.set("sessionid", "abc", "abc")
    case._browser.cookies.setdefault("127.0.0.1", {}).setdefault("/", {}).setdefault(
        "sessionid", morsel
    )
    case.get(web.url + "/")
    assert web.requests[-1].header("Cookie") == "sessionid=abc;"
    case.clearContext()
    assert case._browser.cookies == {}
    case.get(web.url + "/")
    assert web.requests[-1].header("Cookie") is None


# -- auth and gzip -------------------------------------------------------------------------


def test_basic_auth_state_and_marketplace_override(case: Case, web: LocalServer) -> None:
    import base64

    web.routes["/"] = lambda r: ok("root")
    case.setBasicAuth("user", "pwd")
    assert case._browser.authinfo == "dXNlcjpwd2Q="
    assert case._authinfo == "user:pwd@"
    case.clearBasicAuth()
    assert case._browser.authinfo is None and case._authinfo is None
    case.get(web.url + "/")
    assert web.requests[-1].header("Authorization") is None
    # The marketplace test writes both fields itself (py3: b64encode gives bytes).
    case._browser.authinfo = base64.b64encode(b"dev:secret")
    case._authinfo = "dev:secret@"
    case.get(web.url + "/")
    assert web.requests[-1].header("Authorization") == "Basic ZGV2OnNlY3JldA=="


def test_gzip_only_when_asked(case: Case, web: LocalServer) -> None:
    packed = gzip.compress(b"<p>hello</p>")
    web.routes["/z"] = lambda r: (
        200,
        [("Content-Type", "text/html"), ("Content-Encoding", "gzip")],
        packed,
    )
    response = case.get(web.url + "/z")
    assert response.raw_body == packed  # not asked: left alone
    case.setHeader("accept-encoding", "GZIP")
    response = case.get(web.url + "/z")
    assert web.requests[-1].header("accept-encoding") == "GZIP"
    assert response.body == "<p>hello</p>"
    case.setHeader("accept-encoding", "gzip, deflate")  # must be exactly gzip
    assert case.get(web.url + "/z").raw_body == packed


def test_empty_content_length_gives_none_body(case: Case, web: LocalServer) -> None:
    web.routes["/empty"] = lambda r: (200, [("Content-Length", "0")], b"")
    response = case.get(web.url + "/empty")
    assert response.body is None
    assert case.getBody() == ""


# -- auto links ----------------------------------------------------------------------------

PAGE = """<!DOCTYPE html>
<HTML><head>
<link rel="stylesheet" href="/s.css">
<link rel="icon" href='/favicon.ico'>
<script src="/app.js"></script>
<!-- <img src="/commented.png"> -->
</head><body>
<img src="/a.png"><IMG SRC="img/b.png" alt=x>
<img src="/a.png">
<img src="data:image/png;base64,AAAA">
<img src="ftp://example.org/x.png">
<a href="/next">Next page</a> <a href="/other?x=1">Other <b>one</b></a>
</body></HTML>"""


def links_app(web: LocalServer, broken: bool = False) -> None:
    web.routes["/dir/page"] = lambda r: ok(PAGE, "text/html")
    for path in ("/s.css", "/favicon.ico", "/a.png", "/dir/img/b.png"):
        web.routes[path] = lambda r: ok(b"bytes", "application/octet-stream")
    if broken:
        del web.routes["/dir/img/b.png"]


def test_auto_links_fetched_once_and_logged(case: Case, web: LocalServer) -> None:
    links_app(web)
    response = case.get(web.url + "/dir/page", description="The page")
    assert response.is_html
    fetched = [r.path for r in web.requests[1:]]
    assert fetched == ["/s.css", "/favicon.ico", "/a.png", "/dir/img/b.png"]
    records = sink_of(case).responses
    assert [(r["type"], r["url"], r["number"]) for r in records] == [
        ("get", "/dir/page", 1),
        ("link", "/s.css", 2),
        ("link", "/favicon.ico", 3),
        ("image", "/a.png", 4),
        ("image", "/dir/img/b.png", 5),
    ]
    assert (case.total_images, case.total_links, case.total_pages) == (2, 2, 1)
    case.get(web.url + "/dir/page")  # cached for this context: only the page
    assert web.requests[-1].path == "/dir/page"
    case.clearContext()
    case.get(web.url + "/dir/page")
    assert len(web.requests) == 11


def test_base_href_resolves_links() -> None:
    page = '<html><head><base href="http://cdn.test/static/"></head><img src="x.png"></html>'
    assert page_links(page, "http://site.test/a/b") == [("image", "http://cdn.test/static/x.png")]


def test_invalid_link_fails_the_page(case: Case, web: LocalServer) -> None:
    links_app(web, broken=True)
    with pytest.raises(AssertionError, match="HTTP Response 404"):
        case.get(web.url + "/dir/page")
    assert case.step_success is False
    broken = sink_of(case).responses[-1]
    assert (broken["type"], broken["result"], broken["code"]) == ("image", "Failure", 404)


def test_a_refused_link_is_an_error_record_and_fails_the_page(case: Case, web: LocalServer) -> None:
    refused = f"http://127.0.0.1:{free_port()}/gone.png"
    web.routes["/page"] = lambda r: ok(f'<html><img src="{refused}"></html>'.encode(), "text/html")
    with pytest.raises(OSError, match=f"Can't load {refused}."):
        case.get(web.url + "/page")
    assert case.step_success is False and case.test_status == "Failure"
    assert case.total_time > 0 and case.total_responses == 2
    error = sink_of(case).responses[-1]
    assert (error["type"], error["url"], error["code"], error["result"]) == (
        "image",
        refused,
        -1,
        "Error",
    )
    assert "Connection refused" in error["traceback"]


def test_accept_invalid_links(web: LocalServer, workdir: Path) -> None:
    links_app(web, broken=True)
    case, sink = make_test(Case, "test_nothing", workdir, url=web.url, accept_invalid_links=True)
    case.get(web.url + "/dir/page")
    assert case.step_success is True
    assert sink.responses[-1]["code"] == 404


def test_simple_fetch_and_load_auto_links_off(web: LocalServer, workdir: Path) -> None:
    links_app(web)
    case, _ = make_test(Case, "test_nothing", workdir, url=web.url)
    case.get(web.url + "/dir/page", load_auto_links=False)
    assert len(web.requests) == 1
    conf = "[main]\nurl = {url}\n[ftest]\nlog_to =\nsimple_fetch = 1\n"
    fetchless, _ = make_test(Case, "test_nothing", workdir, url=web.url, conf=conf)
    fetchless.get(web.url + "/dir/page")
    assert len(web.requests) == 2


def test_non_html_is_not_parsed(case: Case, web: LocalServer) -> None:
    late = " " * 300 + "<html><img src='/a.png'></html>"
    web.routes["/late"] = lambda r: ok(late, "text/html")
    response = case.get(web.url + "/late")
    assert response.is_html is False
    assert len(web.requests) == 1


# -- the response object -------------------------------------------------------------------


def test_response_fields(case: Case, web: LocalServer) -> None:
    links_app(web)
    response = case.get(web.url + "/dir/page?q=1", load_auto_links=False)
    assert response.code == 200 and isinstance(response.code, int)
    assert response.message == "OK"
    assert response.url == "/dir/page?q=1"
    assert (response.protocol, response.server, response.port) == ("http", "127.0.0.1", web.port)
    assert response.headers.get("CONTENT-TYPE") == "text/html"
    assert response.headers["content-type"] == "text/html"
    assert ("content-type", "text/html") in response.headers.items()
    assert str(response) == "/dir/page?q=1\nHTTP Response 200: OK"
    assert repr(response) == (
        f'<response url="http://127.0.0.1:{web.port}/dir/page?q=1" code="200" message="OK" />'
    )
    assert response.cookies is case._browser.cookies
    anchors = response.getDOM().getByName("a")
    assert [a.href for a in anchors] == ["/next", "/other?x=1"]
    assert anchors[1].getContentString() == "Other one"
    assert case.listHref() == ["/next", "/other?x=1"]
    assert case.listHref(url_pattern="other") == ["/other?x=1"]
    assert case.listHref(content_pattern="^Next") == ["/next"]
    assert case.getLastBaseUrl() == ""
    assert case.getBody() == PAGE


def test_body_charset(case: Case, web: LocalServer) -> None:
    web.routes["/latin"] = lambda r: ok("café".encode("latin-1"), "text/plain; charset=ISO-8859-1")
    web.routes["/bad"] = lambda r: ok(b"caf\xe9", "text/plain")
    assert case.get(web.url + "/latin").body == "café"
    assert case.get(web.url + "/bad").body == "caf\ufffd"


def test_run_records_test_result_counters(web: LocalServer, workdir: Path) -> None:
    links_app(web)

    class Pages(fl.FunkLoadTestCase):
        def test_pages(self) -> None:
            self.get(web.url + "/dir/page")
            self.get(web.url + "/dir/page")

    test, sink = make_test(Pages, "test_pages", workdir, url=web.url)
    assert run_test(test).wasSuccessful()
    (result,) = sink.tests
    assert (result["steps"], result["pages"], result["requests"]) == (2, 2, 6)
    assert (result["images"], result["links"], result["redirects"]) == (2, 2, 0)
    assert result["result"] == "Successful" and result["traceback"] is None


def test_host_header_port_only_when_not_default() -> None:
    from marteau.funkload.browser import UrlInfo

    assert UrlInfo("http://example.org/x").host == "example.org"
    assert UrlInfo("https://example.org:443/x").host == "example.org"
    assert UrlInfo("https://example.org:8443/x").host == "example.org:8443"
    assert UrlInfo("http://localhost/").host == "127.0.0.1"
    info = UrlInfo("http://localhost:8080/a?b=1#frag")
    assert (info.connect_url, info.path_query) == ("http://127.0.0.1:8080/a?b=1", "/a?b=1")


def test_no_host_header_through_a_proxy(
    web: LocalServer, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", f"127.0.0.1:{web.port}")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    web.routes["/via-proxy"] = lambda r: ok("proxied")
    case, _ = make_test(Case, "test_nothing", workdir, url=web.url)
    response = case.get("http://example.test/via-proxy")
    assert response.body == "proxied"
    request = web.requests[-1]
    assert request.path == "http://example.test/via-proxy"  # absolute URL on the request line
    assert "Host" not in names(request)


def test_html_detection_rule() -> None:
    """``<html`` in any case within the first 300 bytes, whatever the shortcut taken."""
    from marteau.funkload.response import is_html_bytes

    assert is_html_bytes(b"<!doctype html><html>")
    assert is_html_bytes(b"<?xml?>\n<HTML lang=en>")
    assert is_html_bytes(b" " * 295 + b"<HtMl")
    assert not is_html_bytes(b" " * 296 + b"<html")  # ends past byte 300
    assert not is_html_bytes(b"plain text, no tag")
    assert not is_html_bytes(b"<xml><body/></xml>")
    assert not is_html_bytes(b"")
    assert not is_html_bytes(None)
