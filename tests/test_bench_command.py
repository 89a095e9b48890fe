"""`marteau bench` / `fl-run-bench` end to end, against a real local server.

Every bench here is small (1-4 users, 1 s cycles, a think time between
tests), so each load loop is bounded in time and in count.  Nothing asserts
speed: only counts, ids, ordering and the recording-window invariants.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.servers import LocalServer, ok
from tests.support.commands import MARTEAU_BENCH, bench, bench_env
from tests.support.records import parse_xml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DATA = REPO / "tests" / "data" / "bench"
XML_TIME_ROUNDING = 0.006  # FunkLoad writes times with py2 str(float): 10 ms steps


@pytest.fixture
def site() -> Any:
    with LocalServer(routes={"/ok": lambda request: ok("OK")}) as server:
        yield server


def windows(config: dict[str, str]) -> list[tuple[float, float]]:
    """The recording windows, from the documented schedule (marteau.engine.runner)."""
    stage = float(config["start_at"])
    cycles = [int(item) for item in config["cycles"].strip("[]").split(",")]
    delay, duration = float(config["startup_delay"]), int(config["duration"])
    result = []
    for users in cycles:
        opened = stage + users * delay
        result.append((opened, opened + duration))
        stage = opened + duration + float(config["cycle_time"])
    return result


def assert_inside_windows(workdir: Path, config: dict[str, str], elements: list[ET.Element]):
    """FunkLoad's rule: a response or test counts only if it *ends* inside its window."""
    spans = windows(config)
    for element in elements:
        opened, closed = spans[int(element.get("cycle"))]
        end = float(element.get("time")) + float(element.get("duration"))
        assert opened - XML_TIME_ROUNDING <= end <= closed + XML_TIME_ROUNDING, element.attrib
    # Exactly, from the compact file (full precision).
    from marteau.results import load

    results = load(workdir / "bench.mrt")
    for records in (results.responses, results.tests):
        assert len(records)
        for cycle, (opened, closed) in enumerate(spans):
            mine = records[records["cycle"] == cycle]
            ends = mine["time"] + mine["duration"]
            assert (ends >= opened).all() and (ends <= closed).all()


def hooks(workdir: Path) -> list[str]:
    lines = (workdir / "hooks.log").read_text().splitlines()
    return [line.rsplit(" pid=", 1)[0] for line in lines]


# -- a normal bench -----------------------------------------------------------


