"""webunit's form helpers on the response: extractForm, getFormData, getForm, postForm.

Pages come from a real local server and are fetched with the test case's own
``get``; forms are submitted back to it with ``get``/``post``, and the
assertions read what the server really received.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

import funkload.FunkLoadTestCase as fl  # the module: pytest would build a TestCase class found here
from marteau.funkload.forms import FormNotFoundError
from marteau.funkload.response import HTTPResponse
from tests.servers import LocalServer, Reply, Request, ok
from tests.support.funkload import ListSink, make_test, serve

PAGE = """<html><head><title>Forms</title></head><body>
<form action="/search" method="get">
  <input name="q" value="load test">
  <input type="hidden" name="lang" value="fr">
  <input type="submit" name="go" value="Search">
</form>
<p><form action="save?draft=1#top" method="post">
  <input type="hidden" name="token" value="a&amp;b c">
  <input type="text" name="title" value="Hello">
  <input type="password" name="secret">
  <input type="text" value="a field without a name">
  <input type="text" name="off" value="x" disabled>
  <textarea name="body">
Line one
Line two</textarea>
  <select name="size">
    <option>small</option><option value="m" selected>medium</option><option value="l">large</option>
  </select>
  <select name="colour"><option value="red">Red</option><option value="blue">Blue</option></select>
  <select name="tags" multiple>
    <option value="a" selected>A</option><option value="b">B</option>
    <optgroup label="more"><option value="c" selected>C</option></optgroup>
  </select>
  <input type="checkbox" name="opt" value="one" checked>
  <input type="checkbox" name="opt" value="two">
  <input type="checkbox" name="opt" value="three" checked>
  <input type="checkbox" name="agree" checked>
  <input type="radio" name="plan" value="free">
  <input type="radio" name="plan" value="pro" checked>
  <input type="reset" name="clear" value="Clear">
  <input type="file" name="upload">
  <input type="image" name="pic" src="pic.png">
  <input type="button" name="preview" value="Preview">
  <button name="publish" value="now">Publish</button>
  <button type="button" name="helper" value="help">Help</button>
  <input type="submit" name="save" value="Save">
