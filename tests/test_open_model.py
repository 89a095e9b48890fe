"""The open model (`--rates`): arrivals, dropped iterations, the latency from the intended
start, and the proof that it sees a stalling target the closed model hides."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from marteau.engine.arrivals import Share, arrivals, parse_rates, parse_share
from marteau.errors import MarteauError
from marteau.results import load
from marteau.results.funkload_reader import read_xml
from marteau.results.records import DROPPED
from tests.servers import LocalServer, ok

MARTEAU = str(Path(sys.executable).with_name("marteau"))
REPO = Path(__file__).resolve().parents[1]

TEST = """
from funkload.FunkLoadTestCase import FunkLoadTestCase


class Stalled(FunkLoadTestCase):
    def test_get(self):
        self.get(self.conf_get("main", "url") + "/", description="Home")
"""

PAGE = """
from funkload.FunkLoadTestCase import FunkLoadTestCase


class Stalled(FunkLoadTestCase):
    def test_get(self):
        url = self.conf_get("main", "url")
        self.get(url + "/", description="Home")
        self.get(url + "/app.css", description="Style sheet")
"""

CONF = """
[main]
title=Stalled
description=A target that stalls
url={url}

[test_get]
description=get

[bench]
cycles = 5
duration = {duration}
startup_delay = 0
sleep_time = 0
cycle_time = 0
log_to =
log_path = bench.log
result_path = bench.xml
sleep_time_min = 0
sleep_time_max = 0
"""


# -- the schedule ---------------------------------------------------------------------


def test_processes_on_nodes_interleave_into_the_whole_rate() -> None:
    """3 nodes x 2 workers at 60/s: each arrival of the bench's schedule exactly once."""
    instants = sorted(
        instant
        for node in range(3)
        for worker in range(2)
        for instant in arrivals(
            start=100.0,
            end=110.0,
            rate=60.0,
            previous=0.0,
            ramp=0.0,
            share=Share(node, 3, worker, 2),
            poisson=False,
        )
    )
    assert len(instants) == 600
    assert instants == pytest.approx([100.0 + k / 60.0 for k in range(600)])


def test_a_ramp_reaches_the_rate_linearly() -> None:
    instants = list(
        arrivals(
            start=0.0, end=14.0, rate=100.0, previous=0.0, ramp=4.0, share=Share(), poisson=False
        )
    )
    during = [t for t in instants if t < 4.0]
    assert len(during) == 200  # the mean rate of the ramp (50/s) for 4 s
    assert len(instants) - len(during) == 1000
    gaps = [b - a for a, b in zip(during, during[1:], strict=False)]
    assert gaps == sorted(gaps, reverse=True)  # closer and closer


def test_poisson_arrivals_draw_exponential_gaps() -> None:
    instants = list(
        arrivals(
            start=0.0,
            end=100.0,
            rate=100.0,
            previous=0.0,
            ramp=0.0,
            share=Share(),
            poisson=True,
            rng=random.Random(7),
        )
    )
    assert 9_500 < len(instants) < 10_500
    gaps = [b - a for a, b in zip(instants, instants[1:], strict=False)]
    assert len(set(gaps)) > len(gaps) * 0.99  # not a fixed interval


@pytest.mark.parametrize("value", ["", "0", "10:-1", "a:b", "1e9", "nan"])
def test_bad_rates_name_where_they_came_from(value: str) -> None:
    with pytest.raises(MarteauError, match=r"bad rates .*\(--rates\)"):
        parse_rates(value, "--rates")


def test_rate_share_is_k_of_n() -> None:
    assert parse_share("2/3") == (2, 3)
    for bad in ("3/3", "x", "1", "-1/2"):
        with pytest.raises(MarteauError, match="--rate-share"):
            parse_share(bad)


# -- benches on a real target ---------------------------------------------------------


class StallingTarget:
    """A single-worker target (one app process, one request at a time, `work` seconds each)
    that stops for `stall` seconds every `period` seconds (a GC pause, a lock, a failover):
    the requests arriving then queue, and it serves its backlog one by one when it resumes."""

    def __init__(self, period: float = 5.0, stall: float = 1.0, work: float = 0.004) -> None:
        self.period, self.stall, self.work = period, stall, work
        self.epoch = time.time()
        self.worker = threading.Lock()
        page = self.serve
        self.server = LocalServer(routes={"/": page, "/app.css": page})

    def serve(self, request: object) -> tuple:
        with self.worker:
            phase = (time.time() - self.epoch) % self.period
            if phase < self.stall:
                time.sleep(self.stall - phase)
            time.sleep(self.work)
        return ok("home")


