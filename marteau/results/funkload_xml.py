"""FunkLoad's XML result format: write it byte for byte, read it tolerantly.

Writing (node side, standard library only):

* `format_response`, `format_test_result`, `format_config`, `format_monitor`
  and `root_open` produce FunkLoad 1.17's lines exactly: attribute order,
  ``%.3i`` zero padding, py2 ``str(float)`` numbers (`py2_float`),
  ``quoteattr`` for url/description/traceback, the double space before
  ``time`` in ``<testResult>``, the long ``<headers>``/``<body>`` form of
  HTTP failures.
* `XmlLinesSink` is the `ResultSink` of functional mode (``marteau test``):
  root-less lines, as they come.
* `export_xml` turns a compact ``.mrt`` file into a full bench XML file,
  streaming, without numpy.

Deliberate deviations from FunkLoad, all so that a strict XML parser
(``xml.etree``) accepts every file we write; none changes a well-behaved
line:

* A failure body containing ``]]>`` is split into several CDATA sections
  (``]]]]><![CDATA[>``); FunkLoad wrote it raw and broke the file.
* Characters that XML 1.0 forbids (C0 controls other than tab/newline/CR,
  lone surrogates from undecodable bytes, U+FFFE/U+FFFF) become U+FFFD in
  bodies and attribute values; undecodable body bytes were already
  replaced when recorded.
* Config values, header values, suite/name/type go through XML escaping
  (a no-op for the identifiers and values FunkLoad users write).
* The stray ``"`` FunkLoad printed after every xmlrpc ``<response />`` is
  **not** written: it carries no data and every FunkLoad reader has to
  tolerate its absence as well as its presence.  `read_xml` accepts it.

An open-model bench (``marteau bench --rates``) also writes one
``<iteration .../>`` element per test iteration (`format_iteration`): an
element FunkLoad's report builder does not know and skips, so its tables stay
those of the tests and requests (docs/open-model.md says what they mean
then).  A closed-model file has none.

Reading (`read_xml`, controller side, numpy): one regular expression over
the bytes with FunkLoad's fixed attribute order handles the common
``<response .../>`` line; anything else (another attribute order, ``'``
quoting, extra or ``traceback`` attributes, the long failure form,
``<testResult>``, ``<config>``, ``<monitor>``) goes through a generic
attribute parser.  Files written by FunkLoad 1.x load: stray ``"`` text,
a missing ``</funkload>`` (warning), invalid UTF-8 (replaced, warning),
``<monitorconfig>`` (ignored: it holds py2 pickles, never unpickled).
"""

from __future__ import annotations

import datetime as _datetime
import html
import os
import re
import threading
import time as _time
from collections.abc import Iterable
from typing import IO, Any
from xml.sax.saxutils import escape, quoteattr

from marteau.errors import MarteauError
from marteau.results.compact import (
    CONFIG,
    DETAILS,
    ITERATIONS,
    MONITORS,
    RESPONSES,
    ROOT_TIME_KEY,
    SAMPLES,
    STRINGS,
    TESTS,
    decode_json_chunk,
    iter_chunks,
)
from marteau.results.records import (
    ERROR,
    ITERATION_FIELDS,
    ITERATION_RESULTS,
    ITERATION_STRUCT,
    RESPONSE_FIELDS,
    RESPONSE_STRUCT,
    RESULT_CODES,
    RESULT_NAMES,
    SAMPLE_FIELDS,
    TEST_FIELDS,
    TEST_STRUCT,
)

FUNKLOAD_VERSION = "1.17.2"


_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_RESULT_BY_NAME = {name.encode(): code for name, code in RESULT_CODES.items()}


# -- formatting ---------------------------------------------------------------


def py2_float(value: float) -> str:
    """Python 2's ``str(float)``: 12 significant digits, ``.0`` on integers."""
    text = f"{value:.12g}"
    if "." in text or "e" in text or "n" in text:  # 'n': inf, nan
        return text
    return text + ".0"


def near_integer(value: float) -> bool:
    """True when ``%.12g`` may print `value` without a point (`py2_float` adds ``.0``).

    The fast record formats use ``%.12g`` and leave these to `py2_float`: a
    value within half a unit of its 12th significant digit of an integer
    (an epoch time whose hundredths round to .00 prints as ``1796619784``).
    Conservative: some values it flags print a point anyway. The callers skip
    it for a duration in (0, 0.5), which it never flags (most of them).
    """
    frac = value % 1.0
    limit = 1e-11 * abs(value)
    return frac <= limit or 1.0 - frac <= limit