</form></p>
<form><input name="here" value="1"></form>
</body></html>
"""

BASED_PAGE = """<html><head><base href="/elsewhere/deep/"></head><body>
<form action="submit"><input name="k" value="v"></form>
</body></html>
"""

# What a browser submits with the second form when no button is clicked.
SECOND_FORM = {
    "token": "a&b c",
    "title": "Hello",
    "secret": "",
    "body": "Line one\nLine two",
    "size": "m",
    "colour": "red",
    "tags": ["a", "c"],
    "opt": ["one", "three"],
    "agree": "on",
    "plan": "pro",
}


class FormUser(fl.FunkLoadTestCase):
    """A browser for the pytest tests below to drive."""

    __test__ = False  # a fixture class, not for pytest to collect

    def test_forms(self) -> None:
        """Not run: the pytest tests call ``get``/``post`` themselves."""


User = tuple[FormUser, ListSink]


def echo(request: Request) -> Reply:
    return ok("received")


@pytest.fixture(scope="module")
def web() -> Iterator[LocalServer]:
    for local in serve():
        local.routes["/forms.html"] = lambda r: ok(PAGE, "text/html; charset=utf-8")
        local.routes["/based/page.html"] = lambda r: ok(BASED_PAGE, "text/html")
        local.routes["/search"] = echo
        local.routes["/save"] = echo
        local.routes["/elsewhere/deep/submit"] = echo
        yield local


@pytest.fixture
def user(web: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> User:
    monkeypatch.chdir(tmp_path)
    return make_test(FormUser, "test_forms", tmp_path, url=web.url + "/")


def page(user: User, web: LocalServer, path: str = "/forms.html") -> HTTPResponse:
    test, _ = user
    return test.get(web.url + path, description="Form page")


def test_extract_second_form_by_path(user: User, web: LocalServer) -> None:
    response = page(user, web)
    assert response.extractForm([("form", 1)]) == SECOND_FORM
    # The same form reached through its enclosing paragraph.
    assert response.extractForm([("p", 0), ("form", 0)]) == SECOND_FORM
    # Document order is kept: it is the order of the submitted fields.
    assert list(response.extractForm([("form", 1)])) == list(SECOND_FORM)


def test_submit_and_button_inclusion_flags(user: User, web: LocalServer) -> None:
    response = page(user, web)
    with_submit = response.extractForm([("form", 1)], include_submit=1)
    assert with_submit == {**SECOND_FORM, "publish": "now", "save": "Save"}
    with_button = response.extractForm([("form", 1)], include_button=1)
    assert with_button == {**SECOND_FORM, "preview": "Preview", "helper": "help"}
    assert response.extractForm([("form", 0)], include_submit=True) == {
        "q": "load test",
        "lang": "fr",
        "go": "Search",
    }


def test_empty_path_is_the_whole_page(user: User, web: LocalServer) -> None:
    fields = page(user, web).extractForm()
    assert fields == {"q": "load test", "lang": "fr", **SECOND_FORM, "here": "1"}


def test_a_path_that_leads_nowhere_fails_the_test(user: User, web: LocalServer) -> None:
    response = page(user, web)
    with pytest.raises(FormNotFoundError, match=r"no <form> number 3 .*\(3 <form> found"):
        response.extractForm([("form", 3)])
    with pytest.raises(TypeError, match="pairs"):
        response.extractForm(["form"])
    assert issubclass(FormNotFoundError, AssertionError)  # a Failure, not an Error


def test_get_form_data_merges_postargs_and_resolves_the_action(
    user: User, web: LocalServer
) -> None:
    response = page(user, web)
    data, url = response.getFormData(1, {"title": "New", "secret": None, "extra": "x"})
    expected = {**SECOND_FORM, "title": "New", "extra": "x"}
    del expected["secret"]
    assert data == expected
    assert url == f"{web.url}/save?draft=1"  # relative action, fragment dropped
    assert response.getFormData(0) == ({"q": "load test", "lang": "fr"}, f"{web.url}/search")
    # No action: the form goes back to the page itself.
    assert response.getFormData(2) == ({"here": "1"}, f"{web.url}/forms.html")


def test_form_number_out_of_range(user: User, web: LocalServer) -> None:
    response = page(user, web)
    with pytest.raises(FormNotFoundError, match=r"no form number 7 in .*/forms.html \(3 forms\)"):
        response.getFormData(7)


def test_post_form_sends_the_fields_to_the_action(user: User, web: LocalServer) -> None:
    test, sink = user
    response = page(user, web)
    before = len(web.requests)
    result = response.postForm(
        1, test.post, {"title": "Posted", "publish": "now", "upload": None}, "Save the form"
    )
    assert result.code == 200 and result.body == "received"
    sent = web.requests[before]
    assert (sent.method, sent.path) == ("POST", "/save?draft=1")
    assert sent.header("Content-Type") == "application/x-www-form-urlencoded"
    assert sent.header("Referer") == f"{web.url}/forms.html"
    assert parse_qsl(sent.body.decode(), keep_blank_values=True) == [
        ("token", "a&b c"),
        ("title", "Posted"),
        ("secret", ""),
        ("body", "Line one\nLine two"),
        ("size", "m"),
        ("colour", "red"),
        ("tags", "a"),
        ("tags", "c"),
        ("opt", "one"),
        ("opt", "three"),
        ("agree", "on"),
        ("plan", "pro"),
        ("publish", "now"),
    ]
    assert sink.responses[-1]["description"] == "Save the form"


def test_get_form_puts_the_fields_in_the_query(user: User, web: LocalServer) -> None:
    test, sink = user
    response = page(user, web)
    before = len(web.requests)
    response.getForm(0, test.get, {"q": "marteau"})
    sent = web.requests[before]
    assert sent.method == "GET"
    assert sent.path == "/search?q=marteau&lang=fr"
    # The form's fields replace the query string of its action, as in a browser.
    response.getForm(1, test.get, {"opt": None, "tags": None}, None, "Draft as GET")
    sent = web.requests[before + 1]
    assert urlsplit(sent.path).path == "/save"
    query = dict(parse_qsl(urlsplit(sent.path).query, keep_blank_values=True))
    assert "draft" not in query and "opt" not in query and query["title"] == "Hello"
    assert sink.responses[-1]["description"] == "Draft as GET"


def test_base_href_moves_the_action(user: User, web: LocalServer) -> None:
    test, _ = user
    response = page(user, web, "/based/page.html")
    assert response.getFormData(0) == ({"k": "v"}, f"{web.url}/elsewhere/deep/submit")
    before = len(web.requests)
    response.postForm(0, test.post, {})
    assert web.requests[before].path == "/elsewhere/deep/submit"
    assert web.requests[before].body == b"k=v"


def test_a_missing_form_inside_a_running_test_is_a_failure(
    web: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class NoForm(fl.FunkLoadTestCase):
        __test__ = False

        def test_no_form(self) -> None:
            self.get(self.conf_get("main", "url") + "forms.html").postForm(9, self.post, {})

    monkeypatch.chdir(tmp_path)
    test, sink = make_test(NoForm, "test_no_form", tmp_path, url=web.url + "/")
    result = test.defaultTestResult()
    test.run(result)
    assert len(result.failures) == 1 and not result.errors
    assert "no form number 9" in result.failures[0][1]
    assert sink.tests[-1]["result"] == "Failure"
