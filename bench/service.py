"""Service benchmark: `marteau serve` with 10,000 finished jobs, under 20 clients.

    .venv/bin/python bench/service.py [--jobs 10000] [--clients 20] [--duration 20]
                                      [--requests 20000] [--lines 20] [--web-processes 1]
                                      [--web-threads 40] [--postgres] [--keep DIR]
                                      [--login-flood 40] [--no-throttle]

Fills a fresh data folder's database with ``--jobs`` finished jobs (12 users,
12 nodes in 2 pools, succeeded/failed/cancelled with their timings, nodes,
overrides and exit reasons, the succeeded ones with key figures and their change
from their project's previous run; bulk inserts through SQLAlchemy Core), starts a
real ``marteau serve`` on 127.0.0.1 (uvicorn and its 2 workers, default
settings but ``--web-processes`` and ``--web-threads``; with ``--postgres`` the
database is in the test suite's private PostgreSQL server, tests/postgres.py,
instead of SQLite) and queues two jobs that keep running for
the whole benchmark. Then ``--clients`` keep-alive clients (threads), each
logged in with its own session cookie, alternate the dashboard ``/`` and
``GET /api/jobs`` (its default page of 50) with no pause, for ``--duration``
seconds or ``--requests`` requests in all, whichever ends first; meanwhile
one more client, in a process of its own, follows a running job's console
over server-sent events. Prints, per endpoint, the count, requests/s and
p50/p95/p99/max latency against the issue's target (p99 <= 100 ms), the CPU
time per request of the web processes and of the clients, then the delay
from a console line being written to its arrival at the SSE client (target
<= 1 s), under that load and again with the service otherwise idle
(``--lines`` lines).

With no pause between requests, latency is concurrency / throughput (Little's
law): 20 clients at p99 <= 100 ms need some 250 requests/s, which the CPU
time per request and the free cores bound.

What the two running jobs are: the jobs' load is generated on the nodes, other
machines, so on the controller a running job is `marteau run` supervising its
nodes and printing a progress line every second. The jobs here run this
script's ``stand-in`` command instead (``--run-command``): it writes a
timestamped console line every half second (twice `marteau run`'s rate) into
the console file, exactly where the worker sends a job's output, until its
time is up. Everything else is the real thing: the worker processes
supervising them, their lease renewals and cancel checks in the database, the
node leases the dashboard shows. A real bench on this 2-core machine would
measure the bench's own CPU use instead of the service.

Then (``--login-flood N``, default 40) the same clients run again beside N
clients sending wrong passwords to ``/api/login`` with no pause, and their p99 is
compared with its target (<= 200 ms); with ``--no-throttle`` the service runs
without login throttling, so that every wrong password is hashed (the bounded
hashing pool alone protects the other requests).

The load average (``/proc/loadavg``) is printed before and after: the figures
are only as quiet as the machine. Every process started here is stopped at
the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_P99_MS = 100.0
TARGET_SSE_MS = 1000.0
TARGET_FLOOD_P99_MS = 200.0  # the normal clients' p99 beside a flood of wrong passwords
LINE_INTERVAL = 0.5  # seconds between the stand-in's console lines
PASSWORD = "bench-password-1"
USERS = 12
POOLS = {"marteau": ["localhost", "m2", "m3", "m4"], "hammers": [f"h{i}" for i in range(1, 9)]}
PROJECTS = (
    ("shop", "https://git.example.org/shop/loadtests.git"),
    ("search", "https://git.example.org/search/bench.git"),
    ("api", "git@git.example.org:platform/api-load.git"),
    ("checkout", "https://git.example.org/shop/checkout-bench.git"),
    ("login", "https://git.example.org/auth/load.git"),
)
FAILURES = (
    "bad input: .marteau.yml: line 3: cycles: expected users per cycle such as 10:20:30",
    "marteau run failed (exit 1): Error: node h3 unreachable",
    "thresholds failed: p95 0.812 s > 0.5 s",
    "worker lost (lease expired)",
)
STAND_IN_LINE = "bench line {n} written at {t:.6f}"


def stand_in(argv: list[str]) -> int:
    """What the two running jobs run instead of `marteau run`: a console line every
    LINE_INTERVAL seconds, stamped with the instant it is written, for `-l seconds=S`."""
    label = argv[argv.index("-l") + 1] if "-l" in argv else ""
    seconds = float(dict(p.split("=", 1) for p in label.split(",") if "=" in p).get("seconds", 60))
    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(128 + signum))
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
        sys.stdout.write(STAND_IN_LINE.format(n=n, t=time.time()) + "\n")
        sys.stdout.flush()
        time.sleep(LINE_INTERVAL)
    return 0


def fill(db_url: str, jobs: int, seed: int = 5) -> list[str]:
    """The users, nodes and `jobs` finished jobs; returns the users' emails."""
    from sqlalchemy import insert, text

    from marteau.service.accounts import hash_password
    from marteau.service.comparisons import (
        DEFAULT_TOLERANCE,
        compare,
        flagged_text,
        project_key,
    )
    from marteau.service.db import Database, upgrade
    from marteau.service.models import CANCELLED, FAILED, GIT, SUCCEEDED, Job, JobNode, Node, User
    from marteau.service.run_figures import KeyFigures

    rng = random.Random(seed)
    db = Database(db_url)
    upgrade(db)
    now = time.time()
    digest = hash_password(PASSWORD)  # one argon2 hash (salted once) serves every user
    emails = ["admin@bench.example"] + [f"user{i:02d}@bench.example" for i in range(1, USERS)]
    with db.write() as session:
        session.execute(
            insert(User),
            [
                {"email": e, "password_hash": digest, "is_admin": i == 0, "created": now - 2e7}
                for i, e in enumerate(emails)
            ],
        )
        session.execute(
            insert(Node),
            [
                {"name": name, "pool": pool, "vars": {"ansible_host": f"10.0.{p}.{i + 1}"}}
                | {"created": now - 2e7, "status": "reachable", "last_check": now - 60}
                for p, (pool, names) in enumerate(POOLS.items())
                for i, name in enumerate(names)
                if name != "localhost"
            ],
        )
    span = 180 * 86400.0
    rows, job_nodes = [], []
    last_run: dict[str, tuple[int, KeyFigures]] = {}  # project -> its last successful run
    for job_id in range(1, jobs + 1):
        created = now - span + span * (job_id - 1) / jobs + rng.uniform(0, 60)
        pool = "hammers" if rng.random() < 0.4 else "marteau"
        wanted = rng.choice((1, 1, 2, 3, 4)) if pool == "hammers" else rng.choice((1, 1, 2))
        state = rng.choices((SUCCEEDED, FAILED, CANCELLED), (75, 18, 7))[0]
        name, url = rng.choice(PROJECTS)
        started = created + rng.uniform(0.5, 300)
        ended = started + rng.uniform(30, 1800)
        if state == CANCELLED and rng.random() < 0.3:
            started = None  # cancelled while queued
            ended = created + rng.uniform(5, 600)
        overrides = rng.choice(
            ({}, {"cycles": "10:20:40"}, {"duration": 60, "label": "nightly"}, {"nodes": wanted})
        )
        rows.append(
            {
                "id": job_id,
                "owner_id": rng.randint(1, USERS),
                "source_kind": GIT,
                "source_url": url,
                "source_ref": rng.choice((None, None, "main", "v2.1")),
                "overrides": overrides,
                "state": state,
                "prepared": True,
                "project_name": name,
                "pool": pool,
                "nodes_wanted": wanted,
                "email": rng.choice((None, f"team-{name}@bench.example")),
                "cancel_requested": state == CANCELLED,
                "created": created,
                "started": started,
                "ended": ended,
                "exit_code": {SUCCEEDED: 0, FAILED: rng.choice((1, 2)), CANCELLED: None}[state],
                "exit_reason": {
                    SUCCEEDED: "marteau run succeeded",
                    FAILED: rng.choice(FAILURES),
                    CANCELLED: "cancelled by its owner",
                }[state],
                "report_path": "report/index.html" if state == SUCCEEDED else None,
                **dict.fromkeys(("peak_rps", "p95", "error_percent", "apdex"), None),
                **dict.fromkeys(("project_key", "compared_to", "flagged", "comparison"), None),
            }
        )
        if state == SUCCEEDED:  # its key figures, and its change from the project's last
            owner = rows[-1]["owner_id"]
            key = project_key(owner, name, Job(source_kind=GIT, source_url=url))
            figures = KeyFigures(
                rng.uniform(50, 5000), rng.uniform(0.02, 2), rng.uniform(0, 5), rng.random()
            )
            rows[-1].update(vars(figures), project_key=key)
            if key in last_run:
                before, previous = last_run[key]
                changes = compare(previous, figures, DEFAULT_TOLERANCE)
                rows[-1].update(compared_to=before, flagged=flagged_text(changes))
                rows[-1]["comparison"] = {
                    "job": before,
                    "tolerance": DEFAULT_TOLERANCE,
                    "changes": changes,
                    "diff": "report/diff/",
                    "trend": "report/trend/",
                    "runs": 20,
                }
            last_run[key] = (job_id, figures)
        if started is not None:
            for node in rng.sample(POOLS[pool], wanted):
                job_nodes.append({"job_id": job_id, "node_name": node})
    with db.write() as session:
        for i in range(0, len(rows), 2000):
            session.execute(insert(Job), rows[i : i + 2000])
        session.execute(insert(JobNode), job_nodes)
        if not db.is_sqlite:  # the ids were given: PostgreSQL's sequence must follow them
            session.execute(
                text("SELECT setval(pg_get_serial_sequence('jobs', 'id'), :n)"), {"n": jobs}
            )
    db.dispose()
    return emails


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of processes, all their threads (from /proc)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += sum(int(x) for x in fields[11:13])
    return total / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Samples:
    """Latencies (seconds) of one endpoint, and its failures."""

    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


