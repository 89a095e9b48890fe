"""FunkLoad XML: byte-exact lines, strict well-formedness, tolerant reading."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from marteau.engine.recorder import Recorder
from marteau.errors import MarteauError
from marteau.results import funkload_reader, funkload_tolerant, load
from marteau.results.compact import read_compact
from marteau.results.funkload_reader import read_xml
from marteau.results.funkload_writer import (
    XmlLinesSink,
    export_xml,
    format_config,
    format_monitor,
    format_response,
    format_test_result,
    i3,
    py2_float,
    root_open,
)
from marteau.results.records import ERROR, FAILURE, SUCCESSFUL
from tests.support.records import response_kwargs, result_kwargs

DATA = Path(__file__).parent / "data" / "funkload"

# The lines of FUNKLOAD.md §4's example.
EXAMPLE_GET = (
    '<response cycle="000" cvus="001" thread="000" suite="Simple" name="test_simple" '
    'step="001" number="001" type="get" result="Successful" url="/index.html" code="200" '
    'description="Get URL" time="1433152801.12" duration="0.0042" />'
)
EXAMPLE_IMAGE = (
    '<response cycle="000" cvus="001" thread="000" suite="Simple" name="test_simple" '
    'step="001" number="002" type="image" result="Successful" url="/logo.png" code="200" '
    'description="" time="1433152801.13" duration="0.0011" />'
)
EXAMPLE_TEST = (
    '<testResult cycle="000" cvus="001" thread="000" suite="Simple" name="test_simple"  '
    'time="1433152801.1" result="Successful" steps="20" duration="0.31" '
    'connection_duration="0.11" requests="21" pages="20" xmlrpc="0" redirects="0" images="1" '
    'links="0" />'
)


# -- formatting ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1296080571.28, "1296080571.28"),
        (1433152801.123456, "1433152801.12"),
        (0.01, "0.01"),
        (1.0, "1.0"),
        (0.0, "0.0"),
        (10.0, "10.0"),
        (0.0042, "0.0042"),
        (1e-05, "1e-05"),
        (1e16, "1e+16"),
        (123456789012.0, "123456789012.0"),
        (float("inf"), "inf"),
    ],
)
def test_py2_float(value: float, text: str) -> None:
    assert py2_float(value) == text


def test_zero_padding() -> None:
    assert (i3(0), i3(5), i3(12), i3(1000), i3(1003)) == ("000", "005", "012", "1000", "1003")


def test_example_lines_are_byte_exact() -> None:
    assert format_response(**response_kwargs()) == EXAMPLE_GET
    image = response_kwargs(number=2, type="image", url="/logo.png", description="")
    image.update(time=1433152801.13, duration=0.0011)
    assert format_response(**image) == EXAMPLE_IMAGE
    assert format_test_result(**result_kwargs()) == EXAMPLE_TEST
    assert format_config("cycles", "[1, 2]") == '<config key="cycles" value="[1, 2]" />'
    assert format_config("duration", "10") == '<config key="duration" value="10" />'
    assert (
        root_open("2015-06-01T10:00:00.123456")
        == '<funkload version="1.17.2" time="2015-06-01T10:00:00.123456">'
    )
    assert (
        format_monitor(
            {
                "key": "test_simple:0:1",
                "time": "1433152805.5",
                "host": "localhost",
                "loadAvg1min": "0.10",
                "memFree": "1024000",
            }
        )
        == '<monitor key="test_simple:0:1" time="1433152805.5" host="localhost" loadAvg1min="0.10" memFree="1024000"  />'
    )


def test_quoteattr_semantics() -> None:
    line = format_response(
        **response_kwargs(url="/a?x=1&y=<2>", description='say "hi"\nnow', code=200)
    )
    assert 'url="/a?x=1&amp;y=&lt;2&gt;"' in line
    assert "description='say \"hi\"&#10;now'" in line
    both = format_response(**response_kwargs(description='it\'s "both"'))
    assert 'description="it\'s &quot;both&quot;"' in both


def test_error_and_failure_forms() -> None:
    error = format_response(
        **response_kwargs(result="Error", code=-1, url="http://x/", traceback="Traceback:\n  boom")
    )
    assert error.endswith(' duration="0.0042" traceback="Traceback:&#10;  boom" />')
    failure = format_response(
        **response_kwargs(
            result="Failure",
            code=404,
            url="/missing",
            headers=[("Content-Type", "text/html"), ("server", "nginx")],
            body=b"<h1>Not Found</h1>",
        )
    )
    assert failure == (
        '<response cycle="000" cvus="001" thread="000" suite="Simple" name="test_simple" '
        'step="001" number="001" type="get" result="Failure" url="/missing" code="404" '
        'description="Get URL" time="1433152801.12" duration="0.0042">\n'
        "  <headers>\n"
        '    <header name="content-type" value="text/html" />\n'
        '    <header name="server" value="nginx" />\n'
        "  </headers>\n"
        "  <body><![CDATA[\n"
        "<h1>Not Found</h1>\n"
        "]]>\n"
        "  </body>\n"
        "</response>"
    )
    failed_test = format_test_result(**result_kwargs(result="Failure", traceback="A\nB"))
    assert failed_test.endswith(' links="0" traceback="A&#10;B" />')
    ok_test = format_test_result(**result_kwargs(traceback="ignored"))
    assert "traceback" not in ok_test


# -- export -------------------------------------------------------------------


NASTY_BODY = b"before ]]> after ]]]]> \x00\x01\x0b bell\x07 \xff\xfe latin\xe9 <tag> & done"


def record_bench(path: Path) -> None:
    rec = Recorder(
        path,
        {
            "id": "test_simple",
            "cycles": "[1, 2]",
            "duration": "10",
            "marteau:time": "2015-06-01T10:00:00.123456",
        },
        suite="Simple",
        name="test_simple",
    )
    rec.recording = True
    rec.response(**response_kwargs())
    rec.response(
        **{
            **response_kwargs(number=2, type="image", url="/logo.png", description=""),
            "time": 1433152801.13,
            "duration": 0.0011,
        }
    )
    rec.response(
        **response_kwargs(
            step=2,
            result="Failure",
            code=500,
            url="/nasty?a=1&b=2",
            description="ctl\x01char",
            headers=[("Content-Type", "text/html"), ("X-Quote", 'a "b" c')],
            body=NASTY_BODY,
        )
    )
    rec.response(
        **response_kwargs(
            step=3,
            type="xmlrpc",
            result="Error",
            code=-1,
            url="http://h/RPC2#m",
            traceback="tb\nline",
        )
    )
    rec.test_result(**result_kwargs(result="Failure", traceback="AssertionError: 500"))
    rec.flush()
    rec.response(**response_kwargs(cycle=1, cvus=2, thread=1, time=1433152812.0, duration=1.0))
    rec.test_result(**result_kwargs(cycle=1, cvus=2, thread=1))
    rec.config("meta:build", "42")
    rec.close()


def test_export_is_well_formed_and_funkload_shaped(tmp_path: Path) -> None:
    mrt, xml = tmp_path / "bench.mrt", tmp_path / "bench.xml"
    record_bench(mrt)
    assert export_xml(mrt, xml) == []
    text = xml.read_text("utf-8")
    lines = text.splitlines()
    assert lines[0] == '<funkload version="1.17.2" time="2015-06-01T10:00:00.123456">'
    assert '<config key="cycles" value="[1, 2]" />' in lines
    assert '<config key="meta:build" value="42" />' in lines
    assert not any("marteau:time" in line for line in lines)
    assert lines[-1] == "</funkload>"
    assert (
        EXAMPLE_GET in lines
        and EXAMPLE_TEST.replace('result="Successful"', 'result="Failure"') not in lines
    )
    assert 'time="1433152812.0" duration="1.0" />' in text

    root = ET.parse(xml).getroot()  # strict parser: must not raise
    assert root.tag == "funkload"
    responses = root.findall("response")
    assert len(responses) == 5
    failure = responses[2]
    assert failure.get("result") == "Failure"
    assert failure.get("description") == "ctl\ufffdchar"
    assert [(h.get("name"), h.get("value")) for h in failure.iter("header")] == [
        ("content-type", "text/html"),
        ("x-quote", 'a "b" c'),
    ]
    body = failure.find("body")
    assert body is not None and body.text is not None
    expected = NASTY_BODY.decode("utf-8", "replace")
    for bad in "\x00\x01\x0b\x07":
        expected = expected.replace(bad, "\ufffd")
    assert body.text.strip("\n ") == expected.strip()
    assert responses[3].get("traceback") == "tb\nline"
    assert root.findall("testResult")[0].get("traceback") == "AssertionError: 500"


def test_export_then_read_gives_the_same_records(tmp_path: Path) -> None:
    mrt, xml = tmp_path / "bench.mrt", tmp_path / "bench.xml"
    record_bench(mrt)
    export_xml(mrt, xml)
    original, again = read_compact(mrt), read_xml(xml)
    assert again.warnings == []
    assert again.config["marteau:time"] == "2015-06-01T10:00:00.123456"
    for key, value in original.config.items():
        assert again.config[key] == value
    a, b = original.responses, again.responses
    assert len(a) == len(b) == 5
    for field in ("cycle", "cvus", "thread", "step", "number", "code", "result"):
        assert list(a[field]) == list(b[field]), field
    for field in ("time", "duration"):
        assert [py2_float(v) for v in a[field]] == [py2_float(v) for v in b[field]]
    for field in ("type", "url", "description"):
        got = [again.string(i) for i in b[field]]
        want = [original.string(i) for i in a[field]]
        if field == "description":
            want = [w.replace("\x01", "\ufffd") for w in want]
        assert got == want, field
    fail_detail = again.detail(int(b["detail"][2]))
    assert fail_detail is not None
    assert fail_detail["headers"] == [["content-type", "text/html"], ["x-quote", 'a "b" c']]
    assert "before ]]> after ]]]]> " in fail_detail["body"]
    assert fail_detail["body"].endswith("<tag> & done")
    assert again.detail(int(b["detail"][3]))["traceback"] == "tb\nline"  # type: ignore[index]
    assert list(again.tests["result"]) == [FAILURE, SUCCESSFUL]
    assert again.detail(int(again.tests["detail"][0]))["traceback"] == "AssertionError: 500"  # type: ignore[index]

    # Export → read → export is byte-stable.
    xml2 = tmp_path / "again.xml"
    rewritten = tmp_path / "again.mrt"
    from marteau.results.compact import CompactWriter

    with CompactWriter(rewritten, again.config) as w:
        w.strings(again.strings[1:])
        w.details(again.details)
        w.records(b"R", again.responses.tobytes())
        w.records(b"T", again.tests.tobytes())
    export_xml(rewritten, xml2)
    # (the rewrite puts all responses before all tests: compare sorted lines)
    first = sorted(ln for ln in xml.read_text().splitlines() if not ln.startswith("<config"))
    second = sorted(ln for ln in xml2.read_text().splitlines() if not ln.startswith("<config"))
    assert len(first) == 18 and first == second


# Times and durations at the edges of ``%.12g``: hundredths that round to .00
# (Python 2 printed ``1433152801.0``), integral, tiny, huge, about 0.5 and 1.
EDGE_FLOATS = (
    1433152801.004,
    1433152800.996,
    1433152801.005,
    1433152801.0,
    1433152801.12,
    0.0,
    0.49999999999999,
    0.5,
    0.99999999999999,
    1.0000000000001,
    2.0,
    1e-05,
    123456789012.0,
    1e16,
    float("inf"),
)


def test_export_lines_equal_the_formatters_at_float_edges(tmp_path: Path) -> None:
    """The export's fast formats give, line for line, what the reference formatters give."""
    mrt, xml = tmp_path / "bench.mrt", tmp_path / "bench.xml"
    rec = Recorder(mrt, {"marteau:time": "2015-06-01T10:00:00"}, suite="Simple", name="test_simple")
    rec.recording = True
    expected = []
    for index, value in enumerate(EDGE_FLOATS):
        other = EDGE_FLOATS[-1 - index]
        response = response_kwargs(step=index + 1, time=value, duration=other)
        test = result_kwargs(time=other, duration=value, connection_duration=other)
        rec.response(**response)
        rec.test_result(**test)
        expected += [format_response(**response), format_test_result(**test)]
    rec.close()
    export_xml(mrt, xml)
    lines = [
        line
        for line in xml.read_text("utf-8").splitlines()
        if line.startswith(("<response", "<testResult"))
    ]
    assert sorted(lines) == sorted(expected)
    assert 'time="1433152801.0" duration="inf" />' in lines[0]