def test_bench_header_xml_cycles_threads_hooks_and_windows(workdir: Path, site: LocalServer):
    run = bench(
        workdir, "benchtests.py", "Bench.test_get", "-u", site.url, "-c", "1:3", "--workers", "1"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    xml_path = workdir / "bench.xml"
    assert f"* Configuration file: {workdir / 'Bench.conf'}" in out
    assert f"* Log xml: {xml_path}" in out
    assert f"\nLog xml: {xml_path}\n" in out
    assert f"Compact results: {workdir / 'bench.mrt'}" in out
    assert "Cycle #0 with 1 virtual users" in out and "Cycle #1 with 3 virtual users" in out
    assert out.count("* Cycle result: **SUCCESSFUL**") == 2
    assert "Bench status: **SUCCESSFUL**" in out
    assert not list(workdir.glob("bench.w*.mrt")) and not list(workdir.glob("*.parent.mrt"))

    config, responses, tests = parse_xml(xml_path)
    assert config["cycles"] == "[1, 3]"
    assert config["duration"] == "1"
    assert config["startup_delay"] == "0.01" and config["cycle_time"] == "0.2"
    assert config["sleep_time"] == "0.02" and config["sleep_time_min"] == "0.0"
    assert config["id"] == "test_get" and config["method"] == "test_get"
    assert config["class"] == "Bench" and config["module"] == "benchtests"
    assert config["class_title"] == "Marteau bench tests"
    assert config["description"] == "One GET of /ok"
    assert config["server_url"] == site.url
    assert config["log_xml"] == str(xml_path)
    assert config["configuration_file"] == str(workdir / "Bench.conf")
    assert config["workers"] == "1" and "python_version" in config and "node" in config
    assert config["meta:purpose"] == "marteau tests"  # addMetadata in setUpBench
    assert responses and tests

    cvus = {0: 1, 1: 3}
    for element in responses + tests:
        cycle = int(element.get("cycle"))
        assert element.get("cvus") == f"{cvus[cycle]:03d}"
        assert 0 <= int(element.get("thread")) < cvus[cycle]
        assert element.get("result") == "Successful"
    for cycle, users in cvus.items():
        threads = {int(t.get("thread")) for t in tests if int(t.get("cycle")) == cycle}
        assert threads == set(range(users))
    assert {r.get("url") for r in responses} == {"/ok"}
    assert_inside_windows(workdir, config, responses + tests)

    assert hooks(workdir) == [
        "setUpBench",
        "setUpCycle",
        "midCycle 0 1",
        "tearDownCycle",
        "setUpCycle",
        "midCycle 1 3",
        "tearDownCycle",
        "tearDownBench",
    ]
    # The hooks run on the main instance, in the parent process.
    pids = {line.rsplit("pid=", 1)[1] for line in (workdir / "hooks.log").read_text().splitlines()}
    assert len(pids) == 1


def test_fl_run_bench_alias_and_long_options(workdir: Path, site: LocalServer):
    run = bench(
        workdir,
        f"--url={site.url}",
        "--cycles=2",
        "--duration=1",
        "--test-sleep-time=0.05",
        "--startup-delay=0",
        "--label=alias",
        "--workers=1",
        "benchtests.py",
        "Bench.test_get",
        command=[str(BIN / "fl-run-bench")],
    )
    assert run.returncode == 0, run.stdout + run.stderr
    config, responses, tests = parse_xml(workdir / "bench.xml")
    assert config["cycles"] == "[2]" and config["label"] == "alias"
    assert config["sleep_time"] == "0.05" and config["startup_delay"] == "0.0"
    assert {int(t.get("thread")) for t in tests} == {0, 1}


def test_as_fast_as_possible_sets_the_sleep_times_to_zero(workdir: Path, site: LocalServer):
    # -f with a think time of 0 would loop as fast as it can: 1 user, 1 s only.
    run = bench(
        workdir,
        "benchtests.py",
        "Bench.test_get",
        "-u",
        site.url,
        "-c",
        "1",
        "-f",
        "--workers",
        "1",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    config, _, tests = parse_xml(workdir / "bench.xml")
    assert config["sleep_time"] == config["sleep_time_min"] == config["sleep_time_max"] == "0.0"
    assert tests


def test_two_workers_make_one_node_result_with_users_split(workdir: Path, site: LocalServer):
    run = bench(
        workdir, "benchtests.py", "Bench.test_get", "-u", site.url, "-c", "4", "--workers", "2"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "* Workers: 2 processes" in run.stdout
    assert not list(workdir.glob("bench.w*.mrt"))
    config, responses, tests = parse_xml(workdir / "bench.xml")
    assert config["workers"] == "2"
    assert {t.get("cvus") for t in tests} == {"004"}
    assert {int(t.get("thread")) for t in tests} == {0, 1, 2, 3}
    assert_inside_windows(workdir, config, responses + tests)

    from marteau.results import load

    results = load(workdir / "bench.mrt")
    assert set(results.samples["worker"].tolist()) == {0, 1}  # one CPU series per process
    assert len(hooks(workdir)) == 5  # the hooks ran once, in the parent


def test_a_slow_join_keeps_the_planned_windows_and_says_what_it_lost(
    workdir: Path, site: LocalServer
):
    # Tests take 1.6 s: the last one of a 2 s window ends 1.2 s after it, far
    # later than cycle_time (0.2 s), so the next cycle's users start about 1 s
    # late; its window stays where the schedule put it, and that second lost
    # is a warning and exit 4, not a silently shorter cycle.
    conf = workdir / "Bench.conf"
    conf.write_text(conf.read_text().replace("pause=0.9", "pause=1.6"))
    run = bench(
        workdir, "benchtests.py", "Bench.test_slow", "-u", site.url, "-c", "2:2", "-D", "2",
        "-s", "0", "-t", "0", "--workers", "2",
    )  # fmt: skip
    assert run.returncode == 4, run.stdout + run.stderr
    (lost,) = re.findall(
        r"Load lost: cycle #1 recorded [\d.]+s of its 2s window: it opened ([\d.]+)s late",
        run.stdout,
    )
    assert 0.5 < float(lost) <= 2, run.stdout
    assert "Bench status: **INCOMPLETE**" in run.stdout
    config, responses, tests = parse_xml(workdir / "bench.xml")
    assert {int(t.get("cycle")) for t in tests} >= {0}
    assert_inside_windows(workdir, config, responses + tests)
    assert hooks(workdir).count("tearDownCycle") == 2
    assert "cycle #1 recorded" in json.loads(config["marteau:lost"])[0]


def test_start_at_delays_the_first_request(workdir: Path, site: LocalServer):
    # Time to arm (spawn two workers, import, build users) on a busy machine: an
    # instant already past would be moved to now (exit 4, tested below).
    start_at = time.time() + 8
    run = bench(
        workdir, "benchtests.py", "Bench.test_get", "-u", site.url, "-c", "2",
        "--workers", "2", "--start-at", repr(start_at),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    config, responses, tests = parse_xml(workdir / "bench.xml")
    assert float(config["start_at"]) == start_at
    from marteau.results import load

    results = load(workdir / "bench.mrt")
    assert results.responses["time"].min() >= start_at
    assert results.tests["time"].min() >= start_at
    assert_inside_windows(workdir, config, responses + tests)


# -- the start barrier: arm, then start at a given instant --------------------


def test_start_at_in_the_past_starts_now_and_says_so(workdir: Path, site: LocalServer):
    asked = time.time() - 10
    run = bench(
        workdir, "benchtests.py", "Bench.test_get", "-u", site.url, "-c", "1:2",
        "--workers", "2", "--start-at", repr(asked),
    )  # fmt: skip
    assert run.returncode == 4, run.stdout + run.stderr
    (late,) = re.findall(
        r"\* Warning: --start-at was ([\d.]+)s in the past: started now", run.stdout
    )
    assert float(late) >= 10
    assert "Bench status: **INCOMPLETE**" in run.stdout and "SUCCESSFUL**\n\nLog" not in run.stdout
    config, responses, tests = parse_xml(workdir / "bench.xml")
    assert float(config["start_at"]) > asked + 10  # moved to when it was armed
    assert {int(t.get("cycle")) for t in tests} == {0, 1}  # both cycles recorded in full
    assert_inside_windows(workdir, config, responses + tests)
    assert json.loads(config["marteau:lost"]) == [
        f"--start-at was {late}s in the past: started now, {late}s late"
    ]


def start_file_bench(workdir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*MARTEAU_BENCH, *args, "--start-file", "start"],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=bench_env(),
    )


def armed_bench(
    workdir: Path, args: list[str], when_armed: Callable[[], None]
) -> tuple[int, str, str]:
    """A `--start-file` bench: once it wrote ``start.ready`` (bounded wait), `when_armed()`."""
    process = start_file_bench(workdir, *args)
    try:
        deadline = time.monotonic() + 60
        while not (workdir / "start.ready").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the bench never armed"
            time.sleep(0.02)
        when_armed()
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, out, err


def hand_start(workdir: Path, instant: float | str) -> None:
    text = instant if isinstance(instant, str) else f"{instant:.3f}"
    (workdir / "start.tmp").write_text(f"{text}\n")
    os.replace(workdir / "start.tmp", workdir / "start")


def test_start_file_arms_first_then_starts_at_the_instant_written(workdir: Path, site: LocalServer):
    (workdir / "start").write_text("1.0\n")  # a stale instant: removed, never used
    start = time.time() + 60

    def armed() -> None:
        nonlocal start
        # Armed: the hooks before cycle 0 ran, no request was sent yet.
        assert hooks(workdir) == ["setUpBench", "setUpCycle"]
        assert not (workdir / "start").exists()
        assert site.requests == []
        start = time.time() + 1
        hand_start(workdir, start)

    args = ["benchtests.py", "Bench.test_get", "-u", site.url, "-c", "2", "--workers", "2"]
    code, out, err = armed_bench(workdir, args, armed)
    assert code == 0, out + err
    assert f"* Armed: waiting for the start instant in {workdir / 'start'}" in out
    config, responses, tests = parse_xml(workdir / "bench.xml")
    assert float(config["start_at"]) == round(start, 3)
    from marteau.results import load

    results = load(workdir / "bench.mrt")
    assert results.responses["time"].min() >= round(start, 3)
    assert_inside_windows(workdir, config, responses + tests)
    assert "marteau:lost" not in config


def test_start_file_instant_in_the_past_records_what_is_left_and_says_what_was_lost(
    workdir: Path, site: LocalServer
):
    args = ["benchtests.py", "Bench.test_get", "-u", site.url, "-c", "1", "-D", "4"]
    # the run's lead was too short: the instant is 1.5 s past when it arrives
    code, out, err = armed_bench(
        workdir, [*args, "--workers", "1"], lambda: hand_start(workdir, time.time() - 1.5)
    )
    assert code == 4, out + err
    (late,) = re.findall(r"\* Warning: started ([\d.]+)s after the shared start instant", out)
    (lost,) = re.findall(
        r"Load lost: cycle #0 recorded [\d.]+s of its 4s window: it opened ([\d.]+)s late", out
    )
    assert 1.5 <= float(late) < 4 and 1.5 <= float(lost) < 4
    config, responses, tests = parse_xml(workdir / "bench.xml")
    assert tests  # what was left of the window is recorded, in the planned window
    assert_inside_windows(workdir, config, responses + tests)
    assert len(json.loads(config["marteau:lost"])) == 2


def test_start_file_never_written_ends_the_bench_after_its_timeout(
    workdir: Path, site: LocalServer
):
    process = start_file_bench(
        workdir, "benchtests.py", "Bench.test_get", "-u", site.url, "-c", "1",
        "--workers", "2", "--start-timeout", "1",
    )  # fmt: skip
    out, err = process.communicate(timeout=60)
    assert process.returncode == 4, out + err
    assert f"no start instant in {workdir / 'start'} within 1s: no cycle ran" in out
    assert hooks(workdir) == ["setUpBench", "setUpCycle", "tearDownBench"]
    config, responses, tests = parse_xml(workdir / "bench.xml")
    assert responses == [] and tests == [] and site.requests == []


def test_start_file_holding_garbage_is_an_error_naming_it(workdir: Path, site: LocalServer):
    args = ["benchtests.py", "Bench.test_get", "-u", site.url, "-c", "1", "--workers", "1"]
    code, out, err = armed_bench(workdir, args, lambda: hand_start(workdir, "tomorrow"))
    assert code == 2, out + err
    assert f"Error: start file {workdir / 'start'} holds 'tomorrow', not an epoch instant" in err
    assert "tearDownBench" in hooks(workdir)


def test_a_cycle_without_a_finished_test_is_load_lost(workdir: Path, site: LocalServer):
    conf = workdir / "Bench.conf"  # tests of 1.6 s in a 1 s window: none ends inside it
    conf.write_text(conf.read_text().replace("pause=0.9", "pause=1.6"))
    run = bench(
        workdir, "benchtests.py", "Bench.test_slow", "-u", site.url, "-c", "1", "-s", "0",
        "--workers", "1",
    )  # fmt: skip
    assert run.returncode == 4, run.stdout + run.stderr
    assert "* Warning: cycle #0: no test finished in its 1s window" in run.stdout
    assert "Load lost: cycle #0: no test finished in its 1s window" in run.stdout


# -- virtual users on the hub -------------------------------------------------


def test_users_sleep_side_by_side_on_the_hub(workdir: Path, site: LocalServer):
    # 20 users of one process (started 10 ms apart), each test a GET and
    # time.sleep(0.25), 1 s window: about 4 tests per user. Sleeps that held the
    # process would allow ~4 in all.
    run = bench(
        workdir, "benchtests.py", "Bench.test_pause", "-u", site.url, "-c", "20",
        "--workers", "1",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    config, responses, tests = parse_xml(workdir / "bench.xml")
    assert len(tests) >= 40, len(tests)
    assert len({t.get("thread") for t in tests}) == 20
    assert_inside_windows(workdir, config, responses + tests)
    assert "Warning" not in run.stdout


def test_a_call_that_holds_the_hub_is_reported(workdir: Path, site: LocalServer):
    run = bench(
        workdir, "benchtests.py", "Bench.test_hold", "-u", site.url, "-c", "2",
        "-s", "0", "--workers", "1",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    warnings = [line for line in run.stdout.splitlines() if "held its event loop" in line]
    assert warnings and warnings[0].startswith("* Warning: worker 0 held its event loop for 0.")
    _, _, tests = parse_xml(workdir / "bench.xml")
    assert tests  # slow, but it works


# -- outcomes and exit codes --------------------------------------------------


def test_failures_exit_1(workdir: Path, site: LocalServer):
    run = bench(
        workdir, "benchtests.py", "Bench.test_fail", "-u", site.url, "-c", "1", "--workers", "1"
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "* Cycle result: **FAILURE**" in run.stdout
    assert "Bench status: **FAILURE**" in run.stdout
    _, responses, tests = parse_xml(workdir / "bench.xml")
    assert {r.get("result") for r in responses} == {"Failure"}
    assert {r.get("code") for r in responses} == {"404"}
    assert {t.get("result") for t in tests} == {"Failure"}


def test_an_exception_in_the_test_is_an_error_and_the_bench_goes_on(
    workdir: Path, site: LocalServer
):
    run = bench(workdir, "benchtests.py", "Bench.test_flaky", "-u", site.url, "--workers", "1")
    assert run.returncode == 255, run.stdout + run.stderr
    assert "Bench status: **ERROR**" in run.stdout
    assert "RuntimeError: boom at iteration" in run.stdout  # the first error, in one line
    config, _, tests = parse_xml(workdir / "bench.xml")
    for cycle in (0, 1):  # both cycles ran, with successes and errors
        results = [t.get("result") for t in tests if int(t.get("cycle")) == cycle]
        assert "Successful" in results and "Error" in results
    errors = [t for t in tests if t.get("result") == "Error"]
    assert all("RuntimeError: boom at iteration" in t.get("traceback") for t in errors)
    assert all("Traceback (most recent call last)" in t.get("traceback") for t in errors)


def test_a_test_that_never_waits_does_not_stall_the_bench(workdir: Path, site: LocalServer):
    """No think time and no I/O: each user must still let the loop run (window, others)."""
    run = bench(
        workdir, "benchtests.py", "Bench.test_raise_at_once", "-u", site.url,
        "--workers", "1", "--test-sleep-time", "0",
    )  # fmt: skip
    assert run.returncode == 255, run.stdout + run.stderr
    assert "RuntimeError: nothing to request" in run.stdout
    _, _, tests = parse_xml(workdir / "bench.xml")
    for cycle in (0, 1):
        results = {t.get("result") for t in tests if int(t.get("cycle")) == cycle}
        assert results == {"Error"}


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("http://127.0.0.1:1", "http://127.0.0.1:1/ok"),  # nothing listens on port 1
        ("http://no-such-host.invalid", "http://no-such-host.invalid/ok"),  # RFC 2606
    ],
)
def test_unreachable_target_runs_records_errors_and_exits_255(workdir: Path, url: str, named: str):
    run = bench(workdir, "benchtests.py", "Bench.test_get", "-u", url, "-c", "1", "--workers", "1")
    assert run.returncode == 255, run.stdout + run.stderr
    assert "Bench status: **ERROR**" in run.stdout
    first = [line for line in run.stdout.splitlines() if line.startswith("First error:")]
    assert first and named in first[0]
    _, responses, tests = parse_xml(workdir / "bench.xml")
    assert responses and {r.get("result") for r in responses} == {"Error"}
    assert {r.get("url") for r in responses} == {named}
    assert {r.get("code") for r in responses} == {"-1"}
    assert {t.get("result") for t in tests} == {"Error"}


def test_a_failing_hook_stops_the_bench_and_tears_it_down(workdir: Path, site: LocalServer):
    run = bench(
        workdir, "benchtests.py", "HookFail.test_get", "--config", "Bench.conf", "-u", site.url,
        "--workers", "1",
    )  # fmt: skip
    assert run.returncode == 255, run.stdout + run.stderr
    assert "ValueError: no data for this cycle" in run.stdout
    assert "Bench status: **ERROR**" in run.stdout
    assert hooks(workdir) == ["setUpBench", "setUpCycle", "tearDownBench"]
    parse_xml(workdir / "bench.xml")  # still written, and well-formed


def test_sigterm_keeps_the_finished_cycles(workdir: Path, site: LocalServer):
    bench_process = subprocess.Popen(
        [
            *MARTEAU_BENCH,
            "benchtests.py",
            "Bench.test_get",
            "-u",
            site.url,
            "-c",
            "1:1:1:1",
            "-D",
            "2",
            "--workers",
            "2",
        ],  # fmt: skip
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=bench_env(),
    )
    assert bench_process.stdout is not None
    seen = []
    try:
        for line in bench_process.stdout:
            seen.append(line)
            if line.startswith("Cycle #1 with"):  # cycle 0 is over
                bench_process.send_signal(signal.SIGTERM)
                break
        out, err = bench_process.communicate(timeout=60)
    finally:
        if bench_process.poll() is None:
            bench_process.kill()
            bench_process.wait()
    out = "".join(seen) + out
    assert bench_process.returncode == 128 + signal.SIGTERM, out + err
    assert "Bench aborted by SIGTERM after 1 of 4 cycles" in out
    assert f"\nLog xml: {workdir / 'bench.xml'}\n" in out
    config, responses, tests = parse_xml(workdir / "bench.xml")
    assert config["marteau_aborted"] == "SIGTERM"
    assert config["marteau_cycles_completed"] == "1"
    assert any(t.get("cycle") == "000" for t in tests)
    assert not any(int(t.get("cycle")) >= 2 for t in tests)
    assert "Traceback" not in err


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_ends_the_tests_that_outlive_the_grace(
    workdir: Path, site: LocalServer, workers: str
):
    bench_process = subprocess.Popen(
        [
            *MARTEAU_BENCH,
            "benchtests.py",
            "Bench.test_long",
            "-u",
            site.url,
            "-c",
            "2",
            "-D",
            "20",
            "--workers",
            workers,
        ],  # fmt: skip
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=bench_env(),
    )
    assert bench_process.stdout is not None
    seen = []
    try:
        for line in bench_process.stdout:
            seen.append(line)
            if line.startswith("* Logging for"):  # the cycle starts: wait for both users
                deadline = time.monotonic() + 60  # to be in their 30 s sleep
                while sum(entry.startswith("sleeping") for entry in hooks(workdir)) < 2:
                    assert time.monotonic() < deadline, hooks(workdir)
                    time.sleep(0.05)
                sent = time.monotonic()
                bench_process.send_signal(signal.SIGTERM)
                break
        out, err = bench_process.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if bench_process.poll() is None:
            bench_process.kill()
            bench_process.wait()
    out = "".join(seen) + out
    assert bench_process.returncode == 128 + signal.SIGTERM, out + err
    assert took < 15, took  # the grace (3 s) and the cleanup, not the 30 s sleeps
    assert sorted(line for line in hooks(workdir) if line.startswith("cleanup")) == [
        "cleanup 0",
        "cleanup 1",
    ]
    assert "Traceback" not in err


# -- bad input: exit 2, one line naming the culprit ---------------------------


def _write_conf(
    workdir: Path, drop: str | None = None, cycles: str | None = None, add: str | None = None
) -> None:
    lines = []
    for line in (DATA / "Bench.conf").read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        if key == drop:
            continue
        if key == "cycles" and cycles is not None:
            line = f"cycles = {cycles}"
        lines.append(line)
        if line.strip() == "[bench]" and add is not None:
            lines.append(add)
    (workdir / "Bench.conf").write_text("\n".join(lines) + "\n")


BAD_INPUTS = {
    "missing conf": (["benchtests.py", "Bench.test_get"], "Bench.conf"),
    "conf is not a file": (["benchtests.py", "Bench.test_get"], "Bench.conf"),
    "missing bench key": (["benchtests.py", "Bench.test_get"], "[bench] cycle_time"),
    "cycles not numbers": (
        ["benchtests.py", "Bench.test_get", "-c", "1:x:3"],
        "'1:x:3' (--cycles)",
    ),
    "cycles zero": (["benchtests.py", "Bench.test_get", "-c", "0"], "'0' (--cycles)"),
    "cycles empty": (["benchtests.py", "Bench.test_get"], "[bench] cycles in"),
    "duration not a number": (
        ["benchtests.py", "Bench.test_get", "-D", "soon"],
        "'soon' (--duration)",
    ),
    "syntax error": (["broken_syntax.py", "Bench.test_get"], "broken_syntax.py, line 5"),
    "failing import": (["broken_import.py", "Bench.test_get"], "this test module fails at import"),
    "missing test file": (["nothere.py", "Bench.test_get"], "nothere.py"),
    "unknown class": (["benchtests.py", "Nope.test_get"], "Nope"),
    "unknown method": (["benchtests.py", "Bench.test_nope"], "test_nope"),
    "no dot": (["benchtests.py", "Bench"], "Class.method"),
    "one argument": (["benchtests.py"], "expected 2 arguments"),
    "three arguments": (["benchtests.py", "Bench.test_get", "extra"], "expected 2 arguments"),
    "two start instants": (
        ["benchtests.py", "Bench.test_get", "--start-at", "1", "--start-file", "start"],
        "--start-at and --start-file",
    ),
    "arrivals without rates": (
        ["benchtests.py", "Bench.test_get", "--arrivals", "poisson"],
        "--arrivals without rates: it only applies to the open model",
    ),
    "ramp without rates": (
        ["benchtests.py", "Bench.test_get", "--ramp", "0"],
        "--ramp without rates: it only applies to the open model",
    ),
    "conf arrivals without rates": (
        ["benchtests.py", "Bench.test_get"],
        "[bench] arrivals in ",
    ),
    "conf ramp without rates": (["benchtests.py", "Bench.test_get"], "[bench] ramp in "),
    "start file nowhere": (
        ["benchtests.py", "Bench.test_get", "--start-file", "nowhere/start"],
        "nowhere is not a writable directory",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_naming_the_culprit(workdir: Path, case: str):
    args, culprit = BAD_INPUTS[case]
    if case == "missing conf":
        (workdir / "Bench.conf").unlink()
    elif case == "conf is not a file":
        (workdir / "Bench.conf").unlink()
        (workdir / "Bench.conf").mkdir()
    elif case == "missing bench key":
        _write_conf(workdir, drop="cycle_time")
    elif case == "cycles empty":
        _write_conf(workdir, cycles="")
    elif case.startswith("conf "):  # "conf ramp without rates": ramp = 2 in [bench]
        _write_conf(workdir, add=f"{case.split()[1]} = {'poisson' if 'arrivals' in case else 2}")
    elif case == "syntax error":  # written here: a broken .py in the repo upsets linters
        (workdir / "broken_syntax.py").write_text(
            "from funkload.FunkLoadTestCase import FunkLoadTestCase\n\n\n"
            "class Bench(FunkLoadTestCase):\n    def test_get(self)\n        pass\n"
        )
    run = bench(workdir, *args, "--workers", "1")
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.startswith("Error: "), run.stderr
    assert culprit in run.stderr, run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    if case == "missing bench key":
        assert str(workdir / "Bench.conf") in run.stderr
    if case in ("cycles empty", "conf arrivals without rates", "conf ramp without rates"):
        assert str(workdir / "Bench.conf") in run.stderr
    assert not (workdir / "bench.xml").exists()
