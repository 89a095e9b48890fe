"""Helpers for the service tests, and a stand-in for `marteau run`.

`python tests/service_helpers.py fake-run SRC [marteau run options]` behaves like a
very fast `marteau run` for the scheduler: it takes its nodes from the `-i` inventory
and holds one lock file per node (created with O_EXCL in $MARTEAU_FAKE_LOCKS), so a
node given to two jobs at once makes the second one fail loudly ("DOUBLE BOOKED").
The label (`-l`) steers it: `sleep=S` (default $MARTEAU_FAKE_SLEEP or 0.1 s),
`exit=N`, `slower=F` (a real summary.json, see `real_summary`). It writes
`<-o>/index.html`, its pid to `<job dir>/fake.pid`, and on SIGTERM releases its locks
and exits 143, as `marteau run` exits 128+signal.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from marteau.orchestration.live import LiveView
from marteau.orchestration.nodes_command import _show as show_nodes

try:
    import httpx
except ImportError:  # the scheduler tests do without
    httpx = None  # type: ignore[assignment]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
MARTEAU = [PYTHON, "-c", "from marteau.cli import main; main()"]
FAKE_RUN = f"{PYTHON} {HERE / 'service_helpers.py'} fake-run"
FAKE_NODES = f"{PYTHON} {HERE / 'service_helpers.py'} fake-nodes"
SIMPLE_XML = HERE / "data" / "report" / "simple.xml"


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def fake_run(argv: list[str]) -> int:
    inventory = Path(_option(argv, "-i") or "")
    report = Path(_option(argv, "-o") or "report")
    label = _option(argv, "-l") or ""
    nodes = [
        line.split()[0]
        for line in inventory.read_text().splitlines()
        if line.strip() and not line.startswith(("#", "["))
    ]
    sleep = float(os.environ.get("MARTEAU_FAKE_SLEEP", "0.1"))
    code = 0
    slower = None
    for part in label.split(","):
        key, _, value = part.partition("=")
        if key == "sleep":
            sleep = float(value)
        elif key == "exit":
            code = int(value)
        elif key == "slower":
            slower = float(value)
    Path("fake.pid").write_text(str(os.getpid()))
    locks = Path(os.environ.get("MARTEAU_FAKE_LOCKS", "locks"))
    locks.mkdir(parents=True, exist_ok=True)
    held: list[Path] = []

    def release() -> None:
        for path in held:
            path.unlink(missing_ok=True)

    def on_term(signum: int, frame: object) -> None:
        print("fake run: SIGTERM, releasing", flush=True)
        release()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    for node in nodes:
        path = locks / node
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            print(f"Error: DOUBLE BOOKED node {node}", flush=True)
            release()
            return 3
        held.append(path)
    print(f"fake run of {argv[0]} on {', '.join(nodes)} ({' '.join(argv[1:])})", flush=True)
    view = LiveView(live=False)
    deadline = time.monotonic() + sleep
    tick = 0
    while time.monotonic() < deadline:  # progress lines, as a bench prints them
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        if sleep >= 1:
            tick += 1
            print(f"fake progress {tick}", flush=True)
            fake_figures(view, nodes, tick)
    if code == 0:
        report.mkdir(parents=True, exist_ok=True)
        (report / "index.html").write_text("<html><body><h1>fake report</h1></body></html>")
        (report / "data.txt").write_text("figures\n")
        summary = {
            "overall": {
                "tests": {"count": 40, "success": 39, "stps": 3.9, "error_percent": 2.5},
                "pages": {
                    "spps": 12.25,
                    "error_percent": 0.0,
                    "percentiles": {"p95": 0.125},
                    "apdex": {"score": 0.97, "label": "Excellent"},
                },
            },
            "thresholds": {"passed": True},
        }
        (report / "summary.json").write_text(json.dumps(summary))
        if slower is not None:
            real_summary(report, slower)
    else:
        print(f"Error: the fake run failed with exit {code}", flush=True)
    release()
    return code


def real_summary(report: Path, factor: float) -> None:
    """The report layer's own summary.json (no charts) of tests/data/report/simple.xml
    with every duration `factor` times longer: a run `factor` times slower."""
    import re

    from marteau.report import stats, summary
    from marteau.results.merge import load_all

    def scaled(match: re.Match[str]) -> str:
        return f'duration="{float(match.group(1)) * factor:.6f}"'

    xml = report / "funkload.xml"
    xml.write_text(re.sub(r'duration="([0-9.]+)"', scaled, SIMPLE_XML.read_text()))
    merged = load_all([str(xml)])
    bench = stats.compute(
        merged.results, apdex_t=1.5, nodes=merged.nodes, thread_base=merged.thread_base
    )
    summary.write_summary(report, summary.build_summary(bench, inputs=merged.inputs()))


TICKS_PER_CYCLE = 3  # progress lines of each node per cycle of the stand-in


def fake_figures(view: LiveView, nodes: list[str], tick: int) -> None:
    """Per-node progress line `tick` (from 1), printed by `marteau run`'s own plain view:
    cycle n runs n + 1 users per node for `TICKS_PER_CYCLE` lines, whose last one says
    node i did 100 (n + 1) + i req/s, 10 (n + 1) tests ok, (n + 1) % 2 errors, p50
    10 (n + 1) ms, p95 20 (n + 1) + i ms, p99 40 (n + 1) ms (a little less before)."""
    cycle, step = divmod(tick - 1, TICKS_PER_CYCLE)
    users = cycle + 1
    share = (step + 1) / TICKS_PER_CYCLE  # of the cycle's last line's figures
    slower = 0.7 + 0.3 * share
    for index, node in enumerate(nodes):
        view.node(
            node,
            cycle=cycle,
            users=users,
            cycle_users=users,
            rps=100.0 * users + index - 10 * (TICKS_PER_CYCLE - 1 - step),
            ok=int(10 * users * share),
            failures=0,
            errors=users % 2,
            p50=0.010 * users * slower,
            p95=(0.020 * users + 0.001 * index) * slower,
            p99=0.040 * users * slower,
        )


def fake_nodes(argv: list[str]) -> int:
    """A stand-in for `marteau nodes check|unlock`: a node named down* is unreachable,
    one named locked* is locked by job 7 of the service (shown by the real table)."""
    name = argv[-1]
    inventory = Path(_option(argv, "-i") or "").read_text()
    line = next(line for line in inventory.splitlines() if line.split()[:1] == [name])
    if argv[0] == "check":
        if name.startswith("down"):
            print(f"{name}  unreachable")
            return 1
        if name.startswith("locked"):
            holder = {"job": "run-7", "owner": "ops@lab (marteau serve job 7)"}
            lock = {**holder, "expires": time.time() + 600}
            row = {"node": name, "reachable": True, "lock": lock, "version": ["0"]}
            show_nodes([{**row, "clock": 0.001, "error": ""}])
            return 0
        print(f"{name}  free  pool {_option(argv, '--pool')}  [{line}]")
        return 0
    print(f"{name}: released (was job 7 of someone) {' '.join(argv[:2])}")
    return 0


def run_queue(settings, db, job_id: int, timeout: float = 120):  # type: ignore[no-untyped-def]
    """A worker in this process prepares and runs the queue until job `job_id` ends;
    the ended job."""
    from marteau.service.models import Job
    from marteau.service.worker import JobWorker

    worker = JobWorker(settings, db)
    worker.register()

    def finished() -> Job | None:
        worker.step()
        with db.read() as session:
            job = session.get(Job, job_id)
        return job if job.finished else None

    return wait_for(finished, timeout=timeout, what=f"job {job_id} to end")


def queue_job(db, project: Path) -> int:  # type: ignore[no-untyped-def]
    """A job of a new user `owner@example.org` on the project folder; its id."""
    from marteau.service.accounts import create_user
    from marteau.service.models import Job

    with db.write() as session:
        owner = create_user(session, "owner@example.org", "owner-password")
        job = Job(owner_id=owner.id, source_kind="path", source_url=str(project), created=1.0)
        session.add(job)
        session.flush()
        return job.id


def add_job(session, owner_id: int, project: Path, label: str) -> int:  # type: ignore[no-untyped-def]
    """A queued job of `owner_id` on the project folder with a label for the stand-in;
    its id."""
    from marteau.service.models import Job

    job = Job(
        owner_id=owner_id,
        source_kind="path",
        source_url=str(project),
        overrides={"label": label},
        created=time.time(),
    )
    session.add(job)
    session.flush()
    return job.id


def make_project(path: Path, **config: object) -> Path:
    """A minimal load-test project (`.marteau.yml` + the test script)."""
    path.mkdir(parents=True, exist_ok=True)
    values = {"script": "loadtest.py", "test": "Simple.test_simple", **config}
    lines = [f"{key}: {value}" for key, value in values.items()]
    (path / ".marteau.yml").write_text("\n".join(lines) + "\n")
    (path / "loadtest.py").write_text(
        "from funkload.FunkLoadTestCase import FunkLoadTestCase\n\n\n"
        "class Simple(FunkLoadTestCase):\n    def test_simple(self):\n        pass\n"
    )
    return path


def service_env(locks: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARTEAU_")}
    env.update(MARTEAU_FAKE_LOCKS=str(locks), PYTHONUNBUFFERED="1", **extra)
    # a job gets an allow-listed environment: the stand-in's variables are added to it
    env["MARTEAU_JOB_ENV"] = " ".join(sorted(k for k in env if k.startswith("MARTEAU_FAKE_")))
    return env


def start_worker(
    data_dir: Path,
    locks: Path,
    *options: str,
    env: dict[str, str] | None = None,
    database_url: str | None = None,
) -> subprocess.Popen:
    """A `marteau worker` on the data folder's SQLite, or on `database_url`."""
    command = [*MARTEAU, "worker", "--data-dir", str(data_dir)]
    if database_url:
        command += ["--database-url", database_url]
    command += ["--run-command", FAKE_RUN, "--poll-interval", "0.05", "--lease-ttl", "10"]
    command += ["--kill-grace", "2", *options]
    return subprocess.Popen(command, env=service_env(locks, **(env or {})), cwd=ROOT)


