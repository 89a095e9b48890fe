"""`funkload.utils`, `Lipsum`, the import shims and the test loader."""

from __future__ import annotations

import re
import subprocess
import sys
import unittest
from collections.abc import Iterator
from pathlib import Path

import pytest

from marteau.errors import MarteauError
from marteau.funkload.loader import import_test_module, module_name_for, resolve_test
from tests.support.funkload import install


def test_import_shims() -> None:
    from funkload.FunkLoadTestCase import FunkLoadTestCase
    from funkload.Lipsum import Lipsum
    from funkload.utils import Data, extract_token, xmlrpc_get_credential
    from marteau.funkload import lipsum, testcase, utils
    from webunit.utility import Upload

    assert FunkLoadTestCase is testcase.FunkLoadTestCase
    assert issubclass(FunkLoadTestCase, unittest.TestCase)
    assert Data is utils.Data and Upload is utils.Upload and Lipsum is lipsum.Lipsum
    assert extract_token is utils.extract_token
    assert xmlrpc_get_credential is utils.xmlrpc_get_credential


def test_importing_funkload_does_not_monkey_patch() -> None:
    """FunkLoad ran gevent.monkey.patch_all() on import; the shim must not."""
    code = "import sys, funkload.FunkLoadTestCase; print('gevent' in sys.modules)"
    root = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True
    )
    assert out.stdout.strip() == "False"


def test_data_and_upload() -> None:
    from funkload.utils import Data
    from webunit.utility import Upload

    data = Data("text/xml", "<a/>")
    assert (data.content_type, data.data) == ("text/xml", "<a/>")
    assert repr(data) == "[User data text/xml]"
    assert Upload("/tmp/x.png").filename == "/tmp/x.png"


def test_extract_token() -> None:
    from funkload.utils import extract_token

    page = "<input name='csrf' value='abc123'/> value='zzz'"
    assert extract_token(page, "value='", "'") == "abc123"
    assert extract_token(page, "nothing", "'") is None
    assert extract_token(page, "value='zzz", "never") is None


def test_small_helpers(capsys: pytest.CaptureFixture[str]) -> None:
    from funkload.utils import get_version, is_html, trace, truncate

    assert get_version() == "1.17.2"
    assert is_html("<!doctype html><HTML>") and not is_html("x" * 300 + "<html>")
    assert not is_html(None)  # type: ignore[arg-type]
    assert truncate("a" * 200, 10) == "aaaaaaa..." and truncate("short") == "short"
    trace("progress.")
    assert capsys.readouterr().out == "progress."


def test_lipsum() -> None:
    from funkload.Lipsum import Lipsum

    lipsum = Lipsum()
    assert lipsum.getWord() in lipsum.vocab
    for _ in range(50):
        word = lipsum.getUniqWord()
        assert 5 <= len(word) <= 8 and set(word) <= set("abcdefghjkmnopqrstuvwxyz123456789")
    assert len(lipsum.getUniqWord(length_min=2, length_max=3)) in (2, 3)
    assert len({lipsum.getUniqWord() for _ in range(100)}) > 95
    subject = lipsum.getSubject(length=4, prefix="RE:")
    assert subject.startswith("RE: ") and len(subject.split()) == 5
    assert len(lipsum.getSubject(length=3, uniq=True).split()) == 4
    sentence = lipsum.getSentence()
    assert sentence[0].isupper() and sentence.endswith(".")
    assert lipsum.getParagraph(length=3).count(".") == 3
    assert lipsum.getMessage(length=3).count("\n\n") == 2
    assert re.fullmatch(r"0\d( \d\d){4}", lipsum.getPhoneNumber())
    assert re.fullmatch(r"(\d\d ){3}\d\d", lipsum.getPhoneNumber(format="short"))
    assert re.fullmatch(r"\+33 \(0\)\d( \d\d){4}", lipsum.getPhoneNumber(format="long"))
    assert re.fullmatch(r"\(\d{3}\) \d{3}-\d{4}", lipsum.getPhoneNumber(lang="en_US"))
    assert re.fullmatch(
        r"\+1 \(\d{3}\) \d{3}-\d{4}", lipsum.getPhoneNumber(lang="en_US", format="long")
    )
    assert re.search(r"\d{5} \w+$", lipsum.getAddress())
    assert re.search(r", [A-Z]{2} \d{5}$", lipsum.getAddress(lang="en_US"))