def test_export_renames_an_existing_file(tmp_path: Path) -> None:
    mrt, xml = tmp_path / "bench.mrt", tmp_path / "bench.xml"
    record_bench(mrt)
    xml.write_text("old")
    export_xml(mrt, xml)
    backups = list(tmp_path.glob("bench.xml.bak-*"))
    assert len(backups) == 1 and backups[0].read_text() == "old"
    assert backups[0].name.split("-")[-1].isdigit()


def test_export_of_a_killed_bench(tmp_path: Path) -> None:
    mrt, xml = tmp_path / "bench.mrt", tmp_path / "bench.xml"
    record_bench(mrt)
    mrt.write_bytes(mrt.read_bytes()[:-12])  # the end marker and part of the last tests
    warnings = export_xml(mrt, xml)
    assert any("truncated" in w for w in warnings)
    root = ET.parse(xml).getroot()
    assert len(root.findall("response")) == 5
    assert len(root.findall("testResult")) == 1


def test_stray_quote_is_not_written(tmp_path: Path) -> None:
    mrt, xml = tmp_path / "bench.mrt", tmp_path / "bench.xml"
    record_bench(mrt)
    export_xml(mrt, xml)
    assert not any(line.endswith('/>"') for line in xml.read_text().splitlines())


# -- functional-mode sink -----------------------------------------------------