def i3(value: int) -> str:
    """FunkLoad's ``%.3i``: at least 3 digits (``005``, ``1000``, ``-001``)."""
    return "%.3i" % value  # noqa: UP031 - the exact printf semantics are the point


def xml_text(value: str) -> str:
    """Replace what XML 1.0 forbids with U+FFFD (a strict parser must accept us)."""
    if _ILLEGAL_XML.search(value):
        return _ILLEGAL_XML.sub("\ufffd", value)
    return value


def attr(value: str) -> str:
    """``quoteattr`` (newline -> ``&#10;``), made safe for strict parsers."""
    return quoteattr(xml_text(value))


def raw(value: str) -> str:
    """A value FunkLoad wrote raw (suite, name, type, header name): escaped only if needed."""
    return escape(xml_text(value), {'"': "&quot;"})


def cdata(body: str) -> str:
    """Body text as CDATA sections, well-formed whatever it contains."""
    return "<![CDATA[\n" + xml_text(body).replace("]]>", "]]]]><![CDATA[>") + "\n]]>"


def root_open(time: str | None = None) -> str:
    """The root start tag; `time` defaults to now, like FunkLoad."""
    if time is None:
        time = _datetime.datetime.now().isoformat()
    return f'<funkload version="{FUNKLOAD_VERSION}" time="{raw(time)}">'


def format_config(key: str, value: str) -> str:
    return f'<config key="{raw(str(key))}" value={attr(str(value))} />'


def format_monitor(attributes: dict[str, str]) -> str:
    """``<monitor key= time= host= ...stats...  />`` (two spaces before ``/>``)."""
    first = [k for k in ("key", "time", "host") if k in attributes]
    rest = [k for k in attributes if k not in ("key", "time", "host")]
    parts = " ".join(f"{raw(k)}={attr(str(attributes[k]))}" for k in first + rest)
    return f"<monitor {parts}  />"


def format_response(
    *,
    cycle: int,
    cvus: int,
    thread: int,
    suite: str,
    name: str,
    step: int,
    number: int,
    type: str,
    result: str,
    url: str,
    code: int,
    description: str,
    time: float,
    duration: float,
    traceback: str | None = None,
    headers: Iterable[tuple[str, str]] | None = None,
    body: bytes | str | None = None,
) -> str:
    """One ``<response>``, without the trailing newline.

    The long form (``<headers>``, ``<body>``) is written when `headers` or
    `body` is given (HTTP failures); `traceback` adds the attribute of
    error records.
    """
    line = (
        f'<response cycle="{i3(cycle)}" cvus="{i3(cvus)}" thread="{i3(thread)}" '
        f'suite="{raw(suite)}" name="{raw(name)}" step="{i3(step)}" number="{i3(number)}" '
        f'type="{raw(type)}" result="{result}" url={attr(url)} code="{code}" '
        f'description={attr(description or "")} time="{py2_float(time)}" '
        f'duration="{py2_float(duration)}"'
    )
    if traceback:
        line += f" traceback={attr(traceback)}"
    if headers is None and body is None:
        return line + " />"
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    parts = [line + ">", "  <headers>"]
    for key, value in headers or ():
        parts.append(f'    <header name="{raw(str(key).lower())}" value={attr(str(value))} />')
    parts.append("  </headers>")
    parts.append(f"  <body>{cdata(body or '')}\n  </body>")
    parts.append("</response>")
    return "\n".join(parts)


def format_test_result(
    *,
    cycle: int,
    cvus: int,
    thread: int,
    suite: str,
    name: str,
    time: float,
    result: str,
    steps: int,
    duration: float,
    connection_duration: float,
    requests: int,
    pages: int,
    xmlrpc: int,
    redirects: int,
    images: int,
    links: int,
    traceback: str | None = None,
) -> str:
    """One ``<testResult>`` line (note FunkLoad's double space before ``time``)."""
    line = (
        f'<testResult cycle="{i3(cycle)}" cvus="{i3(cvus)}" thread="{i3(thread)}" '
        f'suite="{raw(suite)}" name="{raw(name)}"  time="{py2_float(time)}" '
        f'result="{result}" steps="{steps}" duration="{py2_float(duration)}" '
        f'connection_duration="{py2_float(connection_duration)}" requests="{requests}" '
        f'pages="{pages}" xmlrpc="{xmlrpc}" redirects="{redirects}" images="{images}" '
        f'links="{links}"'
    )
    if traceback and result != "Successful":
        line += f" traceback={attr(traceback)}"
    return line + " />"


