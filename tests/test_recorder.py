"""The recorder: hot path → compact file → ResultSet."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from marteau.engine.cycle import CycleGate
from marteau.engine.recorder import MAX_BODY, Recorder
from marteau.results.compact import read_compact, read_compact_raw
from marteau.results.records import (
    ERROR,
    FAILURE,
    RESPONSE_ARGS,
    SUCCESSFUL,
    TEST_RESULT_ARGS,
)
from tests.support.records import response_kwargs, result_kwargs


def test_round_trip_to_resultset(tmp_path: Path) -> None:
    path = tmp_path / "w0.mrt"
    rec = Recorder(
        path, {"id": "test_simple", "cycles": "[1, 2]"}, suite="Simple", name="test_simple"
    )
    rec.recording = True
    rec.response(**response_kwargs())
    rec.response(**response_kwargs(number=2, type="image", url="/logo.png", description=""))
    rec.response(
        **response_kwargs(
            step=2,
            result="Failure",
            code=404,
            url="/missing",
            headers=[("content-type", "text/html")],
            body=b"not \xff found",
        )
    )
    rec.response(
        **response_kwargs(
            step=3, result="Error", code=-1, url="http://x/boom", traceback="Traceback: boom"
        )
    )
    rec.test_result(**result_kwargs(result="Failure", traceback="AssertionError: 404"))
    rec.sample(12.5, 1, time=1433152802.0)
    rec.config("meta:build", "42")
    rec.close()

    rs = read_compact(path)
    assert rs.warnings == []
    assert rs.config["id"] == "test_simple"
    assert rs.config["class"] == "Simple" and rs.config["method"] == "test_simple"
    assert rs.config["meta:build"] == "42"
    assert rs.strings[0] == ""
    r = rs.responses
    assert len(r) == 4
    assert [rs.string(i) for i in r["url"]] == [
        "/index.html",
        "/logo.png",
        "/missing",
        "http://x/boom",
    ]
    assert [rs.string(i) for i in r["type"]] == ["get", "image", "get", "get"]
    assert rs.string(r["description"][1]) == ""
    assert list(r["result"]) == [SUCCESSFUL, SUCCESSFUL, FAILURE, ERROR]
    assert list(r["code"]) == [200, 200, 404, -1]
    assert r["time"][0] == 1433152801.12 and r["duration"][0] == 0.0042
    assert list(r["detail"]) == [0, 0, 1, 2]
    failure = rs.detail(int(r["detail"][2]))
    assert failure is not None
    assert failure["headers"] == [["content-type", "text/html"]]
    assert failure["body"] == "not \ufffd found"
    error = rs.detail(int(r["detail"][3]))
    assert error is not None and error["traceback"] == "Traceback: boom"
    t = rs.tests
    assert len(t) == 1 and t["result"][0] == FAILURE and t["steps"][0] == 20
    assert rs.detail(int(t["detail"][0]))["traceback"] == "AssertionError: 404"  # type: ignore[index]
    assert len(rs.samples) == 1 and rs.samples["cpu_percent"][0] == 12.5


def test_not_recording_drops_records_but_keeps_config(tmp_path: Path) -> None:
    path = tmp_path / "w0.mrt"
    rec = Recorder(path, {}, suite="Simple", name="test_simple")
    rec.response(**response_kwargs())
    rec.test_result(**result_kwargs())
    rec.config("meta:k", "v")
    assert rec.snapshot().responses == 0
    rec.close()
    rs = read_compact(path)
    assert len(rs.responses) == 0 and len(rs.tests) == 0
    assert rs.config["meta:k"] == "v"


def test_flag_read_at_call_time(tmp_path: Path) -> None:
    path = tmp_path / "w0.mrt"
    rec = Recorder(path, {}, suite="S", name="t")
    rec.response(**response_kwargs(step=1))
    rec.recording = True
    rec.response(**response_kwargs(step=2))
    rec.recording = False
    rec.response(**response_kwargs(step=3))
    rec.close()
    assert list(read_compact(path).responses["step"]) == [2]


def test_body_is_capped(tmp_path: Path) -> None:
    path = tmp_path / "w0.mrt"
    rec = Recorder(path, {}, suite="S", name="t")
    rec.recording = True
    rec.response(**response_kwargs(result="Failure", code=500, body=b"x" * (MAX_BODY + 10)))
    rec.close()
    detail = read_compact(path).details[0]
    assert len(detail["body"]) == MAX_BODY
    assert detail["body_size"] == MAX_BODY + 10


def test_snapshot_counts_since_last_read(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "w0.mrt", {}, suite="S", name="t")
    rec.recording = True
    rec.response(**response_kwargs())
    rec.response(**response_kwargs(result="Failure", code=500))
    rec.response(**response_kwargs(result="Error", code=-1))
    rec.test_result(**result_kwargs())
    first = rec.snapshot()
    assert (first.responses, first.successes, first.failures, first.errors) == (3, 1, 1, 1)
    assert (first.tests, first.tests_successful) == (1, 1)
    rec.response(**response_kwargs())
    second = rec.snapshot()
    assert (second.responses, second.successes, second.tests) == (1, 1, 0)
    assert rec.totals().responses == 4
    rec.close()


def test_concurrent_writers_and_flusher_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "w0.mrt"
    rec = Recorder(path, {}, suite="S", name="t")
    rec.recording = True
    per_thread = 5000
    stop = threading.Event()

    def user(thread: int) -> None:
        for i in range(per_thread):
            result = "Failure" if i % 500 == 0 else "Successful"
            rec.response(
                **response_kwargs(
                    thread=thread,
                    step=i,
                    url=f"/t{thread}/p{i % 50}",
                    result=result,
                    body=b"b" if result == "Failure" else None,
                )
            )
            if i % 100 == 0:
                rec.test_result(**result_kwargs(thread=thread, steps=i))

    def flusher() -> None:
        while not stop.is_set():
            rec.flush()

    flush_thread = threading.Thread(target=flusher)
    flush_thread.start()
    users = [threading.Thread(target=user, args=(t,)) for t in range(8)]
    for u in users:
        u.start()
    for u in users:
        u.join()
    stop.set()
    flush_thread.join()
    rec.close()

    rs = read_compact(path)
    assert rs.warnings == []
    r = rs.responses
    assert len(r) == 8 * per_thread
    assert len(rs.tests) == 8 * per_thread // 100
    for thread in range(8):
        mine = r[r["thread"] == thread]
        assert sorted(mine["step"]) == list(range(per_thread))
        urls = {rs.string(i) for i in mine["url"]}
        assert urls == {f"/t{thread}/p{j}" for j in range(50)}
    assert len(rs.strings) == len(set(rs.strings))
    failures = r[r["result"] == FAILURE]
    assert len(failures) == 8 * per_thread // 500
    assert sorted(failures["detail"]) == list(range(1, len(rs.details) + 1))
    assert rec.totals().responses == 8 * per_thread


def test_flushes_are_readable_before_close(tmp_path: Path) -> None:
    path = tmp_path / "w0.mrt"
    rec = Recorder(path, {"id": "x"}, suite="S", name="t")
    rec.recording = True
    rec.response(**response_kwargs(cycle=0))
    rec.flush()
    raw = read_compact_raw(path)
    assert len(raw.responses) > 0
    assert any("no end marker" in w for w in raw.warnings)
    rec.close()


def test_records_by_position_are_the_records_by_keyword(tmp_path: Path) -> None:
    """The FunkLoad API records every request and test by position (`RESPONSE_ARGS`,
    `TEST_RESULT_ARGS`), the rest by keyword: both give the same file."""
    files = []
    for positional in (False, True):
        path = tmp_path / f"w{int(positional)}.mrt"
        rec = Recorder(path, {}, suite="Simple", name="test_simple")
        rec.recording = True
        response = response_kwargs(result="Failure", code=404, traceback="tb", body=b"gone")
        response["headers"] = [("x-a", "1")]
        test = result_kwargs(result="Failure", traceback="AssertionError")
        if positional:
            rec.response(*(response[name] for name in RESPONSE_ARGS))
            rec.test_result(*(test[name] for name in TEST_RESULT_ARGS))
        else:
            rec.response(**response)
            rec.test_result(**test)
        rec.close()
        raw = vars(read_compact_raw(path))
        files.append({key: raw[key] for key in raw if key not in ("path", "config")})
    assert files[0] == files[1] and files[0]["responses"]
    assert set(response) == set(RESPONSE_ARGS) and set(test) == set(TEST_RESULT_ARGS)


def test_the_window_guard_keeps_what_ends_by_the_close_by_position_or_keyword() -> None:
    """`CycleGate.guard` (the last moments of a window) reads ``time`` and ``duration``
    wherever the caller put them."""
    kept: list[tuple[str, float]] = []

    class Sink:
        recording = True

        def response(self, *fields: Any, **named: Any) -> None:
            kept.append(
                ("response", dict(zip(RESPONSE_ARGS, fields, strict=False), **named)["url"])
            )

        def test_result(self, *fields: Any, **named: Any) -> None:
            values = dict(zip(TEST_RESULT_ARGS, fields, strict=False), **named)
            kept.append(("test", values["time"]))

        def config(self, key: str, value: str) -> None:
            pass

    gate = CycleGate(Sink())
    gate.guard(close=100.0)
    for url, start in (("/in", 99.0), ("/out", 99.5)):
        response = response_kwargs(url=url, time=start, duration=0.75)
        gate.response(**response)
        gate.response(*(response[name] for name in RESPONSE_ARGS[:14]))
    for start in (98.0, 99.9):
        test = result_kwargs(time=start, duration=1.5)
        gate.test_result(**test)
        gate.test_result(*(test.get(name) for name in TEST_RESULT_ARGS))
    assert kept == [("response", "/in"), ("response", "/in"), ("test", 98.0), ("test", 98.0)]
    gate.close()  # the cycle is over: whatever its late users record is dropped
    response = response_kwargs(time=99.0, duration=0.5)
    gate.response(**response)
    gate.response(*(response[name] for name in RESPONSE_ARGS[:14]))
    test = result_kwargs(time=98.0, duration=1.0)
    gate.test_result(**test)
    gate.test_result(*(test.get(name) for name in TEST_RESULT_ARGS))
    assert len(kept) == 4