def test_lines_sink_writes_rootless_lines_and_backs_up(tmp_path: Path) -> None:
    path = tmp_path / "simple-test.xml"
    path.write_text("previous run")
    with XmlLinesSink(path) as sink:
        assert sink.recording is True
        sink.response(**response_kwargs())
        sink.test_result(**result_kwargs())
        sink.config("meta:k", "v")
    assert (
        path.read_text()
        == EXAMPLE_GET + "\n" + EXAMPLE_TEST + "\n" + '<config key="meta:k" value="v" />\n'
    )
    assert [p.read_text() for p in tmp_path.glob("simple-test.xml.bak-*")] == ["previous run"]
    rs = read_xml(path)
    assert len(rs.responses) == 1 and len(rs.tests) == 1 and rs.warnings == []


def test_lines_sink_is_thread_safe(tmp_path: Path) -> None:
    path = tmp_path / "t.xml"
    sink = XmlLinesSink(path)

    def user(thread: int) -> None:
        for step in range(200):
            sink.response(**response_kwargs(thread=thread, step=step, url=f"/{thread}/{step}"))

    threads = [threading.Thread(target=user, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sink.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 1600
    assert all(line.startswith("<response ") and line.endswith(" />") for line in lines)
    rs = read_xml(path)
    assert sorted(
        zip(rs.responses["thread"].tolist(), rs.responses["step"].tolist(), strict=True)
    ) == [(t, s) for t in range(8) for s in range(200)]


# -- reading FunkLoad 1.x files -----------------------------------------------


def test_read_funkload_bench_file() -> None:
    rs = read_xml(DATA / "bench-1.17.xml")
    assert rs.warnings == []
    assert rs.config["cycles"] == "[1, 2]" and rs.config["meta:build"] == "1234"
    assert rs.config["marteau:time"] == "2015-06-01T10:00:00.123456"
    assert rs.node == "bench01"
    r = rs.responses
    assert len(r) == 6
    assert [rs.string(i) for i in r["type"]] == ["get", "image", "xmlrpc", "get", "get", "get"]
    assert rs.string(r["url"][3]) == "/missing?a=1&b=2"
    assert list(r["result"]) == [SUCCESSFUL, SUCCESSFUL, SUCCESSFUL, FAILURE, ERROR, SUCCESSFUL]
    assert list(r["code"]) == [200, 200, 200, 404, -1, 200]
    assert list(r["cycle"]) == [0, 0, 0, 0, 1, 1] and list(r["thread"]) == [0, 0, 0, 0, 1, 0]
    assert r["time"][2] == 1433152801.2 and r["duration"][2] == 0.003
    assert r["time"][0] == 1433152801.12 and r["duration"][0] == 0.0042  # the fast path
    failure = rs.detail(int(r["detail"][3]))
    assert failure is not None
    assert failure["headers"] == [
        ["content-type", "text/html; charset=utf-8"],
        ["server", "nginx"],
    ]
    assert failure["body"] == "<html><body>\n<h1>Not Found</h1>\n</body></html>"
    error = rs.detail(int(r["detail"][4]))
    assert error is not None
    assert error["traceback"].endswith("error: [Errno 111] Connection refused")
    t = rs.tests
    assert list(t["result"]) == [FAILURE, SUCCESSFUL]
    assert list(t["pages"]) == [2, 1] and t["connection_duration"][0] == 0.0103
    tb = rs.detail(int(t["detail"][0]))
    assert tb is not None and tb["traceback"].splitlines()[-1] == "AssertionError: 404"
    assert len(rs.monitors) == 2
    assert rs.monitors[0]["key"] == "test_simple:0:1"
    assert rs.monitors[1]["memFree"] == "1000000"


def test_read_killed_funkload_file() -> None:
    rs = read_xml(DATA / "killed.xml")
    assert len(rs.responses) == 2 and len(rs.tests) == 1
    assert any("missing </funkload>" in w for w in rs.warnings)
    assert any("line 8" in w and "unreadable <response>" in w for w in rs.warnings)


def test_read_functional_file() -> None:
    rs = read_xml(DATA / "functional.xml")
    assert rs.warnings == []
    assert len(rs.responses) == 2 and len(rs.tests) == 1
    assert rs.config["class"] == "Simple" and rs.config["method"] == "test_simple"


def test_read_broken_cdata_reordered_and_extra_attributes() -> None:
    rs = read_xml(DATA / "broken-cdata.xml")
    assert rs.warnings == []
    r = rs.responses
    assert [rs.string(i) for i in r["url"]] == ["/api", '/q?say="hi"', "/last"]
    assert list(r["step"]) == [1, 2, 3]
    detail = rs.detail(int(r["detail"][0]))
    assert detail is not None
    assert detail["body"] == "a]]>b </body></response> still the body"
    assert r["duration"][1] == 0.001


def test_read_invalid_bytes_is_tolerated(tmp_path: Path) -> None:
    text = (DATA / "bench-1.17.xml").read_bytes()
    text = text.replace(b"<h1>Not Found</h1>", b"<h1>Not \xff\xfe Found</h1>")
    text = text.replace(b'url="/logo.png"', b'url="/logo\xe9.png"')
    path = tmp_path / "latin.xml"
    path.write_bytes(text)
    rs = read_xml(path)
    assert any("invalid UTF-8" in w for w in rs.warnings)
    assert "Not \ufffd\ufffd Found" in rs.details[0]["body"]
    assert rs.string(rs.responses["url"][1]) == "/logo\ufffd.png"


def test_read_across_block_boundaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mrt, xml = tmp_path / "bench.mrt", tmp_path / "bench.xml"
    rec = Recorder(mrt, {"id": "t"}, suite="S", name="t")
    rec.recording = True
    for i in range(300):
        failing = i % 37 == 0
        rec.response(
            **response_kwargs(
                step=i,
                url=f"/p{i % 11}",
                result="Failure" if failing else "Successful",
                code=500 if failing else 200,
                body=b"x\n<response cycle=\n" if failing else None,
            )
        )
        if i % 10 == 0:
            rec.test_result(**result_kwargs(steps=i))
            rec.flush()
    rec.close()
    export_xml(mrt, xml)
    whole = read_xml(xml)
    monkeypatch.setattr(funkload_reader, "_BLOCK", 500)
    pieces = read_xml(xml)
    assert pieces.warnings == whole.warnings == []
    assert list(pieces.responses["step"]) == list(range(300))
    assert pieces.responses.tobytes() == whole.responses.tobytes()
    assert pieces.tests.tobytes() == whole.tests.tobytes()
    assert pieces.strings == whole.strings
    assert pieces.details == whole.details and len(pieces.details) == 9


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"   \n\n", "empty"),
        (b"hello world\n", "line 1: not a FunkLoad"),
        (b'\n\n{"json": true}', "line 3: not a FunkLoad"),
        (b"<html><body>no</body></html>", "not a FunkLoad"),
    ],
)
def test_garbage_raises_naming_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "garbage.xml"
    path.write_bytes(content)
    with pytest.raises(MarteauError, match=f"garbage.xml.*{message}"):
        read_xml(path)
    with pytest.raises(MarteauError, match="garbage.xml"):
        load(path)


