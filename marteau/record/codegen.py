"""Write a `Recording` as a FunkLoad test module and its `.conf`.

Every recorded string (URL, form value, body, description) reaches the
module as a ``repr()`` literal, and comments carry only escaped text, so the
generated file is data plus a fixed skeleton whatever the HAR held; the
module is compiled before it is returned. Conf values are written only when
the project's own conf parser reads them back unchanged.
"""

from __future__ import annotations

import configparser
import keyword
import re
import statistics
from dataclasses import dataclass

from marteau.errors import MarteauError
from marteau.funkload.config import make_parser
from marteau.record.session import Page, Recording, Secret, UploadFile, Value

SECRETS_SECTION = "secrets"
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,99}")
_INDENT = " " * 8
# Method name of FunkLoadTestCase per HTTP method; others go through self.method(VERB, ...).
_CALLS = {"GET": "get", "POST": "post", "PUT": "put", "DELETE": "delete", "HEAD": "head"}
_CALLS["OPTIONS"] = "options"
_NO_BODY = frozenset({"get", "delete", "head", "options"})


@dataclass(frozen=True)
class ModuleNames:
    """fl-record's naming: ``foo_bar`` gives class ``FooBar`` in ``test_FooBar.py``."""

    test_name: str
    class_name: str

    @property
    def module_file(self) -> str:
        return f"test_{self.class_name}.py"

    @property
    def test_id(self) -> str:
        return f"{self.class_name}.test_{self.test_name}"

    @property
    def conf_file(self) -> str:
        return f"{self.class_name}.conf"


def module_names(raw: str) -> ModuleNames:
    """The names for a test called ``raw`` (letters, digits, ``_`` and ``-``)."""
    if not _NAME_RE.fullmatch(raw):
        raise MarteauError(
            f"test name {raw[:60]!r}: use a letter then letters, digits, '_' or '-' (100 at most)"
        )
    test_name = raw.replace("-", "_")
    class_name = "".join(part.capitalize() for part in test_name.split("_"))
    if keyword.iskeyword(class_name):
        raise MarteauError(f"test name {raw!r}: its class name {class_name} is a Python keyword")
    return ModuleNames(test_name, class_name)


def module_source(recording: Recording, names: ModuleNames) -> str:
    """The test module: one FunkLoad call per recorded page."""
    imports = ["import unittest", "", "from funkload.FunkLoadTestCase import FunkLoadTestCase"]
    if any(page.data for page in recording.pages):
        imports.append("from funkload.utils import Data")
    if recording.uploads:
        imports.append("from webunit.utility import Upload")
    lines = [
        f'"""{names.test_name} FunkLoad test, recorded by `marteau record`.',
        "",
        f"Run it with `marteau test {names.module_file}`, bench it with",
        f"`marteau bench {names.module_file} {names.test_id}`.",
        "The server URL, the bench settings and the form values kept secret",
        f"are in {names.conf_file}.",
        '"""',
        "",
        *imports,
        "",
        "",
        f"class {names.class_name}(FunkLoadTestCase):",
        f'    """The recorded browsing session; its configuration is {names.conf_file}."""',
        "",
        "    def setUp(self):",
        '        self.server_url = self.conf_get("main", "url")',
        "",
        f"    def test_{names.test_name}(self):",
        "        server_url = self.server_url",
        *calls_source(recording).splitlines(),
        "",
        "",
        'if __name__ in ("main", "__main__"):',
        "    unittest.main()",
        "",
    ]
    source = "\n".join(lines)
    compile(source, names.module_file, "exec")  # a bug here must never write a broken file
    return source


def calls_source(recording: Recording) -> str:
    """The test method's body: notes on what was dropped, then one call per page."""
    lines = [f"# {_comment(note)}" for note in _notes(recording)]
    for page in recording.pages:
        if page.think_time >= 0.05:
            lines.append(f"# think time: {page.think_time:.1f} s")
        lines.extend(_call(page))
    return "\n".join(_INDENT + line if line else "" for line in lines)


