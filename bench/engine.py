"""Engine benchmark: Marteau against wrk and Locust, in one run, on this machine.

nginx (one worker, pinned to core 0) serves a tiny body with keep-alive. On
core 1, one after the other: wrk (1 thread), Locust FastHttpUser, and
`marteau bench --workers 1` with a one-GET FunkLoad test, each at 10 then
100 concurrent users for DURATION seconds, ROUNDS times (default 3, the
tools interleaved so that a burst of load elsewhere hits all three). For
each tool it prints the median requests/s and the median CPU time per
request in µs (user + system of the finished child process: less sensitive
to a busy machine than requests/s; Marteau's also "in window", from its own
per-second CPU samples, without start-up and the XML export), each with its
spread over the rounds (min-max), and the ratios as the median of each
round's ratio: a noisy machine shows in the spread rather than in the
verdict. Then the memory per user of one Marteau process holding 1,000 idle
users.

`--profile FILE` runs one Marteau bench (10 users) under py-spy instead
(`pip install py-spy`; native frames, so the system calls show), writes its
folded stacks to FILE and prints the functions that hold the most samples,
by own time and with their callees.

Then the open model (`--rates`), also on core 1: `marteau bench --rates
OPEN_RATE` against the closed model paced to about the same throughput
(CPU µs per request in the window, and the achieved rate against the
intended one over the window), the highest rate one core holds within 1%
(a ladder of rates, first miss stops it), and Locust's `constant_throughput`
users asked for the same rate. `--open-only` runs just this part. The load
average is printed first: the figures of a shared machine need it, and
whether Marteau runs its compiled engine or the pure one (`marteau.native`;
`MARTEAU_PURE=1 python bench/engine.py` measures the pure one).

Needs Debian's nginx and wrk (`apt-get install nginx wrk`) and Locust in the
virtualenv (`pip install locust`). Usage: `python bench/engine.py [--duration 10]
[--rounds 3] [--closed-only | --open-only | --profile FILE]`.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from marteau import native

BIN = Path(sys.executable).parent
NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ return 200 "ok"; }}
    }}
}}
"""
OPEN_RATE = 10_000  # tests/s: the open model's fixed rate on one core (--open-rate)
OPEN_LADDER = (1_000, 2_000, 3_000, 5_000, 7_500, 10_000, 12_500, 15_000, 20_000, 25_000)
CLOSED_USERS = 100  # the closed model paced to about the same rate: users x 1/(sleep + service)
LOCUST_PACED = """
from locust import FastHttpUser, constant_throughput, task


class OneGet(FastHttpUser):
    wait_time = constant_throughput({per_user})

    @task
    def get(self):
        self.client.get("/")
"""
LOCUSTFILE = """
from locust import FastHttpUser, constant, task


class OneGet(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self):
        self.client.get("/")
"""
TEST_MODULE = """
from funkload.FunkLoadTestCase import FunkLoadTestCase


class OneGet(FunkLoadTestCase):
    def test_get(self):
        self.get(self.conf_get("main", "url") + "/")
"""
TEST_CONF = """
[main]
title=One GET
description=One GET of a tiny body
url={url}

[test_get]
description=One GET

[bench]
cycles = 10
duration = 10
startup_delay = 0
sleep_time = 0
cycle_time = 0
log_to =
log_path = bench.log
result_path = bench.xml
sleep_time_min = 0
sleep_time_max = 0
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def start_nginx(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port))
    nginx = subprocess.Popen(
        ["taskset", "-c", "0", "nginx", "-c", str(conf), "-e", str(tmp / "e.log")]
    )
    wait_for_port(port)
    return nginx


def children_cpu() -> float:
    """CPU seconds (user + system) of the child processes waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(url: str, users: int, duration: int) -> float:
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{users}", f"-d{duration}s", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise SystemExit(f"wrk printed no Requests/sec:\n{out}")
    return float(match.group(1))