# -- writing ------------------------------------------------------------------


def format_iteration(
    *,
    cycle: int,
    thread: int,
    worker: int,
    intended: float,
    time: float,
    duration: float,
    result: str,
    users: int,
) -> str:
    """One ``<iteration>`` line of an open-model bench (unknown to FunkLoad: skipped).

    Instants to the microsecond: FunkLoad's 12 digits would round an epoch
    instant to 10 ms, more than many a latency.
    """
    return (
        f'<iteration cycle="{i3(cycle)}" thread="{i3(thread)}" worker="{worker}" '
        f'intended="{intended:.6f}" time="{time:.6f}" '
        f'duration="{py2_float(duration)}" result="{result}" users="{users}" />'
    )


def backup_existing(path: str) -> str | None:
    """Rename an existing result file to ``<path>.bak-<epoch>`` (FunkLoad does)."""
    if os.path.exists(path):
        backup = f"{path}.bak-{int(_time.time())}"
        os.replace(path, backup)
        return backup
    return None


def _open_text(path: str) -> IO[str]:
    try:
        return open(path, "w", encoding="utf-8", errors="replace", newline="\n")
    except OSError as exc:
        raise MarteauError(f"{path}: cannot write: {exc.strerror}") from exc


class XmlLinesSink:
    """`ResultSink` of functional mode: FunkLoad's root-less XML lines, as they come."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.recording = True
        backup_existing(self.path)
        self._file = _open_text(self.path)
        self._lock = threading.Lock()

    def _write(self, text: str) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.write(text + "\n")
                self._file.flush()

    def response(self, **kwargs: Any) -> None:
        if self.recording:
            self._write(format_response(**kwargs))

    def test_result(self, **kwargs: Any) -> None:
        if self.recording:
            self._write(format_test_result(**kwargs))

    def config(self, key: str, value: str) -> None:
        self._write(format_config(key, value))

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> XmlLinesSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_BATCH = 4096


def export_xml(
    compact_path: str | os.PathLike[str],
    xml_path: str | os.PathLike[str],
    *,
    time: str | None = None,
) -> list[str]:
    """Write the full FunkLoad bench XML of a compact file; returns its warnings.

    Streams: two passes over the compact file (config first, as FunkLoad
    writes it at the top), records formatted in batches, each failure
    detail dropped once written.  The root ``time`` is `time`, else the
    compact file's ``marteau:time`` config, else the first record's start.
    """
    source = os.fspath(compact_path)
    target = os.fspath(xml_path)
    warnings: list[str] = []
    config: dict[str, str] = {}
    first_time: float | None = None
    skip = frozenset((STRINGS, DETAILS, TESTS, SAMPLES, ITERATIONS, MONITORS))
    for kind, payload in iter_chunks(source, warnings, skip=skip):
        if kind == CONFIG:
            config.update(decode_json_chunk(source, kind, payload))
        elif kind == RESPONSES and first_time is None and payload:
            first_time = RESPONSE_STRUCT.unpack_from(payload)[0]
    if time is None:
        time = config.get(ROOT_TIME_KEY)
    if time is None and first_time is not None:
        time = _datetime.datetime.fromtimestamp(first_time).isoformat()
    suite, name = config.get("class", ""), config.get("method", "")

    backup_existing(target)
    with _open_text(target) as out:
        out.write(root_open(time) + "\n")
        out.writelines(format_config(k, v) + "\n" for k, v in config.items() if k != ROOT_TIME_KEY)
        writer = _RecordWriter(out, suite, name)
        for kind, payload in iter_chunks(source, skip=frozenset((CONFIG, SAMPLES))):
            if kind == STRINGS:
                writer.add_strings(decode_json_chunk(source, kind, payload))
            elif kind == DETAILS:
                writer.add_details(decode_json_chunk(source, kind, payload))
            elif kind == RESPONSES:
                writer.responses(payload)
            elif kind == TESTS:
                writer.tests(payload)
            elif kind == ITERATIONS:
                out.writelines(_iteration_lines(payload))
            elif kind == MONITORS:
                out.writelines(
                    format_monitor(m) + "\n" for m in decode_json_chunk(source, kind, payload)
                )
        out.write("</funkload>\n")
    return warnings


def _iteration_lines(data: bytes) -> Iterable[str]:
    for (
        intended,
        time,
        duration,
        cycle,
        thread,
        worker,
        result,
        users,
    ) in ITERATION_STRUCT.iter_unpack(data):
        yield (
            format_iteration(
                cycle=cycle,
                thread=thread,
                worker=worker,
                intended=intended,
                time=time,
                duration=duration,
                result=ITERATION_RESULTS[result],
                users=users,
            )
            + "\n"
        )


class _RecordWriter:
    """Formats packed records with per-string caches (the export's inner loop)."""

    def __init__(self, out: IO[str], suite: str, name: str) -> None:
        self.out = out
        self.suite = suite
        self.name = name
        self.strings: list[str] = [""]
        self.quoted: list[str] = ['""']  # attr(string)
        self.escaped: list[str] = [""]  # raw(string)
        self.details: dict[int, dict[str, Any]] = {}
        self.detail_count = 0
        esc_suite = raw(suite).replace("%", "%%")
        esc_name = raw(name).replace("%", "%%")
        self.fast = (
            '<response cycle="%.3i" cvus="%.3i" thread="%.3i" '
            f'suite="{esc_suite}" name="{esc_name}" step="%.3i" number="%.3i" '
            'type="%s" result="%s" url=%s code="%s" description=%s '
            'time="%.12g" duration="%.12g" />\n'
        )
        self.fast_test = (
            '<testResult cycle="%.3i" cvus="%.3i" thread="%.3i" '
            f'suite="{esc_suite}" name="{esc_name}"  time="%.12g" '
            'result="%s" steps="%d" duration="%.12g" connection_duration="%.12g" '
            'requests="%d" pages="%d" xmlrpc="%d" redirects="%d" images="%d" links="%d" />\n'
        )

    def add_strings(self, strings: list[str]) -> None:
        self.strings.extend(strings)
        self.quoted.extend(attr(s) for s in strings)
        self.escaped.extend(raw(s) for s in strings)

    def add_details(self, details: list[dict[str, Any]]) -> None:
        for detail in details:
            self.detail_count += 1
            self.details[self.detail_count] = detail

    def responses(self, data: bytes) -> None:
        fast = self.fast
        quoted, escaped, names = self.quoted, self.escaped, RESULT_NAMES
        lines: list[str] = []
        for rec in RESPONSE_STRUCT.iter_unpack(data):
            (time, duration, cycle, cvus, thread, step, number, code, result, t, u, d, det) = rec
            if det or near_integer(time) or not 0.0 < duration < 0.5 and near_integer(duration):
                lines.append(self._slow_response(rec) + "\n")
            else:
                lines.append(
                    fast
                    % (
                        cycle,
                        cvus,
                        thread,
                        step,
                        number,
                        escaped[t],
                        names[result],
                        quoted[u],
                        code,
                        quoted[d],
                        time,
                        duration,
                    )
                )
            if len(lines) >= _BATCH:
                self.out.write("".join(lines))
                lines.clear()
        self.out.write("".join(lines))

    def _slow_response(self, rec: tuple[Any, ...]) -> str:
        (time, duration, cycle, cvus, thread, step, number, code, result, t, u, d, det) = rec
        detail = self.details.pop(det, None) if det else None
        headers = body = traceback = None
        if detail is not None:
            traceback = detail.get("traceback") or None
            if result != ERROR or detail.get("headers") or detail.get("body"):
                headers = [(k, v) for k, v in detail.get("headers") or ()]
                body = detail.get("body") or ""
        return format_response(
            cycle=cycle,
            cvus=cvus,
            thread=thread,
            suite=self.suite,
            name=self.name,
            step=step,
            number=number,
            type=self.strings[t],
            result=RESULT_NAMES[result],
            url=self.strings[u],
            code=code,
            description=self.strings[d],
            time=time,
            duration=duration,
            traceback=traceback,
            headers=headers,
            body=body,
        )

    def tests(self, data: bytes) -> None:
        """``<testResult>`` lines: as `responses`, one %-format unless a traceback is
        attached or a float may need Python 2's ``.0`` (`near_integer`)."""
        fast, names = self.fast_test, RESULT_NAMES
        lines = []
        for rec in TEST_STRUCT.iter_unpack(data):
            (time, duration, cdur, cycle, cvus, thread, result, steps) = rec[:8]
            (requests, pages, xmlrpc, redirects, images, links, det) = rec[8:]
            if not (
                det
                or near_integer(time)
                or not (0.0 < duration < 0.5 and 0.0 < cdur < 0.5)
                and (near_integer(duration) or near_integer(cdur))
            ):
                counts = rec[8:14]  # requests, pages, xmlrpc, redirects, images, links
                head = (cycle, cvus, thread, time, names[result], steps, duration, cdur)
                lines.append(fast % (*head, *counts))
                continue
            detail = self.details.pop(det, None) if det else None
            lines.append(
                format_test_result(
                    cycle=cycle,
                    cvus=cvus,
                    thread=thread,
                    suite=self.suite,
                    name=self.name,
                    time=time,
                    result=RESULT_NAMES[result],
                    steps=steps,
                    duration=duration,
                    connection_duration=cdur,
                    requests=requests,
                    pages=pages,
                    xmlrpc=xmlrpc,
                    redirects=redirects,
                    images=images,
                    links=links,
                    traceback=detail.get("traceback") if detail else None,
                )
                + "\n"
            )
        self.out.write("".join(lines))


# -- reading ------------------------------------------------------------------

# FunkLoad's own <response .../> line: these keys around 14 "-quoted values.
_RESPONSE_KEYS = (
    b"<response cycle=",
    b" cvus=",
    b" thread=",
    b" suite=",
    b" name=",
    b" step=",
    b" number=",
    b" type=",
    b" result=",
    b" url=",
    b" code=",
    b" description=",
    b" time=",
    b" duration=",
    b" />",
)
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
_KEY_WIDTHS = [len(key) for key in _RESPONSE_KEYS]
_PROBES = [
    (j, offset, key[offset])
    for j, key in enumerate(_RESPONSE_KEYS)
    for offset in ((0, 1, 10, 15) if j == 0 else (0, 1, 2) if j == 14 else (1, 2, len(key) - 1))
]
_PROBE_KEYS = [j for j, _, _ in _PROBES]
_PROBE_OFFSETS = [offset for _, offset, _ in _PROBES]
_PROBE_BYTES = bytes(byte for _, _, byte in _PROBES)
_INT_VALUES = {"cycle": 0, "cvus": 1, "thread": 2, "step": 5, "number": 6, "code": 10}
_FLOAT_VALUES = {"time": 12, "duration": 13}
_STRING_VALUES = {"type": 7, "url": 9, "description": 11}
_RESULT_VALUE = 8
_MAX_NUMBER = 32  # wider "numbers" go to the generic parser (and fail there)

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
_BOUNDARY = (
    b"\n<response ",
    b"\n<testResult ",
    b"\n<iteration ",
    b"\n<config ",
    b"\n<monitor",
    b"\n</funkload",
)
_STARTS = (b"<funkload", b"<response", b"<testResult", b"<config", b"<monitor")
_BLOCK = 16 * 1024 * 1024
_MAX_WARNINGS = 20
_RESPONSE_NAMES = (
    "cycle",
    "cvus",
    "thread",
    "suite",
    "name",
    "step",
    "number",
    "type",
    "result",
    "url",
    "code",
    "description",
    "time",
    "duration",
)


class _Where:
    """A position in a region, turned into a line number only for a warning."""

    __slots__ = ("data", "pos", "first_line")

    def __init__(self, data: bytes, pos: int, first_line: int) -> None:
        self.data, self.pos, self.first_line = data, pos, first_line

    def __str__(self) -> str:
        return str(self.first_line + self.data.count(b"\n", 0, self.pos))


class _XmlReader:
    """State of one `read_xml`: string table, record parts, details, warnings.

    Per block of whole lines, numpy finds every line that is exactly
    FunkLoad's ``<response .../>`` (28 quotes, the fixed keys, byte for
    byte) and converts its numbers in C; only type/url/description become
    Python objects (to be interned).  Every other run of lines is a region
    parsed by `_ELEMENT` and a generic attribute parser; its records are put
    back in file order by line index.
    """

    def __init__(self, path: str) -> None:
        import numpy

        from marteau.results.records import numpy_dtype

        self.np = numpy
        self.dtype = numpy_dtype(RESPONSE_FIELDS)
        self.range28 = numpy.arange(28, dtype=numpy.int32)
        self.powers = 10 ** numpy.arange(8, -1, -1, dtype=numpy.int64)
        self.key_widths = numpy.array(_KEY_WIDTHS)
        self.probe_keys = numpy.array(_PROBE_KEYS)
        self.probe_offsets = numpy.array(_PROBE_OFFSETS, numpy.int32)
        self.probe_bytes = numpy.frombuffer(_PROBE_BYTES, numpy.uint8)
        self.path = path
        self.config: dict[str, str] = {}
        self.table: dict[bytes, int] = {b"": 0}
        self.details: list[dict[str, Any]] = []
        self.monitors: list[dict[str, str]] = []
        self.tests: list[tuple[Any, ...]] = []
        self.iterations: list[tuple[Any, ...]] = []
        self.parts: list[Any] = []  # structured response arrays, one per block
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

    # -- one block of whole lines --

    def block(self, data: bytes, first_line: int) -> None:
        np = self.np
        buf = np.frombuffer(data, np.uint8)
        newlines = np.flatnonzero(buf == 10).astype(np.int32)  # blocks are < 2 GiB
        line_start = np.concatenate((np.zeros(1, np.int32), newlines + 1))
        line_end = np.concatenate((newlines, np.full(1, len(data), np.int32)))
        if line_start[-1] == len(data):  # data ends with a newline: no empty last line
            line_start, line_end = line_start[:-1], line_end[:-1]
        quotes = np.flatnonzero(buf == 34).astype(np.int32)
        lo = np.searchsorted(quotes, line_start)
        hi = np.searchsorted(quotes, line_end)
        fast = np.flatnonzero(hi - lo == 28)
        fast_lines, columns = self.fast_responses(
            data, buf, quotes, lo[fast], fast, line_start, line_end
        )

        is_fast = np.zeros(len(line_start), bool)
        is_fast[fast_lines] = True
        slow_rows: list[tuple[Any, ...]] = []
        slow_lines: list[int] = []
        slow = np.flatnonzero(~is_fast)
        if len(slow):
            # Runs of consecutive non-fast lines are regions, parsed in order.
            breaks = np.flatnonzero(np.diff(slow) != 1) + 1
            for run in np.split(slow, breaks):
                first, last = int(run[0]), int(run[-1])
                region = data[int(line_start[first]) : int(line_end[last])]
                before = len(slow_rows)
                self.region(region, first_line + first, slow_rows)
                slow_lines.extend([first] * (len(slow_rows) - before))

        n_fast = len(fast_lines)
        records = np.zeros(n_fast + len(slow_rows), self.dtype)
        for name, values in columns.items():
            records[name][:n_fast] = values
        if slow_rows:
            records[n_fast:] = np.array(slow_rows, self.dtype)
            order = np.argsort(np.concatenate((fast_lines, slow_lines)), kind="stable")
            records = records[order]
        if len(records):
            self.parts.append(records)

    def fast_responses(
        self,
        data: bytes,
        buf: Any,
        quotes: Any,
        first_quote: Any,
        lines: Any,
        line_start: Any,
        line_end: Any,
    ) -> tuple[Any, dict[str, Any]]:
        """Lines that are exactly FunkLoad's response line → (line indexes, columns)."""
        np = self.np
        if not len(lines):
            return lines, {}
        q = quotes.take(first_quote[:, None] + self.range28)  # (n, 28) quote positions
        # Key j runs from just after quote 2j-1 (the line start for j = 0) to
        # quote 2j (the line end for the closing " />"); all widths are fixed.
        ok = q[:, 0] - line_start[lines] == _KEY_WIDTHS[0]
        ok &= line_end[lines] - q[:, 27] - 1 == _KEY_WIDTHS[14]
        ok &= (q[:, 2::2] - q[:, 1:27:2] - 1 == self.key_widths[1:14]).all(1)
        # Probe 3 bytes per key: the first two letters of the attribute name
        # (unique among FunkLoad's names) and its "=".
        key_start = np.empty((len(lines), 15), np.int32)
        key_start[:, 0] = line_start[lines]
        key_start[:, 1:] = q[:, 1::2] + 1
        probes = buf.take(key_start.take(self.probe_keys, axis=1) + self.probe_offsets, mode="clip")
        ok &= (probes == self.probe_bytes).all(1)
        value_start = q[:, 0::2] + 1
        value_width = q[:, 1::2] - value_start
        numeric = [*_INT_VALUES.values(), *_FLOAT_VALUES.values()]
        ok &= ((value_width[:, numeric] > 0) & (value_width[:, numeric] <= _MAX_NUMBER)).all(1)
        result_first = buf.take(value_start[:, _RESULT_VALUE])
        result_width = value_width[:, _RESULT_VALUE]
        result_last = buf.take(value_start[:, _RESULT_VALUE] + result_width - 1)
        result = np.full(len(lines), 255, np.uint8)
        for code, name in enumerate(RESULT_NAMES):  # others go to the generic parser
            raw_name = name.encode()
            result[
                (result_first == raw_name[0])
                & (result_last == raw_name[-1])
                & (result_width == len(raw_name))
            ] = code
        ok &= result != 255
        if not ok.all():
            lines, q = lines[ok], q[ok]
            value_start, value_width, result = value_start[ok], value_width[ok], result[ok]
        if not len(lines):
            return lines, {}
        if self.suite_name is None:
            first = data[int(line_start[lines[0]]) : int(line_end[lines[0]])].split(b'"')
            self.suite_name = (self.unescaped(first[7]), self.unescaped(first[9]))
        columns: dict[str, Any] = {"result": result}
        for name, j in _INT_VALUES.items():
            columns[name] = self.numbers(buf, value_start[:, j], value_width[:, j], np.int64)
        for name, j in _FLOAT_VALUES.items():
            columns[name] = self.numbers(buf, value_start[:, j], value_width[:, j], np.float64)
        table = self.table
        for name, j in _STRING_VALUES.items():
            ends = (value_start[:, j] + value_width[:, j]).tolist()
            values = [data[a:b] for a, b in zip(value_start[:, j].tolist(), ends, strict=True)]
            for value in dict.fromkeys(values):
                if value not in table:
                    table[value] = len(table)
            columns[name] = np.fromiter(map(table.__getitem__, values), np.uint32, len(values))
        return lines, columns

    def numbers(self, buf: Any, starts: Any, widths: Any, dtype: Any) -> Any:
        """Parse numbers where they lie: fixed-width gathers, converted in C."""
        np = self.np
        width = int(widths.max())
        offsets = np.arange(width, dtype=np.int32)
        if dtype is np.int64 and width <= 9:
            # Right-aligned digits times powers of ten: no string parsing at all.
            ends = starts + widths
            matrix = buf.take(ends[:, None] - width + offsets, mode="clip")
            matrix[offsets < width - widths[:, None]] = 48  # left padding: "0"
            digits = matrix - np.uint8(48)
            if (digits <= 9).all():  # else a sign or garbage: let the cast handle it
                return digits.astype(np.int64) @ self.powers[-width:]
        matrix = buf.take(starts[:, None] + offsets, mode="clip")
        matrix *= offsets < widths[:, None]
        strings = matrix.view(f"S{width}").ravel()
        try:
            return strings.astype(dtype)
        except ValueError:
            for index, value in enumerate(strings.tolist()):
                try:
                    (float if dtype is np.float64 else int)(value)
                except ValueError:
                    raise MarteauError(
                        f"{self.path}: bad number {value.decode('utf-8', 'replace')!r} in a "
                        f"<response> (block record {index})"
                    ) from None
            raise

    # -- regions: everything that is not a plain response line --

    def region(self, data: bytes, first_line: int, rows: list[tuple[Any, ...]]) -> None:
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

    def element(self, element: bytes, line: _Where, rows: list[tuple[Any, ...]]) -> None:
        if element.startswith(b"</funkload"):
            self.closed = True
            return
        start = _START.match(element)
        if start is None:  # pragma: no cover - _ELEMENT guarantees a start tag
            return
        tag = start.group(1)
        if tag == b"monitorconfig":
            return  # py2 pickles of plot definitions: never unpickled
        attrs = self.attrs(start.group(2))
        if tag == b"funkload":
            self.root = True
            if "time" in attrs:
                self.config.setdefault(ROOT_TIME_KEY, attrs["time"])
        elif tag == b"config":
            if "key" in attrs:
                self.config[attrs["key"]] = attrs.get("value", "")
        elif tag == b"monitor":
            self.monitors.append(attrs)
        elif tag == b"testResult":
            self.test_result(attrs, line)
        elif tag == b"iteration":
            self.iteration(attrs, line)
        elif tag == b"response":
            self.response(attrs, start, element, line, rows)

    def result_code(self, value: str) -> int:
        code = RESULT_CODES.get(value)
        if code is None:
            self.unknown_results.add(value)
            return ERROR
        return code

    def response(
        self,
        attrs: dict[str, str],
        start: re.Match[bytes],
        element: bytes,
        line: _Where,
        rows: list[tuple[Any, ...]],
    ) -> None:
        required = ("cycle", "cvus", "thread", "step", "type", "result", "url", "code", "time")
        missing = [n for n in (*required, "duration") if n not in attrs]
        if missing:
            self.warn(f"line {line}: <response> without {', '.join(missing)} skipped")
            return
        detail: dict[str, Any] | None = None
        if attrs.get("traceback"):
            detail = {"headers": [], "body": "", "traceback": attrs["traceback"]}
        if not start.group(3):  # the long form of HTTP failures
            rest = element[start.end() :]
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

    def test_result(self, attrs: dict[str, str], line: _Where) -> None:
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

    def iteration(self, attrs: dict[str, str], line: _Where) -> None:
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

    # -- the ResultSet --

    def result(self) -> Any:
        from marteau.results.records import numpy_dtype
        from marteau.results.resultset import ResultSet

        np = self.np
        # Decode/unescape each raw key once, then merge duplicates (the same
        # url written escaped differently, or met by both parsers).
        strings: list[str] = []
        final_ids: dict[str, int] = {}
        remap = np.zeros(len(self.table), np.uint32)
        for key, raw_id in self.table.items():
            if key.startswith(b"\0"):
                value = key[1:].decode("utf-8", "surrogatepass")
            else:
                value = self.unescaped(key)
            final = final_ids.get(value)
            if final is None:
                final = final_ids[value] = len(strings)
                strings.append(value)
            remap[raw_id] = final
        responses = np.concatenate(self.parts) if self.parts else np.zeros(0, self.dtype)
        for name in ("type", "url", "description"):
            responses[name] = remap[responses[name]]
        tests = np.array(self.tests, dtype=numpy_dtype(TEST_FIELDS))
        samples = np.zeros(0, numpy_dtype(SAMPLE_FIELDS))
        iterations = np.array(self.iterations, dtype=numpy_dtype(ITERATION_FIELDS))

        if self.suite_name is not None:
            self.config.setdefault("class", self.suite_name[0])
            self.config.setdefault("method", self.suite_name[1])
        if self.root and not self.closed:
            self.warn("missing </funkload> tag (the bench was probably killed)")
        if self.invalid_utf8:
            self.warn(f"{self.invalid_utf8} value(s) with invalid UTF-8 bytes, replaced")
        if self.unknown_results:
            self.warn(
                f"unknown result value(s) {', '.join(sorted(self.unknown_results))} "
                "counted as Error"
            )
        if self.dropped_warnings:
            self.warnings.append(f"{self.path}: {self.dropped_warnings} more warning(s)")
        return ResultSet(
            config=self.config,
            strings=strings,
            responses=responses,
            tests=tests,
            samples=samples,
            details=self.details,
            source=self.path,
            node=self.config.get("node", ""),
            monitors=self.monitors,
            warnings=self.warnings,
            iterations=iterations,
        )


def _check_start(path: str, head: bytes) -> None:
    stripped = head.lstrip()
    if stripped.startswith(b"\xef\xbb\xbf"):
        stripped = stripped[3:].lstrip()
    if stripped.startswith(b"<?xml"):
        end = stripped.find(b"?>")
        stripped = stripped[end + 2 :].lstrip() if end >= 0 else b""
    if not stripped:
        raise MarteauError(f"{path}: empty result file")
    if not stripped.startswith(_STARTS):
        line = 1 + head[: len(head) - len(stripped)].count(b"\n")
        raise MarteauError(f"{path}: line {line}: not a FunkLoad XML result file")


def read_xml(path: str | os.PathLike[str]) -> Any:
    """Read a FunkLoad XML result file (bench or ``fl-run-test``) into a `ResultSet`."""
    name = os.fspath(path)
    try:
        f = open(name, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise MarteauError(f"{name}: cannot read results: {exc.strerror}") from exc
    reader = _XmlReader(name)
    with f:
        pending = f.read(4096)
        _check_start(name, pending)
        line = 1
        eof = False
        while not eof:
            chunk = f.read(_BLOCK)
            eof = not chunk
            pending += chunk
            if eof:
                data, pending = pending, b""
            else:
                tail = max(0, len(pending) - 1024 * 1024)
                cut = max(pending.rfind(b, tail) for b in _BOUNDARY)
                if cut < 0:
                    cut = max(pending.rfind(b) for b in _BOUNDARY)
                if cut <= 0:
                    continue  # no safe place to cut yet: read more
                data, pending = pending[: cut + 1], pending[cut + 1 :]
            if data:
                reader.block(data, line)
            line += data.count(b"\n")
    if not (reader.parts or reader.tests or reader.iterations or reader.config or reader.root):
        raise MarteauError(f"{name}: no FunkLoad records found")
    return reader.result()