def test_load_dispatches_on_content(tmp_path: Path) -> None:
    mrt, xml = tmp_path / "bench.data", tmp_path / "bench.mrt"  # names that lie
    record_bench(mrt)
    export_xml(mrt, xml)
    from_compact, from_xml = load(mrt), load(xml)
    assert len(from_compact.samples) == 0 and len(from_compact.responses) == 5
    assert from_xml.source == str(xml) and len(from_xml.responses) == 5
    with pytest.raises(MarteauError, match="nothere"):
        load(tmp_path / "nothere.xml")


# -- the tolerant path: expat, with the regular expressions as the reference ---

_GOLDEN_1X = (DATA / "bench-1.17.xml").read_bytes().replace(b'" />\n<response', b'" />"\n<response')
_VARIANTS = {
    "XML-RPC records": b"",
    "tab in a value": (b'description="Status"', b'description="St\tatus"'),
    "newline in a value": (b'description="Status"', b'description="St\natus"'),
    "CR LF lines": (b"\n", b"\r\n"),
    "windows-1252 reference": (b'description="Status"', b'description="St&#128;atus"'),
    "HTML entity": (b'description="Status"', b'description="St&nbsp;atus"'),
    "XML entities": (b'description="Status"', b'description="a &amp; b &lt; c &#10;d"'),
    "DOCTYPE": (b'<config key="id"', b'<!DOCTYPE r [<!ENTITY e "x">]>\n<config key="id" a="&e;"'),
    "comment": (b'<config key="id"', b'<!-- <response cycle="1"/> -->\n<config key="id"'),
    "CDATA outside a body": (
        b'<config key="id"',
        b'<![CDATA[\n<config key="x" value="y"/>]]>\n<config key="id"',
    ),
    "start and end tags": (b'duration="0.003" />"', b'duration="0.003"></response>'),
    "text in a response": (b'duration="0.003" />"', b'duration="0.003">x/></response>'),
    "element-like line": (b'<config key="id"', b'<response-x a="1"/>\n<config key="id"'),
    "duplicate attribute": (b'description="Status"', b'description="Status" description="x"'),
    "spaced root end": (b"</funkload>", b"</funkload >"),
    "nesting": (
        b'<config key="id" value="test_simple" />',
        b'<x><config key="id" value="test_simple" /></x>',
    ),
    "quoting": (b'description="Status"', b"description='Sta\"tus'"),
    "missing attribute": (b' duration="0.003"', b""),
    "bad number": (b'duration="0.003"', b'duration="abc"'),
    "no root end": (b"</funkload>\n", b""),
    "deep nesting": (b'<config key="id"', b"<a>" * 100 + b'\n<config key="id"'),
    "empty root": (b'.123456">', b'.123456"/>'),
    "reference in a test": (b'<testResult cycle="000"', b'<testResult cycle="&#48;"'),
    "invalid UTF-8": (b"/logo.png", b"/logo\xe9.png"),
    "test before any response, no class": (b'<config key="class" value="Simple" />\n', b""),
}