def run_locust(tmp: Path, url: str, users: int, duration: int, source: str = LOCUSTFILE) -> float:
    locustfile = tmp / "locustfile.py"
    locustfile.write_text(source)
    prefix = tmp / f"locust-{users}"
    subprocess.run(
        [
            "taskset",
            "-c",
            "1",
            str(BIN / "locust"),
            "-f",
            str(locustfile),
            "--headless",
            "-u",
            str(users),
            "-r",
            str(users),
            "-t",
            f"{duration}s",
            "--host",
            url,
            "--csv",
            str(prefix),
            "--only-summary",
            "--loglevel",
            "ERROR",
        ],
        capture_output=True,
        check=False,
        timeout=duration + 60,
    )
    with open(f"{prefix}_stats.csv") as stats:
        for row in csv.DictReader(stats):
            if row["Name"] == "Aggregated":
                return float(row["Requests/s"])
    raise SystemExit("Locust wrote no aggregated stats")


def write_test(tmp: Path, url: str) -> Path:
    workdir = tmp / "marteau"
    workdir.mkdir(exist_ok=True)
    (workdir / "one_get.py").write_text(textwrap.dedent(TEST_MODULE))
    (workdir / "OneGet.conf").write_text(TEST_CONF.format(url=url))
    return workdir


def marteau_bench(
    workdir: Path, users: int, duration: int, extra: list[str]
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            "taskset",
            "-c",
            "1",
            str(BIN / "marteau"),
            "bench",
            "one_get.py",
            "OneGet.test_get",
            "--workers",
            "1",
            "-c",
            str(users),
            "-D",
            str(duration),
            *extra,
        ],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
    )


def run_marteau(workdir: Path, users: int, duration: int) -> tuple[float, float]:
    """Requests/s, and CPU µs per request inside the window (the process's own samples)."""
    from marteau.results import load

    bench = marteau_bench(workdir, users, duration, [])
    if bench.wait(timeout=duration + 120) not in (0, 1):
        raise SystemExit(f"marteau bench exited with {bench.returncode}")
    results = load(workdir / "bench.xml")
    count = len(results.responses)
    samples = load(workdir / "bench.mrt").samples
    opened = results.responses["time"].min()
    inside = samples[(samples["time"] > opened + 1) & (samples["time"] <= opened + duration)]
    window_cpu = float(inside["cpu_percent"].mean()) / 100 * duration if len(inside) else 0.0
    return count / duration, 1e6 * window_cpu / max(count, 1)


def window_cpu_us(samples: Any, opened: float, duration: int, count: int) -> float:
    """CPU µs per request inside the window, from the bench process's own samples."""
    inside = samples[(samples["time"] > opened + 1) & (samples["time"] <= opened + duration)]
    window_cpu = float(inside["cpu_percent"].mean()) / 100 * duration if len(inside) else 0.0
    return 1e6 * window_cpu / max(count, 1)


def run_open(workdir: Path, rate: int, duration: int) -> tuple[float, float]:
    """The open model at `rate` on core 1: (achieved / intended rate, CPU µs per request)."""
    from marteau.report.open_model import open_stats
    from marteau.results import load

    bench = marteau_bench(workdir, 1, duration, ["--rates", str(rate), "--max-users", "1000"])
    if bench.wait(timeout=duration + 120) not in (0, 1):
        raise SystemExit(f"marteau bench --rates exited with {bench.returncode}")
    results = load(workdir / "bench.mrt")
    (cycle,), _ = open_stats(results.config, results.iterations)
    opened = float(results.config["start_at"])
    count = len(results.responses)
    return cycle.achieved_rate / rate, window_cpu_us(results.samples, opened, duration, count)


def run_paced_closed(workdir: Path, rate: int, duration: int) -> tuple[float, float]:
    """The closed model paced near `rate`: (requests/s, CPU µs per request in the window)."""
    from marteau.results import load

    pause = CLOSED_USERS / rate
    bench = marteau_bench(workdir, CLOSED_USERS, duration, ["-t", f"{pause:.6f}"])
    if bench.wait(timeout=duration + 120) not in (0, 1):
        raise SystemExit(f"marteau bench exited with {bench.returncode}")
    results = load(workdir / "bench.mrt")
    count = len(results.responses)
    opened = float(results.responses["time"].min())
    return count / duration, window_cpu_us(results.samples, opened, duration, count)


