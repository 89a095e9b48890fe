"""The safety fuse (`marteau.engine.fuse`): a bench against a failing or hanging target stops.

Real targets on 127.0.0.1: a server answering 500, one that accepts and
never answers, a healthy one.  Benches are planned far longer than the
tests let them run (a 30 s cycle), with a 2 s fuse window, so a bench that
ends within a few seconds was stopped by the fuse; every load loop is
bounded by a think time and the subprocess timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from marteau.engine.fuse import (
    FUSE_EXIT,
    Fuse,
    FuseLimits,
    ProbeResult,
    fuse_limits,
    parse_error_rate,
    weighted_median,
)
from marteau.errors import MarteauError
from tests.servers import HangingServer, LocalServer, Reply, Request, ok

REPO = Path(__file__).resolve().parents[1]
MARTEAU = str(Path(sys.executable).parent / "marteau")
PLANNED = 30  # seconds of the bench's one cycle: far beyond what a test waits

TEST_FILE = """
from funkload.FunkLoadTestCase import FunkLoadTestCase


class Fused(FunkLoadTestCase):
    def test_get(self):
        self.get(self.conf_get("main", "url") + "/page", description="Get the page")
"""

CONF = f"""
[main]
title=Safety fuse tests
description=A bench the fuse should (or should not) stop
url=http://127.0.0.1:1

[test_get]
description=One GET

[bench]
cycles = 2
duration = {PLANNED}
startup_delay = 0.01
sleep_time = 0.05
cycle_time = 0
result_path = bench.xml
sleep_time_min = 0
sleep_time_max = 0
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "fused.py").write_text(TEST_FILE)
    (tmp_path / "Fused.conf").write_text(CONF)
    return tmp_path


def fused_project(path: Path) -> Path:
    """The test and its conf as a `marteau run` project."""
    path.mkdir()
    (path / "fused.py").write_text(TEST_FILE)
    (path / "Fused.conf").write_text(CONF)
    (path / ".marteau.yml").write_text("script: fused.py\ntest: Fused.test_get\n")
    return path


