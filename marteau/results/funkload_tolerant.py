"""The tolerant reader of FunkLoad XML: every element that is not FunkLoad's plain response line.

`funkload_reader` hands it the runs of lines its fast path did not take (a
region): ``<config>``, ``<testResult>``, ``<monitor>``, ``<iteration>``, the
long failure form, other attribute orders or quoting, and FunkLoad 1.x's
XML-RPC records (a stray ``"`` after each).  `ElementReader` also holds the
state of one read (string table, details, tests, warnings) that both paths
fill.

A region goes through expat first (``xml.parsers.expat``, in C): FunkLoad
1.x's XML-RPC records read at ~1.5x the rate of the regular expressions per
CPU second (``bench/report.py --tolerant-requests``: 55,000 -> 84,000
responses/s of CPU; building the records is most of what remains).  The regular
expressions (`_ELEMENT` and a generic attribute parser) stay the reference:
they read whatever expat refuses or would read otherwise (a broken CDATA
section, invalid UTF-8, a truncated line, a comment, whitespace or an odd
character reference inside an attribute value, deep nesting, a line that
looks like an element and is none), and expat's events are applied only
once the whole region has parsed, so both give the same records, strings,
details and warnings (tests/test_results_xml.py compares them).  Expat reads
no DTD here (a ``<!DOCTYPE`` after the first element is an error), so no
entity is ever expanded.
"""

from __future__ import annotations

import html
import re
from typing import Any
from xml.parsers import expat

from marteau.results.compact import ROOT_TIME_KEY
from marteau.results.records import ERROR, ITERATION_RESULTS, RESULT_CODES

_TEST_KEYS = (
    b"<testResult cycle=",
    b" cvus=",
    b" thread=",
    b" suite=",
    b" name=",
    b"  time=",
    b" result=",
    b" steps=",
    b" duration=",
    b" connection_duration=",
    b" requests=",
    b" pages=",
    b" xmlrpc=",
    b" redirects=",
    b" images=",
    b" links=",
    b" />",
)