def open_model(tmp: Path, url: str, workdir: Path, duration: int, rate: int) -> None:
    """The open model's figures (module docstring)."""
    print(f"\nopen model, one core, {duration} s windows, load average {load_average()}")
    closed_rate, closed_us = run_paced_closed(workdir, rate, duration)
    held, open_us = run_open(workdir, rate, duration)
    print(
        f"  closed, {CLOSED_USERS} users paced: {closed_rate:,.0f} req/s, "
        f"{closed_us:.1f} CPU µs/req in window"
    )
    print(
        f"  open at {rate:,}/s: achieved {held:.2%} of intended, {open_us:.1f} CPU µs/req "
        f"in window ({open_us / closed_us - 1:+.1%} against the closed model)"
    )
    highest = 0
    for step in OPEN_LADDER:
        achieved, _ = run_open(workdir, step, duration)
        print(f"  open at {step:,}/s: achieved {achieved:.2%}", flush=True)
        if achieved < 0.99:
            break
        highest = step
    print(f"  highest rate held within 1% on one core: {highest:,}/s (load {load_average()})")
    users = 100
    source = LOCUST_PACED.format(per_user=rate / users)
    locust = run_locust(tmp, url, users, duration, source)
    print(
        f"  Locust constant_throughput, {users} users x {rate / users:g}/s: "
        f"{locust:,.0f} req/s ({locust / rate:.1%} of {rate:,}/s)"
    )


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and all its descendants, in KiB."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except FileNotFoundError:
            continue
        match = re.search(r"VmRSS:\s+(\d+)", status)
        total += int(match.group(1)) if match else 0
        pending.extend(int(child) for child in children)
    return total


def peak_rss_kb(workdir: Path, users: int, duration: int) -> int:
    """Peak memory of a bench whose users each do one GET then stay idle."""
    bench = marteau_bench(workdir, users, duration, ["-s", "0", "-t", str(duration * 3)])
    peak, deadline = 0, time.monotonic() + duration + 120
    while bench.poll() is None and time.monotonic() < deadline:
        peak = max(peak, tree_rss_kb(bench.pid))
        time.sleep(0.2)
    if bench.poll() is None:
        bench.kill()
    return peak


def spread(values: list[float], fmt: str) -> str:
    """``median (min-max)`` of one figure over the rounds."""
    return (
        f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"
        if len(values) > 1
        else f"{values[0]:{fmt}}"
    )


def ratios(tops: list[float], bottoms: list[float]) -> list[float]:
    """Round by round: a ratio of two tools measured minutes apart, not across rounds."""
    return [top / max(bottom, 1e-9) for top, bottom in zip(tops, bottoms, strict=True)]