def bench(
    folder: Path, url: str, duration: int, *args: str, source: str = TEST
) -> subprocess.CompletedProcess:
    (folder / "stalled.py").write_text(source)
    (folder / "Stalled.conf").write_text(CONF.format(url=url, duration=duration))
    return subprocess.run(
        [MARTEAU, "bench", "stalled.py", "Stalled.test_get", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=180,
        env=dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1"),
    )


def report(folder: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    run = subprocess.run(
        [MARTEAU, "report", "--html", "-r", str(folder / "report"), *args, "bench.mrt"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    (path,) = (folder / "report").rglob("summary.json")
    return run, json.loads(path.read_text())


def test_a_stalling_target_the_closed_model_hides_and_the_open_model_shows(
    tmp_path: Path,
) -> None:
    """1 s stalls every 5 s, 12 s windows, a test of two requests on a one-worker target
    (4 ms each, so 40% busy at 50 tests/s).  Closed: 5 users loop; each waits once per
    stall, among thousands of fast requests, so p99 stays low.  Open: 50 tests/s arrive
    whatever the target does; those arriving in a stall wait for its end, then their
    second request queues behind the backlog of first ones (~0.2 s of work), so about
    the first third of a stall's arrivals take over 1 s.  A 12 s window holds 2 or 3
    stalls, 1/6 to 1/4 of the arrivals, so 5-8% of them: p99 from the intended start >= 1 s.
    """
    target = StallingTarget()
    closed_dir, open_dir = tmp_path / "closed", tmp_path / "open"
    closed_dir.mkdir()
    open_dir.mkdir()
    with target.server:
        url = target.server.url
        closed = bench(closed_dir, url, 12, "--workers", "1", source=PAGE)
        opened = bench(open_dir, url, 12, "--workers", "1", "--rates", "50", source=PAGE)
    assert closed.returncode == 0, closed.stdout + closed.stderr
    assert opened.returncode == 0, opened.stdout + opened.stderr

    _, closed_summary = report(closed_dir)
    assert closed_summary["open"] is None
    closed_p99 = closed_summary["overall"]["requests"]["percentiles"]["p99"]  # < 0.5 s quiet
    assert "<iteration" not in (closed_dir / "bench.xml").read_text()

    run, summary = report(open_dir)
    assert run.returncode == 0, run.stdout + run.stderr
    overall = summary["open"]["overall"]
    assert overall["latency"]["p99"] >= 1.0, overall
    assert overall["latency"]["p99"] > 2 * closed_p99, (overall["latency"], closed_p99)
    assert overall["intended"] == 600 and overall["dropped"] == 0, overall
    assert overall["intended_rate"] == pytest.approx(50.0)
    assert overall["achieved_rate"] == pytest.approx(50.0, rel=0.1)
    (page,) = (open_dir / "report").rglob("index.html")
    html = page.read_text()
    assert 'id="open-model"' in html
    assert "latency p99" in html and "Users in use" in html
    print(
        f"closed p99 {closed_p99:.3f}s, open p99 latency {overall['latency']['p99']:.3f}s, "
        f"service p99 {overall['service']['p99']:.3f}s"
    )


def test_a_busy_pool_drops_iterations_counts_and_says_so(tmp_path: Path) -> None:
    """2 users, each request 0.2 s, 50 arrivals/s: at most 10/s run, the rest are dropped:
    counted, a warning on the console and in the report; a `dropped` threshold fails."""
    slow = LocalServer(routes={"/": lambda request: (time.sleep(0.2), ok("slow"))[1]})
    with slow:
        run = bench(tmp_path, slow.url, 3, "--workers", "1", "--rates", "50", "--max-users", "2")
    assert run.returncode == 0, run.stdout + run.stderr  # drops are a warning, not a status
    assert "* Warning: cycle #0 dropped" in run.stdout
    assert "Dropped: cycle #0 dropped" in run.stdout
    assert "* Rates: 50 tests/s, constant arrivals, a pool of 2 users" in run.stdout
    thresholds = tmp_path / "thresholds.yml"
    thresholds.write_text("- dropped < 1%\n- achieved_rate > 0.99 * intended\n- p99_latency < 5\n")
    result, summary = report(tmp_path, "--thresholds", str(thresholds))
    assert result.returncode == 1, result.stdout + result.stderr
    overall = summary["open"]["overall"]
    assert overall["intended"] == 150 and 100 <= overall["dropped"] <= 145, overall
    assert overall["users"] == 2
    assert any("iterations dropped" in w for w in summary["warnings"])
    verdicts = {r["expression"]: r["passed"] for r in summary["thresholds"]["results"]}
    assert verdicts == {
        "dropped < 1%": False,
        "achieved_rate > 0.99 * intended": False,
        "p99_latency < 5": True,
    }


HELD = """
import select
import time

from funkload.FunkLoadTestCase import FunkLoadTestCase

HELD = []


class Stalled(FunkLoadTestCase):
    def test_get(self):
        if not HELD:  # the first iteration holds the loop: 300 arrivals fall due meanwhile
            HELD.append(True)
            select.select([], [], [], 0.3)
        time.sleep(0)  # every iteration waits one loop turn, as a request would
"""


def test_a_late_loop_starts_every_missed_arrival_on_the_users_it_has(tmp_path: Path) -> None:
    """The loop held 0.3 s at 1,000 tests/s: the 300 arrivals it missed all start, each
    counted from its own instant, and they take the users that come back between two
    loop turns instead of one new user each (which in a real bench means building a
    test and opening a connection per arrival, in the loop, which makes it later still)."""
    url = "http://127.0.0.1:9"  # never asked: the test sends no request
    run = bench(tmp_path, url, 2, "--workers", "1", "--rates", "1000", source=HELD)
    assert run.returncode == 0, run.stdout + run.stderr
    iterations = load(str(tmp_path / "bench.mrt")).iterations
    assert iterations.size == 2000
    # none of the held arrivals is dropped; a busy machine may still leave the loop late
    # at the window's end, where an arrival never started is honestly counted dropped
    dropped = iterations["intended"][iterations["result"] == DROPPED]
    assert dropped.size <= 20 and (dropped > iterations["intended"].min() + 1).all(), dropped
    late = iterations["time"] - iterations["intended"]
    assert late.max() > 0.25 and (late > 0.1).sum() >= 150  # they ran late, not skipped
    assert iterations["users"].max() <= 10, iterations["users"].max()


def test_the_open_xml_reads_back_as_its_compact_file_and_parses_strictly(
    tmp_path: Path,
) -> None:
    with LocalServer(routes={"/": lambda request: ok("home")}) as target:
        run = bench(tmp_path, target.url, 2, "--workers", "2", "--rates", "40:80", "--ramp", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    compact = load(str(tmp_path / "bench.mrt"))
    from_xml = read_xml(tmp_path / "bench.xml")
    assert compact.iterations.size == from_xml.iterations.size > 0
    for name in ("intended", "time"):
        assert abs(compact.iterations[name] - from_xml.iterations[name]).max() < 1e-5
    assert set(compact.iterations["worker"].tolist()) == {0, 1}
    assert (compact.iterations["cycle"] == 1).sum() > (compact.iterations["cycle"] == 0).sum()
    root = ET.parse(tmp_path / "bench.xml").getroot()  # strict XML
    config = {item.get("key"): item.get("value") for item in root.iter("config")}
    assert config["marteau:rates"] == "40:80" and config["marteau:ramp"] == "1.0"
    assert config["cycles"] == "[800, 800]"  # FunkLoad's CUs: the pool, 10 s of 80/s
    assert len(list(root.iter("iteration"))) == compact.iterations.size


def test_an_open_bench_stops_with_a_signal_and_keeps_its_iterations(tmp_path: Path) -> None:
    """The pool's idle users end with the cycle; a SIGTERM mid-cycle keeps what ran."""
    with LocalServer(routes={"/": lambda request: ok("home")}) as target:
        (tmp_path / "stalled.py").write_text(TEST)
        (tmp_path / "Stalled.conf").write_text(CONF.format(url=target.url, duration=30))
        process = subprocess.Popen(
            [MARTEAU, "bench", "stalled.py", "Stalled.test_get", "--rates", "30", "--workers", "1"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1"),
        )
        deadline = time.monotonic() + 60  # a loaded machine starts the bench late
        while len(target.requests) < 45 and process.poll() is None:
            assert time.monotonic() < deadline, "the bench never reached 45 requests"
            time.sleep(0.1)
        process.terminate()
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 128 + 15, output
    assert load(str(tmp_path / "bench.mrt")).iterations.size > 30