# -- the loader used by `marteau test` and `marteau bench` --------------------------------


@pytest.fixture
def tests_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    install(tmp_path, "loadtest.py", "test_dummy.py", "test_failing_import.py", "syntax_error.py")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "scenario.py").write_text(
        "from funkload.FunkLoadTestCase import FunkLoadTestCase\n"
        "class Deep(FunkLoadTestCase):\n    def test_deep(self):\n        pass\n"
        "NOT_A_CLASS = 1\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    names = ("loadtest", "test_dummy", "test_failing_import", "syntax_error", "pkg")
    yield tmp_path
    for name in list(sys.modules):
        if name.split(".")[0] in names:
            del sys.modules[name]


def test_loader_resolves_files_modules_and_tests(tests_dir: Path) -> None:
    assert module_name_for("loadtest.py") == ("loadtest", str(tests_dir / "loadtest.py"))
    assert module_name_for("pkg.scenario") == ("pkg.scenario", None)
    module = import_test_module("loadtest.py")
    assert sys.path[0] == str(tests_dir)
    klass, method = resolve_test(module, "StupidTest.test_simple")
    assert (klass.__name__, method) == ("StupidTest", "test_simple")
    deep = import_test_module("pkg.scenario")
    assert resolve_test(deep, "Deep.test_deep")[0].__name__ == "Deep"


@pytest.mark.parametrize(
    ("arg", "spec", "message"),
    [
        ("missing.py", None, "test file not found: missing.py"),
        ("no_module_here", None, "test module not found: no_module_here"),
        ("syntax_error.py", None, "syntax_error.py, line 6: syntax error"),
        ("test_failing_import.py", None, "ModuleNotFoundError: No module named"),
        ("loadtest.py", "Nope.test_simple", "no class 'Nope'"),
        ("loadtest.py", "StupidTest.test_nope", "StupidTest has no test method 'test_nope'"),
        ("loadtest.py", "StupidTest", "expected Class.method"),
        ("pkg.scenario", "NOT_A_CLASS.x", "is not a test case class"),
    ],
)
def test_loader_errors(tests_dir: Path, arg: str, spec: str | None, message: str) -> None:
    with pytest.raises(MarteauError, match=re.escape(message)):
        module = import_test_module(arg)
        assert spec is not None
        resolve_test(module, spec)


def test_loader_refuses_a_file_outside_the_cwd(tests_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "faraway_test.py").write_text("X = 1\n")
    with pytest.raises(MarteauError, match="must be importable from the current directory"):
        import_test_module(str(other / "faraway_test.py"))


def test_funkload_doctest_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from funkload.FunkLoadDocTest import FunkLoadDocTest
    from funkload.TestRunner import g_has_doctest  # FunkLoad's install test asks it first
    from marteau.funkload import testcase
    from tests.servers import LocalServer, ok

    assert g_has_doctest is True
    monkeypatch.chdir(tmp_path)  # no conf file here: none is needed
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with LocalServer({"/": lambda r: ok("<HTML>hi</HTML>", "text/html")}) as server:
        fl = FunkLoadDocTest()
        response = fl.get(f"http://localhost:{server.port}/")
    testcase.close_functional_sinks()
    assert repr(response) == (
        f'<response url="http://127.0.0.1:{server.port}/" code="200" message="OK" />'
    )
    assert "HTML" in response.body
    assert fl.sleep_time_min == fl.sleep_time_max == 0.001
    assert 'url="/" code="200"' in (tmp_path / "fl-doc-test.xml").read_text()