def bench(workdir: Path, url: str, *args: str, timeout: int = 60) -> tuple[Any, float]:
    """Run `marteau bench`; its result and how long it took."""
    started = time.monotonic()
    run = subprocess.run(
        [MARTEAU, "bench", "fused.py", "Fused.test_get", "-u", url, *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1"),
    )
    return run, time.monotonic() - started


def read_results(workdir: Path) -> tuple[Any, dict[str, str]]:
    """The compact results (through the report's reader) and the XML's config entries."""
    from marteau.results import load

    results = load(workdir / "bench.mrt")
    root = ET.parse(workdir / "bench.xml").getroot()  # well-formed, finished
    config = {item.get("key"): item.get("value") for item in root.iter("config")}
    return results, config


# -- end to end -----------------------------------------------------------------


def test_a_target_answering_500_stops_the_bench_and_keeps_the_results(workdir: Path):
    server_errors = {"/page": lambda request: (500, [("Content-Type", "text/plain")], b"down")}
    with LocalServer(routes=server_errors) as target:
        run, took = bench(
            workdir, target.url, "--workers", "2", "--fuse-error-rate", "50%", "--fuse-window", "2"
        )
    out = run.stdout
    assert run.returncode == FUSE_EXIT, out + run.stderr
    assert "* Safety fuse: error rate > 50% over 2 s" in out
    assert "safety fuse: error rate 100% > 50% over the last 2 s — bench stopped" in out
    assert "Bench stopped by the safety fuse after 0 of 1 cycles: **ABORTED**" in out
    assert took < PLANNED  # stopped early, not at the end of its cycle
    assert len(target.requests) > 0
    results, config = read_results(workdir)
    assert len(results.responses) > 0
    assert (results.responses["code"] == 500).all()
    # the summary counts the interrupted cycle's tests, as the results hold them
    assert f"* Failures: {len(results.tests)}" in out and len(results.tests) > 0
    assert config["marteau_aborted"].startswith("safety fuse: error rate 100% > 50%")
    assert config["marteau:fuse"] == "error rate > 50% over 2 s"


def test_failures_during_a_ramp_up_trip_the_fuse_before_any_window(workdir: Path):
    """40 users started 0.25 s apart: the cycle's recording window opens only after 10 s,
    yet the responses of the users already running count for the fuse."""
    arrivals: list[float] = []

    def down(request: Request) -> Reply:
        arrivals.append(time.monotonic())
        return 500, [("Content-Type", "text/plain")], b"down"

    with LocalServer(routes={"/page": down}) as target:
        run, _ = bench(
            workdir,
            target.url,
            *("-c", "40", "-s", "0.25", "-D", "2", "-m", "0.05", "-M", "0.05"),
            *("--fuse-error-rate", "50%", "--fuse-window", "2"),
        )
    ended = time.monotonic()
    out = run.stdout
    assert run.returncode == FUSE_EXIT, out + run.stderr
    assert "safety fuse: error rate 100% > 50% over the last 2 s — bench stopped" in out
    # from the first user's request (however late a busy machine started the bench):
    # the window opens 10 s after it, and the fuse's own window ends 2 s after that
    took = ended - arrivals[0]
    assert took < 10, f"stopped {took:.1f} s after the first request: the fuse waited"
    assert len(target.requests) > 0
    results, _config = read_results(workdir)
    assert len(results.responses) == 0  # nothing was recorded: all of it was ramp-up


def test_a_hanging_target_stops_the_bench_by_the_median_rule(workdir: Path):
    with HangingServer() as target:
        run, took = bench(
            workdir,
            target.url,
            "--workers",
            "1",
            "--fuse-median",
            "1",
            "--fuse-error-rate",
            "0.5",
            "--fuse-window",
            "2",
        )
        assert target.accepted  # the users did connect, and waited
    out = run.stdout
    assert run.returncode == FUSE_EXIT, out + run.stderr
    line = next(line for line in out.splitlines() if line.startswith("safety fuse:"))
    assert line.startswith("safety fuse: median response time ")
    assert line.endswith(" s > 1 s over the last 2 s — bench stopped")
    assert took < PLANNED
    results, config = read_results(workdir)
    assert len(results.responses) == 0  # nothing ever came back
    assert config["marteau_aborted"].startswith("safety fuse: median response time")


def test_a_healthy_target_is_not_stopped(workdir: Path):
    with LocalServer(routes={"/page": lambda request: ok("fine")}) as target:
        run, _ = bench(
            workdir,
            target.url,
            "--workers",
            "1",
            "-D",
            "3",
            "--fuse-error-rate",
            "0.5",
            "--fuse-median",
            "1",
            "--fuse-window",
            "1",
        )
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    assert "* Safety fuse: error rate > 50% or median response time > 1 s over 1 s" in out
    assert "safety fuse:" not in out
    results, config = read_results(workdir)
    assert len(results.responses) > 0
    assert "marteau_aborted" not in config


def test_the_fuse_options_are_checked(workdir: Path):
    run, _ = bench(workdir, "http://127.0.0.1:1", "--fuse-window", "5")
    assert run.returncode == 2
    assert "Error: --fuse-window needs --fuse-error-rate or --fuse-median" in run.stderr
    run, _ = bench(workdir, "http://127.0.0.1:1", "--fuse-error-rate", "150%")
    assert run.returncode == 2
    assert "expected a fraction such as 0.5 or a percentage such as 50%" in run.stderr


def sigterm_twice(
    workdir: Path, url: str, pause: float, served: list[Request] | None = None
) -> tuple[int, str]:
    """Bench `url`; once it records (and, given the target's `served` requests, once
    five more have reached it: responses inside the window), SIGTERM, `pause` seconds,
    SIGTERM again: (exit code, output)."""
    process = subprocess.Popen(
        [MARTEAU, "bench", "fused.py", "Fused.test_get", "-u", url, "--workers", "1"],
        cwd=workdir,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1"),
    )
    try:
        for line in process.stdout:  # type: ignore[union-attr]
            if "recording" in line:
                break
        if served is not None:
            deadline, wanted = time.monotonic() + 30, len(served) + 5
            while len(served) < wanted:
                assert time.monotonic() < deadline, "no request reached the target"
                time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        time.sleep(pause)
        process.send_signal(signal.SIGTERM)
        out = process.communicate(timeout=60)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, out


def test_a_stop_signal_delivered_twice_still_writes_the_results(workdir: Path):
    """How `marteau run` stops the other nodes: SIGTERM to the bench's process group,
    which `timeout -k` forwards again; the bench must take both as one stop."""
    with LocalServer(routes={"/page": lambda request: ok("fine")}) as target:
        code, out = sigterm_twice(workdir, target.url, 0.01, target.requests)
    assert code == 128 + signal.SIGTERM, out
    assert "Bench aborted by SIGTERM after 0 of 1 cycles" in out
    results, config = read_results(workdir)
    assert len(results.responses) > 0 and config["marteau_aborted"] == "SIGTERM"


def test_a_sigterm_repeated_while_the_bench_stops_does_not_lose_the_results(workdir: Path):
    """Users stuck in requests to a hanging target keep an aborted bench busy for its
    grace; a SIGTERM repeated then (seconds later: another stop from automation) must
    not kill it before it writes its results."""
    with HangingServer() as target:
        code, out = sigterm_twice(workdir, target.url, 1.5)  # past REPEAT_GRACE
    assert code == 128 + signal.SIGTERM, out
    assert "Bench aborted by SIGTERM after 0 of 1 cycles" in out
    _results, config = read_results(workdir)
    assert config["marteau_aborted"] == "SIGTERM"


def test_marteau_run_stops_when_a_node_fuse_trips_and_reports_what_ran(tmp_path: Path):
    """The embedded default (this machine is the node): the fuse options reach the bench
    through the marteau_bench role, the run stops, collects, reports and exits 3."""
    import json

    project = fused_project(tmp_path / "project")
    server_errors = {"/page": lambda request: (503, [], b"overloaded")}
    with LocalServer(routes=server_errors) as target:
        run = subprocess.run(
            [MARTEAU, "run", str(project), "--plain", "-u", target.url, "--workers", "1"]
            + ["--fuse-error-rate", "0.5", "--fuse-window", "2"]
            + ["-e", "marteau_node_tune=false"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
        )
    out = run.stdout
    assert run.returncode == FUSE_EXIT, out + run.stderr
    line = "safety fuse: error rate 100% > 50% over the last 2 s — bench stopped (on localhost)"
    assert out.splitlines()[-1] == line
    assert "stopping the other nodes, collecting" in out  # the live view (wrapped)
    run_dir = Path(next(x for x in out.splitlines() if x.startswith("Run directory: "))[15:])
    provenance = json.loads((run_dir / "run.json").read_text())
    assert provenance["fuse"] == line and provenance["cancelled"] is False
    assert provenance["completed"] == ["localhost"]
    (summary,) = (run_dir / "report").rglob("summary.json")
    assert json.loads(summary.read_text())["totals"]["requests_error"] > 0
    assert "Report: " in out
    log = (run_dir / "results" / "localhost" / "bench.log").read_text()
    assert "* Safety fuse: error rate > 50% over 2 s" in log
    assert "Bench stopped by the safety fuse after 0 of 1 cycles" in log


def test_one_node_fuse_stops_the_other_nodes(sshd_nodes, tmp_path: Path):
    """Two real sshd nodes (tests/nodes.py); only the first has the fuse (a host variable
    of the role), so the second is stopped by marteau run, not by its own fuse."""
    import json

    first, second = sshd_nodes.names()[:2]
    inventory = sshd_nodes.write_inventory(tmp_path / "nodes.ini", group="pool")
    lines = inventory.read_text().splitlines()
    lines = [
        f"{line} marteau_fuse_error_rate=0.5 marteau_fuse_window=2"
        if line.startswith(f"{first} ")
        else line
        for line in lines
    ]
    inventory.write_text("\n".join(lines) + "\n")
    project = fused_project(tmp_path / "project")
    server_errors = {"/page": lambda request: (500, [], b"down")}
    with LocalServer(routes=server_errors) as target:
        run = subprocess.run(
            [MARTEAU, "run", str(project), "-i", str(inventory), "--pool", "pool"]
            + ["--nodes", "2", "--plain", "-u", target.url, "--workers", "1"]
            + ["--bench-timeout", "120", "--lock-timeout", "120"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
    out = run.stdout
    assert run.returncode == FUSE_EXIT, out + run.stderr
    line = f"safety fuse: error rate 100% > 50% over the last 2 s — bench stopped (on {first})"
    assert out.splitlines()[-1] == line
    run_dir = Path(next(x for x in out.splitlines() if x.startswith("Run directory: "))[15:])
    provenance = json.loads((run_dir / "run.json").read_text())
    assert provenance["fuse"] == line and provenance["completed"] == [first, second]
    logs = {
        node: (run_dir / "results" / node / "bench.log").read_text() for node in (first, second)
    }
    assert "Bench stopped by the safety fuse after 0 of 1 cycles" in logs[first]
    assert "* Safety fuse:" not in logs[second]  # it had no fuse: marteau run stopped it
    assert "Bench aborted by SIGTERM after 0 of 1 cycles" in logs[second], out + logs[second]
    (summary,) = (run_dir / "report").rglob("summary.json")
    assert [node["name"] for node in json.loads(summary.read_text())["nodes"]] == [first, second]
    for node in sshd_nodes.nodes[:2]:
        assert node.bench_processes() == []
        assert not (node.home / ".marteau" / "lock.json").exists()


SLOW_TO_END = (
    TEST_FILE
    + """
    def tearDownBench(self):
        import time
        time.sleep(90)  # far past the stop's grace; the bench timeout bounds it
"""
)


def test_a_bench_outliving_the_stop_grace_is_killed_and_the_run_says_so(tmp_path: Path):
    """`marteau run` cancelled on the embedded default: the bench's tearDownBench hangs,
    so the stop's SIGKILL after `marteau_bench_kill_after` ends it; the run, run.json and
    the report say so (what it had not written is lost)."""
    import json

    project = fused_project(tmp_path / "project")
    (project / "fused.py").write_text(SLOW_TO_END)
    with LocalServer(routes={"/page": lambda request: ok("fine")}) as target:
        process = subprocess.Popen(
            [MARTEAU, "run", str(project), "--plain", "-u", target.url, "--workers", "1"]
            + ["-e", "marteau_node_tune=false", "-e", "marteau_bench_kill_after=2"]
            + ["--bench-timeout", "120"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            lines = []
            for line in process.stdout:  # type: ignore[union-attr]
                lines.append(line)
                if "localhost: cycle #0 users 2/2" in line:  # it records
                    break
            process.send_signal(signal.SIGTERM)
            out = "".join(lines) + process.communicate(timeout=180)[0]
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 128 + signal.SIGTERM, out
    warning = (
        "node localhost: the bench did not end within marteau_bench_kill_after seconds of "
        "SIGTERM and was killed: its results stop where it had written them"
    )
    assert f"Warning: {warning}" in " ".join(out.split()), out  # the live view wraps
    run_dir = Path(next(x for x in out.splitlines() if x.startswith("Run directory: "))[15:])
    assert warning in json.loads((run_dir / "run.json").read_text())["warnings"]
    log = (run_dir / "results" / "localhost" / "bench.log").read_text()
    assert "Bench aborted by SIGTERM" not in log  # killed in tearDownBench, before its summary


# -- the rules ------------------------------------------------------------------


def probe(responses: int = 0, failed: int = 0, durations=(), in_flight=()) -> ProbeResult:
    weight = responses / len(durations) if durations else 0.0
    return ProbeResult(responses, failed, tuple(durations), weight, tuple(in_flight))


def test_the_fuse_waits_for_a_full_window_of_data():
    fuse = Fuse(FuseLimits(error_rate=0.5, window=10))
    for second in range(10):
        fuse.add(0, 100.0 + second, probe(10, 10, [0.01]))
        assert fuse.check(100.0 + second) is None  # less than a window of data
    fuse.add(0, 110.0, probe(10, 10, [0.01]))
    assert fuse.check(110.0) == "error rate 100% > 50% over the last 10 s"


def test_the_error_rate_is_over_the_window_only():
    fuse = Fuse(FuseLimits(error_rate=0.5, window=5))
    for second in range(5):  # five bad seconds, then five good ones
        fuse.add(0, 100.0 + second, probe(10, 10, [0.01]))
    for second in range(5, 11):
        fuse.add(0, 100.0 + second, probe(10, 0, [0.01]))
    assert fuse.check(110.0) is None
    # another worker; in the window (106, 111]: 60 failed of 4 x 10 + 100
    fuse.add(1, 111.0, probe(100, 60, [0.01]))
    assert fuse.check(111.0) is None
    fuse.add(1, 112.0, probe(100, 100, [0.01]))  # (107, 112]: 160 of 3 x 10 + 200
    assert fuse.check(112.0) == "error rate 70% > 50% over the last 5 s"


def test_the_median_weighs_each_sample_and_counts_requests_in_flight():
    fuse = Fuse(FuseLimits(median=2.0, window=3))
    fuse.add(0, 100.0, probe(1, 0, [0.1]))
    # 1000 fast responses sampled by 2 durations outweigh 3 slow ones sampled by 3
    fuse.add(0, 101.0, probe(1000, 0, [0.1, 0.1]))
    fuse.add(1, 102.0, probe(3, 0, [5.0, 5.0, 5.0]))
    fuse.add(1, 103.0, probe())
    assert fuse.check(103.0) is None
    # then nothing comes back: four users hang, seen by the workers' probes
    fuse.add(0, 104.0, probe())
    fuse.add(0, 105.0, probe(in_flight=[3.0, 3.0]))
    fuse.add(1, 105.0, probe(in_flight=[2.5, 2.5]))
    assert fuse.check(105.0) == "median response time 2.5 s > 2 s over the last 3 s"
    fuse.forget(0)
    fuse.forget(1)  # the workers ended: nothing in flight any more
    assert fuse.check(105.0) is None


def test_weighted_median():
    assert weighted_median([]) is None
    assert weighted_median([(3.0, 1.0), (1.0, 1.0), (2.0, 1.0)]) == 2.0
    assert weighted_median([(1.0, 10.0), (9.0, 1.0), (8.0, 1.0)]) == 1.0


def test_limits_from_the_command_line():
    assert parse_error_rate("0.5") == 0.5
    assert parse_error_rate(" 25% ") == 0.25
    for bad in ("1", "100%", "-0.1", "half", ""):
        with pytest.raises(ValueError, match="expected a fraction"):
            parse_error_rate(bad)
    assert not fuse_limits(None, None, None).enabled
    limits = fuse_limits(None, 10.0, None)
    assert limits.enabled and limits.window == 30.0
    assert limits.describe() == "median response time > 10 s over 30 s"
    with pytest.raises(MarteauError, match="--fuse-window needs"):
        fuse_limits(None, None, 5.0)


# -- the service ----------------------------------------------------------------


FAKE_FUSED_RUN = """
import sys
from pathlib import Path

Path(sys.argv[1]).write_text(" ".join(sys.argv[2:]))
line = "safety fuse: median response time 12.0 s > 10 s over the last 30 s — bench stopped (on n1)"
print("[  41.0s] " + line + ": stopping the other nodes, collecting")
print("Run directory: /nowhere")
print(line)
sys.exit(3)
"""


def test_a_job_stopped_by_the_fuse_fails_with_the_fuse_line(tmp_path: Path):
    """A worker in this process runs a job whose `marteau run` stand-in reports a fuse."""
    pytest.importorskip("sqlalchemy")
    from marteau.service.db import Database, upgrade
    from marteau.service.settings import Settings
    from tests.service_helpers import make_project, queue_job, run_queue

    script = tmp_path / "fused_run.py"
    script.write_text(FAKE_FUSED_RUN)
    argv = tmp_path / "argv.txt"
    settings = Settings(
        data_dir=tmp_path / "data",
        fuse=True,
        fuse_window=20.0,
        run_command=[sys.executable, str(script), str(argv)],
        poll_interval=0.05,
        lease_ttl=10,
        kill_grace=2,
    )
    db = Database(settings.db_url)
    upgrade(db)
    job_id = queue_job(db, make_project(tmp_path / "project", name="shop"))
    job = run_queue(settings, db, job_id, timeout=60)
    db.dispose()
    assert (job.state, job.exit_code) == ("failed", FUSE_EXIT)
    assert job.exit_reason == (
        "safety fuse: median response time 12.0 s > 10 s over the last 30 s — bench stopped (on n1)"
    )
    assert "--fuse-error-rate 0.5 --fuse-median 10 --fuse-window 20" in argv.read_text()


def test_the_service_passes_the_fuse_in_public_mode_and_reports_why_a_job_stopped(
    tmp_path: Path,
):
    pytest.importorskip("sqlalchemy")
    from marteau.service.job_runs import outcome, run_arguments
    from marteau.service.mail import build_message
    from marteau.service.models import FAILED, Job
    from marteau.service.scheduler import Claim
    from marteau.service.settings import Settings

    job = Job(id=7, overrides={}, allowed_hosts=["shop.example.org"])
    claim = Claim(7, [], "marteau")
    public = Settings(data_dir=tmp_path, public=True, fuse_median=5.0)
    args = run_arguments(job, claim, tmp_path, tmp_path, public)
    options = {args[i]: args[i + 1] for i, arg in enumerate(args) if arg.startswith("--fuse-")}
    assert options == {"--fuse-error-rate": "0.5", "--fuse-median": "5", "--fuse-window": "30"}
    private = Settings(data_dir=tmp_path)
    assert not [
        arg for arg in run_arguments(job, claim, tmp_path, tmp_path, private) if "fuse" in arg
    ]

    console = tmp_path / "console.log"
    line = "safety fuse: error rate 100% > 50% over the last 30 s — bench stopped (on n1)"
    console.write_text(
        f"[00:41] {line}: stopping the other nodes, collecting\n"
        "Run directory: /srv/marteau/jobs/7/runs/x\n"
        f"{line}\n",
        encoding="utf-8",
    )
    state, reason = outcome(FUSE_EXIT, None, console)
    assert (state, reason) == (FAILED, line)
    console.write_text("the console was lost\n")
    assert outcome(FUSE_EXIT, None, console) == (
        FAILED,
        "safety fuse: the bench was stopped (exit 3)",
    )

    mail = build_message(public, ["owner@example.org"], 7, "shop", state, line, tmp_path, True)
    body = mail.get_content()
    assert f"Marteau job #7 (shop) failed: {line}" in body
    assert "The safety fuse stopped the load test" in body
    assert "The results of what ran are kept in the report." in body