def _variant(name: str) -> bytes:
    change = _VARIANTS[name]
    return _GOLDEN_1X.replace(*change) if change else _GOLDEN_1X


def _everything(rs: object) -> tuple[object, ...]:
    return tuple(
        getattr(rs, name).tobytes()
        if name in ("responses", "tests", "iterations")
        else getattr(rs, name)
        for name in (
            "responses",
            "tests",
            "iterations",
            "strings",
            "details",
            "config",
            "monitors",
            "warnings",
        )
    )


@pytest.mark.parametrize("name", list(_VARIANTS))
def test_tolerant_path_reads_as_the_regular_expressions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    path = tmp_path / "old.xml"
    path.write_bytes(_variant(name))
    expat_regions: list[bool] = []
    events = funkload_tolerant._expat_events

    def spy(data: bytes) -> object:
        found = events(data)
        expat_regions.append(found is not None)
        return found

    monkeypatch.setattr(funkload_tolerant, "_expat_events", spy)
    with_expat = _everything(read_xml(path))
    monkeypatch.setattr(funkload_tolerant, "_expat_events", lambda data: None)
    assert with_expat == _everything(read_xml(path))
    if name == "XML-RPC records":
        assert expat_regions and all(expat_regions)


def test_funkload_1x_records_give_the_numbers_of_plain_lines(tmp_path: Path) -> None:
    path = tmp_path / "old.xml"
    path.write_bytes(_GOLDEN_1X)
    plain, old = read_xml(DATA / "bench-1.17.xml"), read_xml(path)
    assert old.warnings == plain.warnings == []
    for name in ("time", "duration", "cycle", "cvus", "thread", "step", "number", "code", "result"):
        assert old.responses[name].tolist() == plain.responses[name].tolist()
    assert [old.string(i) for i in old.responses["url"]] == [
        plain.string(i) for i in plain.responses["url"]
    ]
    assert old.tests.tobytes() == plain.tests.tobytes() and old.details == plain.details