def wait_for(predicate, timeout: float = 120.0, interval: float = 0.05, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_job(client, job_id: int, states=("succeeded", "failed", "cancelled"), timeout=90):  # type: ignore[no-untyped-def]
    """The job's JSON (through the API) once it is in one of `states`."""

    def done():  # type: ignore[no-untyped-def]
        job = client.get(f"/api/jobs/{job_id}").json()
        return job if job["state"] in states else None

    return wait_for(done, timeout=timeout, what=f"job {job_id} in {states}")


ADMIN, ADMIN_PASSWORD = "admin@example.org", "admin-password-1"


class Service:
    """`marteau serve` on a free port, on the data folder's SQLite or on `database_url`."""

    def __init__(
        self,
        data_dir: Path,
        locks: Path,
        workers: int = 2,
        database_url: str | None = None,
        options: tuple[str, ...] = (),
    ) -> None:
        """`options`: more `marteau serve` options (for example `--config FILE`)."""
        from tests.servers import free_port  # not at the top: `fake-run` runs without `tests`

        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.parent / f"serve-{self.port}.log"
        command = [*MARTEAU, "serve", "--data-dir", str(data_dir), "--port", str(self.port)]
        command += ["--workers", str(workers), "--run-command", FAKE_RUN, "--poll-interval", "0.05"]
        command += ["--lease-ttl", "10", "--kill-grace", "2", "--nodes-command", FAKE_NODES]
        if database_url:
            command += ["--database-url", database_url]
        command += options
        env = service_env(locks, MARTEAU_ADMIN_EMAIL=ADMIN, MARTEAU_ADMIN_PASSWORD=ADMIN_PASSWORD)
        data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        wait_for(self._up, timeout=90, what=f"marteau serve on {self.url}")

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"marteau serve exited: {self.log.read_text()}")
        try:
            return httpx.get(self.url + "/login", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def new_user(self, admin: httpx.Client, email: str, password: str) -> httpx.Client:
        """A user the admin creates, logged in."""
        r = admin.post("/api/users", json={"email": email, "password": password})
        assert r.status_code == 201, r.text
        return self.client(email, password)

    def client(self, email: str | None = None, password: str | None = None) -> httpx.Client:
        # 30 s: a login hashes in one niced thread, slow when both cores are busy
        client = httpx.Client(base_url=self.url, timeout=30)
        if email:
            r = client.post("/api/login", json={"email": email, "password": password})
            assert r.status_code == 200, r.text
            client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        return client


def tar_of(project: Path, prefix: str = "project") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(project, arcname=prefix)
    return buffer.getvalue()


def upload(client, data: bytes, name: str = "project.tar.gz", **fields):  # type: ignore[no-untyped-def]
    """POST a project archive to /api/jobs/upload, with `fields` as the form's values."""
    return client.post(
        "/api/jobs/upload",
        files={"archive": (name, data, "application/gzip")},
        data={k: str(v) for k, v in fields.items()},
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["fake-run"]:
        sys.exit(fake_run(sys.argv[2:]))
    if sys.argv[1:2] == ["fake-nodes"]:
        sys.exit(fake_nodes(sys.argv[2:]))
    sys.exit(f"usage: {sys.argv[0]} fake-run SRC [options]")
