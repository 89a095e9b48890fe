"""FunkLoad's XML result format, written byte for byte (the reader: `funkload_reader`).

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
"""

from __future__ import annotations

import datetime as _datetime
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
    ITERATION_RESULTS,
    ITERATION_STRUCT,
    RESPONSE_STRUCT,
    RESULT_NAMES,
    TEST_STRUCT,
)

FUNKLOAD_VERSION = "1.17.2"


_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


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

    def response(self, *args: Any, **kwargs: Any) -> None:
        if self.recording:
            self._write(format_response(*args, **kwargs))

    def test_result(self, *args: Any, **kwargs: Any) -> None:
        if self.recording:
            self._write(format_test_result(*args, **kwargs))

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