def closed_model(tmp: Path, url: str, workdir: Path, duration: int, rounds: int) -> None:
    """wrk, Locust and Marteau, `rounds` times at 10 and 100 users (module docstring)."""
    print(
        f"nginx on core 0 at {url}; generators on core 1; {duration} s per run, "
        f"{rounds} rounds; load average {load_average()}\n"
    )
    for users in (10, 100):
        figures: dict[str, list[float]] = {
            key: []
            for key in ("wrk", "locust", "marteau", "wrk_us", "locust_us", "marteau_us", "window")
        }
        for _ in range(rounds):
            cpu = children_cpu()
            wrk = run_wrk(url + "/", users, duration)
            cpu, wrk_cpu = children_cpu(), children_cpu() - cpu
            locust = run_locust(tmp, url, users, duration)
            cpu, locust_cpu = children_cpu(), children_cpu() - cpu
            marteau, in_window = run_marteau(workdir, users, duration)
            marteau_cpu = children_cpu() - cpu
            for key, rate, used in (
                ("wrk", wrk, wrk_cpu),
                ("locust", locust, locust_cpu),
                ("marteau", marteau, marteau_cpu),
            ):
                figures[key].append(rate)
                figures[f"{key}_us"].append(1e6 * used / max(rate * duration, 1))
            figures["window"].append(in_window)
        vs_locust = ratios(figures["marteau"], figures["locust"])
        vs_wrk = ratios(figures["marteau"], figures["wrk"])
        locust_per_cpu = ratios(figures["locust_us"], figures["marteau_us"])
        print(f"{users} users (load average {load_average()})")
        print(f"  req/s        wrk {spread(figures['wrk'], ',.0f')}")
        print(f"               Locust {spread(figures['locust'], ',.0f')}")
        print(f"               Marteau {spread(figures['marteau'], ',.0f')}")
        print(
            f"  CPU µs/req   wrk {spread(figures['wrk_us'], '.1f')}, "
            f"Locust {spread(figures['locust_us'], '.1f')}, "
            f"Marteau {spread(figures['marteau_us'], '.1f')} "
            f"(in window {spread(figures['window'], '.1f')})"
        )
        print(
            f"  Marteau      {spread(vs_locust, '.2f')}x Locust req/s, "
            f"{spread(locust_per_cpu, '.2f')}x per CPU; {spread([100 * v for v in vs_wrk], '.0f')}%"
            " of wrk\n",
            flush=True,
        )
    baseline = peak_rss_kb(workdir, 1, 5)
    loaded = peak_rss_kb(workdir, 1000, 5)
    per_user = (loaded - baseline) / 999
    print(
        f"memory: 1 user {baseline / 1024:.1f} MiB, 1,000 idle users "
        f"{loaded / 1024:.1f} MiB: {per_user:.1f} KiB per user (target < 64)"
    )


def profile(workdir: Path, duration: int, output: Path) -> None:
    """One Marteau bench (10 users) under py-spy: folded stacks, then the top functions."""
    spy = BIN / "py-spy"
    if not spy.exists():
        raise SystemExit(f"py-spy is not installed beside {sys.executable}: pip install py-spy")
    bench = marteau_bench(workdir, 10, duration, [])
    try:
        subprocess.run(
            [str(spy), "record", "--pid", str(bench.pid), "--format", "raw", "--rate", "200", "--native",
             "--duration", str(duration + 1), "--output", str(output)],
            check=True, capture_output=True, timeout=duration + 60,
        )  # fmt: skip
    finally:
        bench.wait(timeout=duration + 120)
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in output.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + count
    print(f"{samples} samples in {output} (load average {load_average()})")
    for title, table in (("own time", own), ("with callees", total)):
        print(f"\n{title}:")
        for frame, count in sorted(table.items(), key=lambda item: -item[1])[:25]:
            print(f"  {100 * count / max(samples, 1):5.1f}%  {frame}")


def main() -> int:
    parser = argparse.ArgumentParser(description="Marteau vs wrk and Locust on one core")
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per tool (default 3)")
    part = parser.add_mutually_exclusive_group()
    part.add_argument("--open-only", action="store_true", help="only the open model's part")
    part.add_argument("--closed-only", action="store_true", help="no open model's part")
    part.add_argument("--profile", type=Path, metavar="FILE", help="py-spy one Marteau bench")
    parser.add_argument(
        "--open-rate", type=int, default=OPEN_RATE, help=f"tests/s (default {OPEN_RATE:,})"
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    for tool in ("nginx", "wrk", "taskset"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed: apt-get install nginx wrk util-linux")
    if not (BIN / "locust").exists():
        raise SystemExit(f"Locust is not installed beside {sys.executable}: pip install locust")
    with tempfile.TemporaryDirectory(prefix="marteau-bench-") as name:
        tmp = Path(name)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        nginx = start_nginx(tmp, port)
        try:
            workdir = write_test(tmp, url)
            print(f"Marteau's engine: {native.describe()}")
            if args.profile is not None:
                profile(workdir, args.duration, args.profile.resolve())
                return 0
            if not args.open_only:
                closed_model(tmp, url, workdir, args.duration, args.rounds)
            if not args.closed_only:
                open_model(tmp, url, workdir, args.duration, args.open_rate)
        finally:
            nginx.terminate()
            nginx.wait()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