def _notes(recording: Recording) -> list[str]:
    notes = []
    if recording.resources:
        notes.append(
            f"{_count(recording.resources, 'request')} for images, scripts or stylesheets: "
            "left to the browser's auto-loading."
        )
    if recording.redirects:
        notes.append(f"{_count(recording.redirects, 'redirect')}: followed by the browser.")
    if recording.unanswered:
        notes.append(f"{_count(recording.unanswered, 'request')} without a response: dropped.")
    if recording.other_hosts:
        notes.append("Requests to other hosts were dropped:")
        notes.extend(f"  {host} ({n})" for host, n in sorted(recording.other_hosts.items()))
    if recording.secrets:
        keys = ", ".join(sorted(recording.secrets))
        notes.append(f"Form secrets are read from [{SECRETS_SECTION}] in the conf: {keys}.")
    if recording.uploads:
        notes.append(f"Uploaded files to put beside the test: {', '.join(recording.uploads)}")
    return notes


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _comment(text: str) -> str:
    """Text that cannot end a comment line: control and non-printable characters escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _call(page: Page) -> list[str]:
    name = _CALLS.get(page.method)
    head = f"self.{name}(" if name else f"self.method({page.method!r}, "
    args = [f"server_url + {page.path!r},"]
    if name not in _NO_BODY:
        if page.params is not None:
            args.append("params=[")
            args.extend(f"    [{key!r}, {_value(value)}]," for key, value in page.params)
            args.append("],")
        elif page.data is not None:
            content_type, body = page.data
            args.append(f"params=Data({content_type!r}, {body!r}),")
    args.append(f"description={page.description!r},")
    if page.ok_codes:
        args.append(f"ok_codes={page.ok_codes!r},")
    return [head, *(f"    {arg}" for arg in args), ")"]


def _value(value: Value) -> str:
    if isinstance(value, Secret):
        return f"self.conf_get({SECRETS_SECTION!r}, {value.key!r})"
    if isinstance(value, UploadFile):
        return f"Upload({value.filename!r})"
    return repr(value)


def conf_source(recording: Recording, names: ModuleNames) -> tuple[str, list[str]]:
    """The `.conf` text, and the secret keys whose value could not be written in it."""
    think = recording.think_times
    think_min = min(think, default=0.0)
    think_max = max(think, default=0.0)
    lines = [
        f"# FunkLoad configuration of {names.class_name} ({names.module_file}),",
        "# written by `marteau record`.",
        "",
        "[main]",
        f"title = {names.class_name}",
        f"description = The browsing session {names.test_name}, as recorded",
        f"url = {recording.server_url}",
        "",
        f"[test_{names.test_name}]",
        f"description = The {len(recording.pages)} recorded pages, in order",
        "",
        "[ftest]",
        "log_to = console file",
        f"log_path = {names.test_name}-test.log",
        f"result_path = {names.test_name}-test.xml",
        "sleep_time_min = 0",
        "sleep_time_max = 0",
        "",
        "[bench]",
        "cycles = 1:2:3",
        "duration = 30",
        "startup_delay = 0.2",
        "sleep_time = 1",
        "cycle_time = 1",
        "log_to = file",
        f"log_path = {names.test_name}-bench.log",
        f"result_path = {names.test_name}-bench.xml",
    ]
    if think:
        median = statistics.median(think)
        lines.append(
            f"# think time recorded between pages: min {think_min:.1f} s, "
            f"median {median:.1f} s, max {think_max:.1f} s"
        )
    lines += [f"sleep_time_min = {think_min:.1f}", f"sleep_time_max = {think_max:.1f}"]
    unwritable: list[str] = []
    if recording.secrets:
        lines += [
            "",
            f"[{SECRETS_SECTION}]",
            "# form values that looked like secrets: the test reads them with",
            f'# self.conf_get("{SECRETS_SECTION}", KEY)',
        ]
        writable = _writable(recording.secrets)
        for key, value in sorted(recording.secrets.items()):
            if key in writable:
                lines.append(f"{key} = {value}")
            else:
                unwritable.append(key)
                lines.append("# the recorded value cannot be written in a conf file: set it here")
                lines.append(f"{key} =")
    return "\n".join(lines) + "\n", unwritable


def _writable(secrets: dict[str, str]) -> set[str]:
    """The keys whose ``key = value`` line reads back as the value (no line break, comment, ``%(``...)."""
    lines = {}
    for key, value in secrets.items():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            continue
        if value.splitlines() in ([value], []):
            lines[key] = value
    parser = make_parser()
    parser.read_string("[s]\n" + "".join(f"{key} = {value}\n" for key, value in lines.items()))
    writable = set()
    for key, value in lines.items():
        try:
            if parser.get("s", key) == value:
                writable.add(key)
        except (configparser.Error, ValueError, KeyError):  # e.g. a bad %( interpolation
            continue
    return writable