_ATTRS = rb"(?:\s+[^\s=/<>]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*"
_ELEMENT = re.compile(
    rb"<response" + _ATTRS + rb"\s*>\s*(?:<headers>.*?</headers>\s*)?"
    rb"(?:<body>\s*<!\[CDATA\[.*?\]\]>\s*</body>\s*|<body>.*?</body>\s*)?</response>"
    rb"|<(?:response|testResult|iteration|config|monitor|monitorconfig|funkload)"
    + _ATTRS
    + rb"\s*/?>"
    rb"|</funkload>",
    re.S,
)
_START = re.compile(rb"<(\w+)(" + _ATTRS + rb")\s*(/?)>", re.S)
_ATTR = re.compile(rb"([^\s=/<>]+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
_HEADER = re.compile(rb"<header(" + _ATTRS + rb")\s*/?>", re.S)
_BODY = re.compile(rb"<body>(.*)</body>", re.S)
_ELEMENT_LINE = re.compile(rb"^[ \t]*<(response|testResult)\b", re.M)
_MAX_WARNINGS = 20
_REQUIRED = ("cycle", "cvus", "thread", "step", "type", "result", "url", "code", "time", "duration")
# What expat would read otherwise than the regular expressions: a tab, CR or
# newline inside an attribute value (expat makes it a space) and a numeric
# character reference other than FunkLoad's (html.unescape maps some, such as
# &#128; or &#127;, to other characters than XML does).
_RAW_WHITESPACE = re.compile(rb"=\s*+(?:\"[^\"\t\n\r]*+[\t\n\r]|'[^'\t\n\r]*+[\t\n\r])")
_ODD_REFERENCE = re.compile(rb"&#(?!(?:9|10|13);)")
_MAX_DEPTH = 64  # deeper nesting is never FunkLoad's: the regular expressions read it
_EVENTS = frozenset(("funkload", "config", "monitor", "testResult", "iteration"))

Event = tuple[str, Any, int, int]  # (tag or "long" or "closed", attrs or bytes, line, offset)


class _Unsupported(Exception):
    """The region holds something expat reads otherwise: the regular expressions read it."""


class _ExpatRegion:
    """One region through expat: its events, in file order, or `_Unsupported`.

    The region is parsed inside a synthetic root (``<r>``, and a ``<funkload>``
    when the region closes the file's root), so its lines need not form a
    document; the elements still open at its end are closed for it.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        prefix = b"<r>"
        if data.count(b"</funkload") > data.count(b"<funkload"):
            prefix += b"<funkload>"  # the file's root was opened in an earlier region
        self.prefix = prefix
        self.events: list[Event] = []
        self.open: list[str] = []
        self.response: tuple[int, int, dict[str, str], int] | None = None
        self.elements = 0  # <response> and <testResult>, as `_ELEMENT_LINE` counts them
        parser = self.parser = expat.ParserCreate("utf-8")
        parser.buffer_text = True
        parser.StartElementHandler = self.start
        parser.EndElementHandler = self.end
        parser.StartCdataSectionHandler = self.cdata
        parser.CommentHandler = self.unsupported
        parser.ProcessingInstructionHandler = self.unsupported

    def parse(self) -> list[Event]:
        parser, data = self.parser, self.data
        parser.Parse(self.prefix, False)
        parser.Parse(data, False)
        if self.response is not None:
            raise _Unsupported("a <response> still open at the end of the region")
        parser.Parse("".join(f"</{name}>" for name in reversed(self.open)).encode(), True)
        if self.elements != len(_ELEMENT_LINE.findall(data)):
            raise _Unsupported("a line that looks like an element and is none")
        return self.events

    def unsupported(self, *_: object) -> None:
        raise _Unsupported("a comment or processing instruction")

    def cdata(self) -> None:
        if self.response is None:
            raise _Unsupported("a CDATA section outside a <response>")

    def start(self, name: str, attrs: dict[str, str]) -> None:
        self.open.append(name)
        if len(self.open) > _MAX_DEPTH:
            raise _Unsupported("deep nesting")
        if self.response is not None:
            return  # the long form's <headers> and <body>: read with the element
        offset = self.parser.CurrentByteIndex - len(self.prefix)
        if offset < 0:
            return  # the synthetic root
        line = self.parser.CurrentLineNumber
        if name == "response":
            self.response = (len(self.open), offset, attrs, line)
        elif name in _EVENTS:
            self.elements += name == "testResult"
            self.events.append((name, attrs, line, offset))

    def end(self, name: str) -> None:
        depth = len(self.open)
        self.open.pop()
        response = self.response
        if response is None:
            if name == "funkload":
                self.end_root(self.parser.CurrentByteIndex - len(self.prefix))
            return
        if depth != response[0]:
            return  # the end of a <headers>, <body> or <header>
        self.response = None
        self.elements += 1
        end = self.parser.CurrentByteIndex - len(self.prefix)
        _, start, attrs, line = response
        if self.empty(start, end):
            self.events.append(("response", attrs, line, start))
        else:
            self.events.append(("long", self.long_form(start, end), line, start))

    def end_root(self, end: int) -> None:
        if self.data.startswith(b"</funkload>", end):
            self.events.append(("closed", None, 0, end))
        elif self.data.startswith(b"</funkload", end):
            raise _Unsupported("an odd </funkload>")

    def long_form(self, start: int, end: int) -> bytes:
        """The long form's bytes, if the regular expression reads it as the same element."""
        match = _ELEMENT.match(self.data, start)
        if (
            match is None
            or match.end() != end + 11
            or not self.data.startswith(b"</response>", end)
        ):
            raise _Unsupported("a <response> the regular expression reads otherwise")
        return match.group()

    def empty(self, start: int, end: int) -> bool:
        """Whether the element at `start`, ended at `end`, is ``<x .../>``.

        Expat ends an empty element just after its ``/>`` and any other at
        its ``</``: only an empty element right before an end tag needs a look.
        """
        data = self.data
        if data[end - 1] != 62 or data[end - 2] != 47:  # not "/>"
            return False
        if not data.startswith(b"</", end):
            return True
        match = _START.match(data, start)
        return match is not None and match.end() == end and match.group(3) == b"/"


def _expat_events(data: bytes) -> list[Event] | None:
    """The region's events, or None when the regular expressions must read it."""
    if _RAW_WHITESPACE.search(data) or _ODD_REFERENCE.search(data):
        return None
    try:
        return _ExpatRegion(data).parse()
    except (expat.ExpatError, _Unsupported):
        return None


class _Where:
    """A position in a region, turned into a line number only for a warning."""

    __slots__ = ("data", "pos", "first_line")

    def __init__(self, data: bytes, pos: int, first_line: int) -> None:
        self.data, self.pos, self.first_line = data, pos, first_line

    def __str__(self) -> str:
        return str(self.first_line + self.data.count(b"\n", 0, self.pos))


class ElementReader:
    """State of one `read_xml` (string table, details, tests, warnings) and its element parser.

    A region is parsed by expat, else by `_ELEMENT` and a generic attribute
    parser; the fast path's subclass adds the response lines it reads in bulk.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.config: dict[str, str] = {}
        self.table: dict[bytes, int] = {b"": 0}
        self.details: list[dict[str, Any]] = []
        self.monitors: list[dict[str, str]] = []
        self.tests: list[tuple[Any, ...]] = []
        self.iterations: list[tuple[Any, ...]] = []
        self.warnings: list[str] = []
        self.dropped_warnings = 0
        self.invalid_utf8 = 0
        self.root = False
        self.closed = False
        self.suite_name: tuple[str, str] | None = None
        self.unknown_results: set[str] = set()

    # -- small helpers --

    def warn(self, message: str) -> None:
        if len(self.warnings) < _MAX_WARNINGS:
            self.warnings.append(f"{self.path}: {message}")
        else:
            self.dropped_warnings += 1

    def text(self, value: bytes) -> str:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            self.invalid_utf8 += 1
            return value.decode("utf-8", "replace")

    def unescaped(self, value: bytes) -> str:
        text = self.text(value)
        return html.unescape(text) if "&" in text else text

    def attrs(self, source: bytes) -> dict[str, str]:
        return {
            self.text(k): self.unescaped(a if a or not b else b)
            for k, a, b in _ATTR.findall(source)
        }

    def intern_text(self, value: str) -> int:
        """Intern an already unescaped string (marked so that `result` keeps it)."""
        return self.table.setdefault(
            b"\0" + value.encode("utf-8", "surrogatepass"), len(self.table)
        )

    # -- regions: everything that is not a plain response line --

    def region(self, data: bytes, first_line: int, rows: list[tuple[Any, ...]]) -> None:
        events = _expat_events(data)
        if events is None:
            self.regex_region(data, first_line, rows)
            return
        for tag, value, line, offset in events:
            line += first_line - 1
            if tag == "response":
                self.response(value, None, line, rows)
            elif tag == "long":
                self.element(value, line, rows)
            elif tag == "closed":
                self.closed = True
            elif tag != "testResult" or not self.fast_test_at(data, offset):
                self.tag(tag, value, line, rows)

    def fast_test_at(self, data: bytes, offset: int) -> bool:
        """`fast_test` on the ``<testResult>`` at `offset`, as `regex_region` would try it.

        Only while no suite and name are known: that is all the two ways differ by.
        """
        if self.suite_name is not None or not data.startswith(b"<testResult cycle=", offset):
            return False
        match = _ELEMENT.match(data, offset)
        return match is not None and self.fast_test(match.group())

    def regex_region(self, data: bytes, first_line: int, rows: list[tuple[Any, ...]]) -> None:
        matched = 0
        for m in _ELEMENT.finditer(data):
            element = m.group()
            if element.startswith(b"<testResult cycle=") and self.fast_test(element):
                matched += 1
                continue
            matched += element.startswith((b"<response", b"<testResult"))
            self.element(element, _Where(data, m.start(), first_line), rows)
        if matched != len(_ELEMENT_LINE.findall(data)):
            self.find_skipped(data, first_line)

    def find_skipped(self, data: bytes, first_line: int) -> None:
        """Slow path, only when some element did not parse: say which lines."""
        spans = iter([m.span() for m in _ELEMENT.finditer(data)])
        span = next(spans, None)
        for m in _ELEMENT_LINE.finditer(data):
            pos = m.start(1) - 1
            while span is not None and span[1] <= pos:
                span = next(spans, None)
            if span is None or not span[0] <= pos < span[1]:
                line = first_line + data.count(b"\n", 0, pos)
                self.warn(f"line {line}: unreadable <{m.group(1).decode()}> skipped")

    def fast_test(self, line: bytes) -> bool:
        """FunkLoad's own ``<testResult>`` line, without the attribute parser."""
        parts = line.split(b'"')
        if len(parts) != 33 or tuple(parts[0::2]) != _TEST_KEYS:
            return False
        values = parts[1::2]
        try:
            result = RESULT_CODES[values[6].decode()]
            self.tests.append(
                (
                    float(values[5]),
                    float(values[8]),
                    float(values[9]),
                    int(values[0]),
                    int(values[1]),
                    int(values[2]),
                    result,
                    *map(int, (values[7], *values[10:16])),
                    0,
                )
            )
        except (KeyError, ValueError, UnicodeDecodeError):
            return False
        return True

    def element(self, element: bytes, line: _Where | int, rows: list[tuple[Any, ...]]) -> None:
        if element.startswith(b"</funkload"):
            self.closed = True
            return
        start = _START.match(element)
        if start is None:  # pragma: no cover - _ELEMENT guarantees a start tag
            return
        tag = start.group(1)
        if tag == b"monitorconfig":
            return  # py2 pickles of plot definitions: never unpickled
        rest = None if start.group(3) else element[start.end() :]
        self.tag(tag.decode(), self.attrs(start.group(2)), line, rows, rest)

    def tag(
        self,
        tag: str,
        attrs: dict[str, str],
        line: _Where | int,
        rows: list[tuple[Any, ...]],
        rest: bytes | None = None,
    ) -> None:
        """One element: `rest` is what follows the start tag of a long-form response."""
        if tag == "funkload":
            self.root = True
            if "time" in attrs:
                self.config.setdefault(ROOT_TIME_KEY, attrs["time"])
        elif tag == "config":
            if "key" in attrs:
                self.config[attrs["key"]] = attrs.get("value", "")
        elif tag == "monitor":
            self.monitors.append(attrs)
        elif tag == "testResult":
            self.test_result(attrs, line)
        elif tag == "iteration":
            self.iteration(attrs, line)
        elif tag == "response":
            self.response(attrs, rest, line, rows)

    def result_code(self, value: str) -> int:
        code = RESULT_CODES.get(value)
        if code is None:
            self.unknown_results.add(value)
            return ERROR
        return code

    def response(
        self,
        attrs: dict[str, str],
        rest: bytes | None,
        line: _Where | int,
        rows: list[tuple[Any, ...]],
    ) -> None:
        missing = [n for n in _REQUIRED if n not in attrs]
        if missing:
            self.warn(f"line {line}: <response> without {', '.join(missing)} skipped")
            return
        detail: dict[str, Any] | None = None
        if attrs.get("traceback"):
            detail = {"headers": [], "body": "", "traceback": attrs["traceback"]}
        if rest is not None:  # the long form of HTTP failures
            headers = [
                [h.get("name", ""), h.get("value", "")]
                for h in (self.attrs(m.group(1)) for m in _HEADER.finditer(rest))
            ]
            body_match = _BODY.search(rest)
            detail = detail or {"headers": [], "body": "", "traceback": ""}
            detail["headers"] = headers
            detail["body"] = self.body(body_match.group(1)) if body_match else ""
        try:
            row = (
                float(attrs["time"]),
                float(attrs["duration"]),
                int(attrs["cycle"]),
                int(attrs["cvus"]),
                int(attrs["thread"]),
                int(attrs["step"]),
                int(attrs.get("number", "1")),
                int(attrs["code"]),
                self.result_code(attrs["result"]),
                self.intern_text(attrs["type"]),
                self.intern_text(attrs["url"]),
                self.intern_text(attrs.get("description", "")),
                0,
            )
        except ValueError as exc:
            self.warn(f"line {line}: unreadable <response> skipped ({exc})")
            return
        if detail is not None:
            self.details.append(detail)
            row = (*row[:-1], len(self.details))
        if self.suite_name is None:
            self.suite_name = (attrs.get("suite", ""), attrs.get("name", ""))
        rows.append(row)

    def body(self, content: bytes) -> str:
        """CDATA section(s) back to text; FunkLoad's raw ``]]>`` survives."""
        begin = content.find(b"<![CDATA[")
        end = content.rfind(b"]]>")
        if begin < 0 or end < begin:
            text = self.unescaped(content.strip())
        else:
            text = self.text(content[begin + 9 : end].replace(b"]]><![CDATA[", b""))
        if text.startswith("\n"):
            text = text[1:]
        if text.endswith("\n"):
            text = text[:-1]
        return text

    def test_result(self, attrs: dict[str, str], line: _Where | int) -> None:
        try:
            detail = 0
            if attrs.get("traceback"):
                detail = len(self.details) + 1
            row = (
                float(attrs["time"]),
                float(attrs["duration"]),
                float(attrs.get("connection_duration", 0.0)),
                int(attrs["cycle"]),
                int(attrs["cvus"]),
                int(attrs["thread"]),
                self.result_code(attrs.get("result", "")),
                *(
                    int(attrs.get(k, 0))
                    for k in ("steps", "requests", "pages", "xmlrpc", "redirects", "images")
                ),
                int(attrs.get("links", 0)),
                detail,
            )
        except (KeyError, ValueError) as exc:
            self.warn(f"line {line}: unreadable <testResult> skipped ({exc})")
            return
        if detail:
            self.details.append({"headers": [], "body": "", "traceback": attrs["traceback"]})
        self.tests.append(row)
        if self.suite_name is None:
            self.suite_name = (attrs.get("suite", ""), attrs.get("name", ""))

    def iteration(self, attrs: dict[str, str], line: _Where | int) -> None:
        try:
            result = ITERATION_RESULTS.index(attrs.get("result", ""))
        except ValueError:
            self.unknown_results.add(attrs.get("result", ""))
            result = ERROR
        try:
            row = (
                float(attrs["intended"]),
                float(attrs["time"]),
                float(attrs["duration"]),
                int(attrs["cycle"]),
                int(attrs.get("thread", 0)),
                int(attrs.get("worker", 0)),
                result,
                int(attrs.get("users", 0)),
            )
        except (KeyError, ValueError) as exc:
            self.warn(f"line {line}: unreadable <iteration> skipped ({exc})")
            return
        self.iterations.append(row)
