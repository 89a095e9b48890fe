"""The bench's pure parts: the wall-clock schedule, the user split, the cycle gate."""

from __future__ import annotations

import time
from typing import Any

from marteau.engine.bench_contract import Outcome
from marteau.engine.console import last_line, status_word
from marteau.engine.cycle import EARLY, CycleGate, reach
from marteau.engine.schedule import BenchPlan, schedule, users_of


def test_schedule_follows_the_documented_formula():
    plan = BenchPlan(cycles=(2, 5), duration=10, startup_delay=0.5, sleep_time=0, cycle_time=3)
    first, second = schedule(plan, 1000.0)
    assert (first.index, first.users, first.stage) == (0, 2, 1000.0)
    assert first.open == 1001.0  # 2 users, 0.5 s apart: the window opens after the last delay
    assert first.mid == 1006.0 and first.close == 1011.0 and first.next == 1014.0
    assert first.user_start(1, plan.startup_delay) == 1000.5
    assert second.stage == 1014.0 and second.open == 1016.5 and second.close == 1026.5


def test_schedule_is_identical_for_every_process():
    plan = BenchPlan(cycles=(1, 10, 20), duration=7, startup_delay=0.01, sleep_time=0, cycle_time=1)
    start = 1795747748.2668724
    assert schedule(plan, start) == schedule(plan, float(repr(start)))


def test_users_are_split_by_thread_id_modulo_the_workers():
    split = [list(users_of(worker, 3, 8)) for worker in range(3)]
    assert split == [[0, 3, 6], [1, 4, 7], [2, 5]]
    assert sorted(sum(split, [])) == list(range(8))
    assert list(users_of(3, 4, 2)) == []  # more workers than users: some idle


class FakeRecorder:
    def __init__(self) -> None:
        self.recording = True
        self.records: list[tuple[str, dict[str, Any]]] = []

    def response(self, **fields: Any) -> None:
        self.records.append(("response", fields))

    def test_result(self, **fields: Any) -> None:
        self.records.append(("test", fields))

    def config(self, key: str, value: str) -> None:
        self.records.append(("config", {key: value}))


def test_gate_forwards_then_guards_then_drops():
    recorder = FakeRecorder()
    gate = CycleGate(recorder)
    assert gate.response == recorder.response  # no wrapper while the window is open
    gate.response(time=10.0, duration=5.0)
    gate.guard(close=12.0)
    gate.response(time=11.0, duration=0.5)  # ends by the close: kept
    gate.response(time=11.0, duration=1.5)  # ends after it: dropped
    gate.test_result(time=11.5, duration=1.0)  # dropped
    gate.close()
    assert not gate.recording
    gate.response(time=11.0, duration=0.1)
    gate.test_result(time=11.0, duration=0.1)
    gate.config("meta:k", "v")  # config entries are never gated
    kinds = [(kind, fields.get("duration")) for kind, fields in recorder.records]
    assert kinds == [("response", 5.0), ("response", 0.5), ("config", None)]


def test_last_line_names_the_exception_and_its_cause():
    text = (
        "Traceback (most recent call last):\n"
        '  File "http.py", line 1, in _open\n'
        "ConnectionRefusedError: [Errno 111] Connection refused\n\n"
        "The above exception was the direct cause of the following exception:\n\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 2, in f\n'
        "marteau.engine.http.HTTPClientError: Can't load http://h/x: [Errno 111] refused\n\n"
        "The above exception was the direct cause of the following exception:\n\n"
        "Traceback (most recent call last):\n"
        '  File "t.py", line 3, in test\n'
        "OSError: Can't load http://h/x.\n"
    )
    assert last_line(text) == (
        "OSError: Can't load http://h/x. (from HTTPClientError: Can't load http://h/x: "
        "[Errno 111] refused)"
    )
    assert last_line("Traceback:\n  x\nRuntimeError: boom\n") == "RuntimeError: boom"


def test_status_and_exit_codes_follow_funkload():
    assert status_word(5, 0, 0) == "SUCCESSFUL"
    assert status_word(5, 1, 0) == "FAILURE"
    assert status_word(5, 1, 1) == "ERROR"
    assert Outcome(successes=3).exit_code == 0
    assert Outcome(failures=1).exit_code == 1
    assert Outcome(failures=1, errors=1).exit_code == 255
    assert Outcome(hook_error="setUpBench failed").exit_code == 255
    assert Outcome(signum=15).exit_code == 143


def test_a_window_edge_is_reached_exactly_though_its_timer_fires_early():
    """A loop timer fires up to EARLY before its instant; a window's edge waits for it
    (a response ending just before the window opened would count)."""
    for _ in range(50):
        instant = time.time() + EARLY * 0.8
        reach(instant)
        assert time.time() >= instant
    far = time.time() + 10
    reach(far)  # an abort long before E_c: no wait
    assert time.time() < far