def milliseconds(seconds: list[float]) -> dict[str, float]:
    """The report's sorted-index percentiles (p50, p95, p99, ...) and the max, in ms."""
    import numpy as np

    from marteau.report.quantiles import percentiles

    ordered = np.sort(np.array(seconds, dtype=float)) * 1000
    return {**percentiles(ordered), "max": float(ordered[-1]) if ordered.size else -1.0}


class Service:
    """A `marteau serve` of the filled data folder, its jobs running the stand-in."""

    def __init__(
        self,
        data_dir: Path,
        database_url: str,
        web_processes: int,
        web_threads: int,
        settings: dict[str, str] | None = None,
    ) -> None:
        """`settings`: MARTEAU_<NAME> values for serve (none: the defaults)."""
        from tests.servers import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / "serve.log"
        stand_in_command = shlex.join([sys.executable, str(Path(__file__).resolve()), "stand-in"])
        command = [sys.executable, "-c", "from marteau.cli import main; main()", "serve"]
        command += ["--data-dir", str(data_dir), "--port", str(self.port), "--workers", "2"]
        command += ["--run-command", stand_in_command, "--web-processes", str(web_processes)]
        command += ["--web-threads", str(web_threads), "--database-url", database_url]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MARTEAU_")}
        env.update(settings or {})
        with open(self.log, "ab") as log:
            # a session of its own: Ctrl-C reaches this script, which stops it in order
            self.proc = subprocess.Popen(
                command,
                cwd=data_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_up(self, timeout: float = 120.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"marteau serve exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/login", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"marteau serve did not answer within {timeout:g}s")

    def web_pids(self) -> list[int]:
        """The processes that answer HTTP: serve, or its uvicorn worker processes."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        spawned = [
            int(pid)
            for pid in children.split()
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        return spawned or [self.proc.pid]

    def stop(self) -> None:
        """SIGTERM (serve stops its workers, they stop their jobs), then SIGKILL the group."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def log_in(url: str, email: str):  # type: ignore[no-untyped-def]
    import httpx

    client = httpx.Client(base_url=url, timeout=30)
    answer = client.post("/api/login", json={"email": email, "password": PASSWORD})
    if answer.status_code != 200:
        raise SystemExit(f"log in as {email}: {answer.status_code} {answer.text[:200]}")
    client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
    return client


def start_jobs(client, project: Path, seconds: float) -> list[int]:  # type: ignore[no-untyped-def]
    """Queue two jobs of the stand-in and wait until both run."""
    ids = []
    for _ in range(2):
        answer = client.post(
            "/api/jobs",
            json={"path": str(project), "label": f"seconds={seconds:g}"},
        )
        if answer.status_code != 201:
            raise SystemExit(f"queue a job: {answer.status_code} {answer.text[:300]}")
        ids.append(answer.json()["id"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = [client.get(f"/api/jobs/{i}").json()["state"] for i in ids]
        if states == ["running", "running"]:
            return ids
        if any(s not in ("queued", "running") for s in states):
            raise SystemExit(f"the benchmark's jobs ended early: {states}")
        time.sleep(0.2)
    raise SystemExit("the two jobs did not start within 120 s")


def drive(clients: list, duration: float, max_requests: int) -> tuple[dict[str, Samples], float]:  # type: ignore[type-arg]
    """Each client alternates `/` and `/api/jobs` until the time or the count is spent;
    returns the samples per endpoint and the wall time."""
    paths = ("/", "/api/jobs")
    results = {path: Samples() for path in paths}
    lock = threading.Lock()
    budget = [max_requests]
    deadline = time.monotonic() + duration

    def loop(client, first: int) -> None:  # type: ignore[no-untyped-def]
        turn = first
        while time.monotonic() < deadline:
            with lock:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
            path = paths[turn % 2]
            turn += 1
            t0 = time.perf_counter()
            try:
                answer = client.get(path)
                answer.read()
                elapsed = time.perf_counter() - t0
                ok = answer.status_code == 200
                what = f"HTTP {answer.status_code}"
            except Exception as exc:  # noqa: BLE001 - counted and shown, the run goes on
                elapsed, ok, what = time.perf_counter() - t0, False, type(exc).__name__
            with lock:
                if ok:
                    results[path].latencies.append(elapsed)
                else:
                    results[path].error(what)

    threads = [
        threading.Thread(target=loop, args=(c, i), daemon=True) for i, c in enumerate(clients)
    ]
    t0 = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, time.monotonic() - t0


def flood(url: str, emails: list[str], attackers: int, duration: float) -> dict[str, int]:
    """`attackers` clients sending wrong passwords to /api/login with no pause for
    `duration` seconds (each a connection of its own); the count of each answer."""
    import httpx

    answers: dict[str, int] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + duration

    def loop(index: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            turn = 0
            while time.monotonic() < deadline:
                email = emails[(index + turn) % len(emails)]
                turn += 1
                try:
                    what = str(
                        client.post(
                            "/api/login", json={"email": email, "password": "wrong"}
                        ).status_code
                    )
                except httpx.HTTPError as exc:
                    what = type(exc).__name__
                with lock:
                    answers[what] = answers.get(what, 0) + 1

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(attackers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def watch(url: str, job_id: str) -> int:
    """The SSE client, in a process of its own (so that the load's client threads do not
    delay its clock readings): prints `connected`, then `<written> <received>` for each
    stand-in line of the job's console stream. The session cookie comes in $BENCH_COOKIE."""
    import httpx

    from marteau.service.routes.deps import COOKIE

    prefix = STAND_IN_LINE.split("{")[0]
    cookies = {COOKIE: os.environ["BENCH_COOKIE"]}
    client = httpx.Client(base_url=url, cookies=cookies, timeout=30)
    with client, client.stream("GET", f"/api/jobs/{job_id}/console/stream") as stream:
        print("connected", flush=True)
        for line in stream.iter_lines():
            received = time.time()
            text = line.removeprefix("data: ")
            if line.startswith("data: ") and text.startswith(prefix):
                print(f"{text.rsplit(' ', 1)[1]} {received:.6f}", flush=True)
    return 0


class ConsoleWatcher:
    """Runs `watch` and keeps its (written, received) pairs; `delays(since)` are those of
    the lines written after `since` (time.time())."""

    def __init__(self, url: str, cookie: str, job_id: int) -> None:
        command = [sys.executable, str(Path(__file__).resolve()), "watch", url, str(job_id)]
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=dict(os.environ, BENCH_COOKIE=cookie),
            start_new_session=True,  # Ctrl-C reaches this script, which stops it
        )
        self.pairs: list[tuple[float, float]] = []
        self.connected = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            if line.strip() == "connected":
                self.connected.set()
            elif line.strip():
                written, received = map(float, line.split())
                self.pairs.append((written, received))
        self.connected.set()

    def delays(self, since: float, until: float = float("inf")) -> list[float]:
        return [r - w for w, r in self.pairs if since <= w < until]

    def wait_past(self, instant: float, timeout: float) -> None:
        """Until a line written after `instant` arrived: the lines come in order, so every
        line written before it is in (a slow one is not left out)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.delays(instant):
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait()


def table(results: dict[str, Samples], seconds: float, cpu: float, client_cpu: float) -> list[str]:
    lines = [
        f"{'endpoint':<11} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'p99 ms':>7} {'max ms':>7}  p99/target  errors"
    ]
    total = sum(len(s.latencies) + sum(s.errors.values()) for s in results.values())
    for path, samples in results.items():
        ms, count = milliseconds(samples.latencies), len(samples.latencies)
        errors = ", ".join(f"{k} x{v}" for k, v in samples.errors.items()) or "none"
        lines.append(
            f"{path:<11} {count:>8,} {count / seconds:>7.1f} {ms['p50']:>7.1f} "
            f"{ms['p95']:>7.1f} {ms['p99']:>7.1f} {ms['max']:>7.1f}  "
            f"{ms['p99'] / TARGET_P99_MS:>10.2f}  {errors}"
        )
    if total:
        lines.append(
            f"CPU per request: server {cpu / total * 1000:.2f} ms ({cpu:.1f} s in the web "
            f"processes), clients {client_cpu / total * 1000:.2f} ms ({client_cpu:.1f} s)"
        )
    return lines


def sse_line(what: str, delays: list[float]) -> str:
    if not delays:
        return f"SSE {what}: no line received"
    ms = milliseconds(delays)
    return (
        f"SSE {what}: {len(delays)} lines, written -> received p50 {ms['p50']:.0f} ms, "
        f"p95 {ms['p95']:.0f} ms, max {ms['max']:.0f} ms; "
        f"max/target {ms['max'] / TARGET_SSE_MS:.2f} (target <= {TARGET_SSE_MS:.0f} ms)"
    )


def print_flood(service: Service, emails: list[str], clients: list, args) -> None:  # type: ignore[no-untyped-def,type-arg]
    """The clients again, beside `--login-flood` clients sending wrong passwords."""
    answers: dict[str, int] = {}
    attack = threading.Thread(
        target=lambda: answers.update(flood(service.url, emails, args.login_flood, args.duration)),
        daemon=True,
    )
    web = service.web_pids()
    cpu0, client0 = cpu_seconds(web), own_cpu_seconds()
    attack.start()
    results, seconds = drive(clients, args.duration, args.requests)
    attack.join()
    cpu, client_cpu = cpu_seconds(web) - cpu0, own_cpu_seconds() - client0
    throttle = "off" if args.no_throttle else "on (the defaults)"
    print(
        f"beside {args.login_flood} clients sending wrong passwords (login throttling "
        f"{throttle}): their answers {dict(sorted(answers.items()))}; load average "
        f"{load_average()}"
    )
    for line in table(results, seconds, cpu, client_cpu):
        print(line)
    p99 = max(milliseconds(r.latencies)["p99"] for r in results.values())
    print(
        f"normal clients' p99 {p99:.1f} ms: p99/target {p99 / TARGET_FLOOD_P99_MS:.2f} "
        f"(target <= {TARGET_FLOOD_P99_MS:.0f} ms)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="finished jobs in the database")
    parser.add_argument("--clients", type=int, default=20, help="concurrent HTTP clients")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    parser.add_argument("--requests", type=int, default=20_000, help="at most this many requests")
    parser.add_argument("--lines", type=int, default=20, help="console lines timed without load")
    parser.add_argument(
        "--web-processes", type=int, default=1, help="marteau serve --web-processes"
    )
    parser.add_argument("--web-threads", type=int, default=40, help="marteau serve --web-threads")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="the database in a private PostgreSQL server (the test suite's) instead of SQLite",
    )
    parser.add_argument("--keep", type=Path, help="keep the data folder here (must not exist)")
    parser.add_argument(
        "--login-flood",
        type=int,
        default=40,
        help="then as many clients sending wrong passwords beside the clients (0: skip)",
    )
    parser.add_argument(
        "--no-throttle",
        action="store_true",
        help="serve without login throttling: the flood's every password is hashed",
    )
    args = parser.parse_args()
    if (
        min(
            args.jobs, args.clients, args.requests, args.lines, args.web_processes, args.web_threads
        )
        < 1
        or args.duration <= 0
    ):
        parser.error(
            "--jobs, --clients, --requests, --lines, --web-processes, --web-threads "
            "and --duration must be positive"
        )

    from marteau.service.routes.deps import COOKIE
    from tests.service_helpers import make_project

    work = Path(tempfile.mkdtemp(prefix="marteau-bench-service-"))
    data_dir = work / "data"
    data_dir.mkdir()
    service = None
    clients: list = []  # type: ignore[type-arg]
    watcher = None
    cluster = None
    try:
        database_url = f"sqlite:///{data_dir / 'marteau.db'}"
        if args.postgres:
            from tests.postgres import PostgresCluster, missing

            if missing():
                raise SystemExit(f"--postgres: {missing()}")
            cluster = PostgresCluster().start()
            database_url = cluster.create_database()
        load_before = load_average()
        t0 = time.monotonic()
        emails = fill(database_url, args.jobs)
        filled = time.monotonic() - t0
        unthrottled = {
            "MARTEAU_LOGIN_ACCOUNT_FAILURES": "0",
            "MARTEAU_LOGIN_ADDRESS_FAILURES": "0",
        }
        service = Service(
            data_dir,
            database_url,
            args.web_processes,
            args.web_threads,
            unthrottled if args.no_throttle else None,
        )
        service.wait_up()
        admin = log_in(service.url, emails[0])
        project = make_project(work / "project", name="bench")
        job_seconds = args.duration + args.lines * LINE_INTERVAL + 120
        job_ids = start_jobs(admin, project, job_seconds)
        clients = [log_in(service.url, emails[i % len(emails)]) for i in range(args.clients)]
        for client in clients:  # a first request each: connections open before timing
            client.get("/api/me")

        watcher = ConsoleWatcher(service.url, admin.cookies[COOKIE], job_ids[0])
        if not watcher.connected.wait(60) or watcher.proc.poll() is not None:
            raise SystemExit("the SSE client could not follow the job's console")
        since = time.time()
        web = service.web_pids()
        cpu0, client0 = cpu_seconds(web), own_cpu_seconds()
        results, seconds = drive(clients, args.duration, args.requests)
        cpu, client_cpu = cpu_seconds(web) - cpu0, own_cpu_seconds() - client0
        until = time.time()
        load_after = load_average()
        watcher.wait_past(until, timeout=10)
        under_load = watcher.delays(since, until)

        since = time.time()
        deadline = time.monotonic() + args.lines * LINE_INTERVAL * 3 + 10
        while len(watcher.delays(since)) < args.lines and time.monotonic() < deadline:
            time.sleep(0.1)
        idle = watcher.delays(since)[: args.lines]

        print(
            f"Marteau service figures: {args.jobs:,} finished jobs "
            f"in {'PostgreSQL' if cluster else 'SQLite'} (filled in {filled:.1f}s), "
            f"2 jobs running, {len(web)} web process(es) of "
            f"{args.web_threads} threads, "
            f"{args.clients} clients "
            f"alternating / and /api/jobs, {seconds:.1f}s"
        )
        print(f"load average before: {load_before}; after the load: {load_after}")
        for line in table(results, seconds, cpu, client_cpu):
            print(line)
        print(sse_line("under that load", under_load))
        print(sse_line("service otherwise idle", idle))
        if args.login_flood:
            print_flood(service, emails, clients, args)
    except KeyboardInterrupt:
        print("interrupted: stopping the service", file=sys.stderr)
        return 130
    finally:
        if watcher is not None:
            watcher.stop()
        for client in clients:
            client.close()
        if service is not None:
            service.stop()
        if cluster is not None:
            cluster.stop()
        if args.keep:
            shutil.move(str(work), str(args.keep))
            print(f"data folder and serve.log kept in {args.keep}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["stand-in"]:
        sys.exit(stand_in(sys.argv[2:]))
    if sys.argv[1:2] == ["watch"]:
        sys.exit(watch(*sys.argv[2:4]))
    sys.exit(main())
