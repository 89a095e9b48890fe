"""The service's storage and scheduler: migrations on a real SQLite file, claims under
contention by real worker processes running a stand-in for `marteau run`."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("alembic")

from sqlalchemy import select, update  # noqa: E402

from marteau.service.db import Database, current_revision, head_revision, upgrade  # noqa: E402
from marteau.service.models import (  # noqa: E402
    CANCELLED,
    FAILED,
    FINISHED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Job,
    JobNode,
    Node,
    Worker,
)
from marteau.service.scheduler import (  # noqa: E402
    ISOLATED,
    Claim,
    Scheduler,
    reap,
    request_cancel,
)
from marteau.service.settings import Settings  # noqa: E402
from marteau.service.worker import JobWorker  # noqa: E402
from tests.postgres import wait_until_answered_or_blocked  # noqa: E402
from tests.service_helpers import FAKE_NODES, make_project, start_worker, wait_for  # noqa: E402


def _schema(url: str) -> Iterator[Database]:
    database = Database(url)
    upgrade(database, default_node=False)
    yield database
    database.dispose()


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """The schema on an empty database: SQLite, then PostgreSQL (tests/conftest_postgres.py)."""
    yield from _schema(db_url)


@pytest.fixture
def pg_db(postgres_url: str) -> Iterator[Database]:
    """PostgreSQL only: transactions that meet on a row lock (SQLite has one writer)."""
    yield from _schema(postgres_url)


def add_nodes(db: Database, pool: str, *names: str) -> None:
    with db.write() as session:
        for name in names:
            session.add(Node(name=name, pool=pool, vars={}, created=time.time()))


def add_job(db: Database, project: Path, prepared: bool = False, **overrides: object) -> int:
    with db.write() as session:
        job = Job(
            source_kind="path",
            source_url=str(project),
            overrides=overrides,
            created=time.time(),
        )
        if prepared:
            job.prepared = True
            job.pool = str(overrides.get("pool", "marteau"))
            job.nodes_wanted = int(overrides.get("nodes", 1))  # type: ignore[arg-type]
        session.add(job)
        session.flush()
        return job.id


def jobs(db: Database) -> list[Job]:
    with db.read() as session:
        return list(session.scalars(select(Job).order_by(Job.id)))


# -- storage -------------------------------------------------------------------


def test_upgrade_creates_the_schema_in_wal_mode_once(tmp_path: Path) -> None:
    path = tmp_path / "data" / "marteau.db"
    db = Database(f"sqlite:///{path}")
    before, after = upgrade(db)
    assert before is None and after == head_revision() == current_revision(db)
    assert upgrade(db) == (after, after)  # a second start changes nothing
    with db.read() as session:
        nodes = list(session.scalars(select(Node)))
    assert [(n.name, n.pool, n.vars) for n in nodes] == [
        (
            "localhost",
            "marteau",
            {"ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3"},
        )
    ]
    db.dispose()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "users",
        "api_tokens",
        "login_sessions",
        "jobs",
        "job_nodes",
        "nodes",
        "workers",
    } <= tables
    assert raw.execute("SELECT version_num FROM alembic_version").fetchone()[0] == after
    raw.close()


# -- claims, in process --------------------------------------------------------


def test_claims_are_fifo_per_pool_and_take_job_and_nodes_together(db: Database, tmp_path) -> None:
    add_nodes(db, "a", "a1", "a2")
    add_nodes(db, "b", "b1")
    project = tmp_path / "p"
    big = add_job(db, project, prepared=True, pool="a", nodes=3)  # more than pool a has
    small_a = add_job(db, project, prepared=True, pool="a", nodes=1)  # waits behind `big`
    first_b = add_job(db, project, prepared=True, pool="b", nodes=1)
    second_b = add_job(db, project, prepared=True, pool="b", nodes=1)
    one = Scheduler(db, "w1", lease_ttl=30)
    two = Scheduler(db, "w2", lease_ttl=30)
    claim = one.claim_run()
    assert claim and claim.job_id == first_b and [n.name for n in claim.nodes] == ["b1"]
    assert two.claim_run() is None  # b1 is leased, pool a is blocked by `big`
    state = {j.id: j.state for j in jobs(db)}
    assert state == {big: QUEUED, small_a: QUEUED, first_b: RUNNING, second_b: QUEUED}
    with db.read() as session:
        b1 = session.scalar(select(Node).where(Node.name == "b1"))
        assert b1.lease_job_id == first_b and b1.lease_expires > time.time() + 20
        assert session.scalars(
            select(JobNode.node_name).where(JobNode.job_id == first_b)
        ).all() == ["b1"]
    assert one.finish(first_b, SUCCEEDED, "done", exit_code=0)
    claim = two.claim_run()
    assert claim and claim.job_id == second_b
    # cancel the big job: the small one of pool a may go now
    assert request_cancel(db, big) == CANCELLED
    claim = one.claim_run()
    assert claim and claim.job_id == small_a and [n.name for n in claim.nodes] == ["a1"]


def test_a_project_naming_its_nodes_runs_on_exactly_those(db: Database, tmp_path: Path) -> None:
    add_nodes(db, "a", "a1", "a2", "a3")
    add_nodes(db, "b", "b1")
    named = add_job(db, make_project(tmp_path / "named", pool="a", nodes="[a3, a2]"))
    unknown = add_job(db, make_project(tmp_path / "unknown", pool="a", nodes="[a1, a9]"))
    elsewhere = add_job(db, make_project(tmp_path / "elsewhere", nodes="[b1]"))
    # a count given with the job wins over the names
    counted = add_job(db, make_project(tmp_path / "counted", pool="a", nodes="[a1, a2]"), nodes=1)
    worker = JobWorker(Settings(data_dir=tmp_path / "data"), db)
    worker.register()
    for _ in range(4):  # one preparation per step, in queue order
        assert worker.step()
    found = {job.id: job for job in jobs(db)}
    assert (found[named].state, found[named].node_names, found[named].nodes_wanted) == (
        QUEUED,
        ["a3", "a2"],
        2,
    )
    assert (found[counted].state, found[counted].node_names, found[counted].nodes_wanted) == (
        QUEUED,
        None,
        1,
    )
    assert found[unknown].state == FAILED
    assert found[unknown].exit_reason == (
        "bad input: .marteau.yml: nodes: not nodes of this service: a9 (see the Nodes page)"
    )
    assert found[elsewhere].state == FAILED
    assert found[elsewhere].exit_reason == (
        "bad input: .marteau.yml: nodes: not in pool 'marteau': b1 (pool b) (set `pool` to theirs)"
    )

    with db.write() as session:  # one of its nodes is not available
        session.scalar(select(Node).where(Node.name == "a2")).enabled = False
    scheduler = Scheduler(db, "w", lease_ttl=30)
    assert scheduler.claim_run() is None  # a1 is free, but not named; the pool waits in order
    with db.write() as session:
        session.scalar(select(Node).where(Node.name == "a2")).enabled = True
    claim = scheduler.claim_run()
    assert claim and claim.job_id == named and [n.name for n in claim.nodes] == ["a2", "a3"]
    claim = scheduler.claim_run()
    assert claim and claim.job_id == counted and [n.name for n in claim.nodes] == ["a1"]


def test_an_idle_worker_checks_due_nodes_and_unreachable_ones_are_not_given(
    db: Database, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", nodes_command=shlex.split(FAKE_NODES), node_check_minutes=60
    )
    long_ago = time.time() - 7200
    with db.write() as session:
        for name, enabled in (("down1", True), ("n1", True), ("off1", False), ("busy1", True)):
            session.add(Node(name=name, pool="a", vars={}, enabled=enabled, created=long_ago))
        session.add(Node(name="new1", pool="a", vars={}, created=time.time()))  # not due yet
    with db.write() as session:  # busy1 runs a job: not checked
        session.execute(
            update(Node).where(Node.name == "busy1").values(lease_job_id=99, lease_expires=2e9)
        )
    worker = JobWorker(settings, db)
    worker.register()
    assert worker.step() and worker.step()  # two nodes were due
    assert not worker.step()  # nothing left to do for an hour
    with db.read() as session:
        found = {
            n.name: (n.status, n.last_check is not None) for n in session.scalars(select(Node))
        }
    assert found == {
        "down1": ("unreachable", True),
        "n1": ("reachable", True),
        "off1": ("unknown", False),
        "busy1": ("unknown", False),
        "new1": ("unknown", False),
    }
    assert json.loads((settings.data_dir / "nodes" / "n1.json").read_text())["state"] == "free"

    job = add_job(db, tmp_path, prepared=True, pool="a", nodes=1)
    claim = Scheduler(db, "w", lease_ttl=30).claim_run()  # down1 comes first by name
    assert claim and claim.job_id == job and [n.name for n in claim.nodes] == ["n1"]


def test_disabled_nodes_are_not_given_and_expired_leases_are_reaped(db: Database, tmp_path) -> None:
    add_nodes(db, "a", "a1", "a2")
    with db.write() as session:
        session.scalar(select(Node).where(Node.name == "a2")).enabled = False
    job1 = add_job(db, tmp_path, prepared=True, pool="a", nodes=1)
    job2 = add_job(db, tmp_path, prepared=True, pool="a", nodes=1)
    dead = Scheduler(db, "dead", lease_ttl=3)
    assert dead.claim_run().job_id == job1
    alive = Scheduler(db, "alive", lease_ttl=30)
    assert alive.claim_run() is None  # a1 leased, a2 disabled
    time.sleep(3.1)  # the dead worker's lease expires
    assert reap(db) == [job1]
    job = jobs(db)[0]
    assert job.state == FAILED and "worker lost" in job.exit_reason
    claim = alive.claim_run()
    assert claim and claim.job_id == job2 and claim.nodes[0].name == "a1"
    assert not dead.finish(job1, SUCCEEDED, "late")  # the dead worker's word no longer counts
    assert jobs(db)[0].state == FAILED


def test_a_public_scheduler_gives_only_nodes_found_isolating_jobs(db: Database, tmp_path) -> None:
    """Public mode: a node whose last check did not find each job run as its own
    Unix user is never given, even when it is free and first by name."""
    add_nodes(db, "a", "a1", "a2", "a3")
    with db.write() as session:
        session.scalar(select(Node).where(Node.name == "a2")).status = ISOLATED
        session.scalar(select(Node).where(Node.name == "a3")).status = "reachable"
    first = add_job(db, tmp_path, prepared=True, pool="a", nodes=1)
    second = add_job(db, tmp_path, prepared=True, pool="a", nodes=1)
    public = Scheduler(db, "public", lease_ttl=30, isolated_only=True)
    claim = public.claim_run()
    assert claim and claim.job_id == first and [n.name for n in claim.nodes] == ["a2"]
    assert public.claim_run() is None  # a1 and a3 are free, not isolated
    team = Scheduler(db, "team", lease_ttl=30)
    claim = team.claim_run()
    assert claim and claim.job_id == second and [n.name for n in claim.nodes] == ["a1"]


def test_a_job_being_written_is_not_passed_by_a_later_job_of_its_pool(
    pg_db: Database, tmp_path: Path
) -> None:
    """A claim that meets the oldest job of a pool locked by another transaction (a
    cancel, another claim) waits for it: a later job of the pool must not jump ahead."""
    add_nodes(pg_db, "a", "a1")
    first = add_job(pg_db, tmp_path, prepared=True, pool="a", nodes=1)
    add_job(pg_db, tmp_path, prepared=True, pool="a", nodes=1)
    claims: list[Claim | None] = []
    with pg_db.engine.connect() as other:
        other.execute(select(Job.id).where(Job.id == first).with_for_update())
        claimer = threading.Thread(
            target=lambda: claims.append(Scheduler(pg_db, "w", 30).claim_run())
        )
        claimer.start()
        wait_until_answered_or_blocked(
            pg_db.engine, lambda: claims, "the claim to end or to wait for the locked job"
        )
        other.rollback()
    claimer.join(timeout=60)
    assert len(claims) == 1 and claims[0] is not None and claims[0].job_id == first


def test_a_cancel_during_a_claim_flags_the_job_it_started(pg_db: Database, tmp_path: Path) -> None:
    """A cancel that meets a job a claim is taking waits for the claim, then asks the
    worker to stop it, instead of writing `cancelled` over the claim's `running`."""
    job_id = add_job(pg_db, tmp_path, prepared=True, pool="a", nodes=1)
    answers: list[str | None] = []
    with pg_db.engine.connect() as claim:
        claim.execute(update(Job).where(Job.id == job_id).values(state=RUNNING, worker_id="w"))
        canceller = threading.Thread(target=lambda: answers.append(request_cancel(pg_db, job_id)))
        canceller.start()
        wait_until_answered_or_blocked(
            pg_db.engine, lambda: answers, "the cancel to end or to wait for the claim"
        )
        claim.commit()
    canceller.join(timeout=60)
    job = jobs(pg_db)[0]
    assert answers == [RUNNING] and job.state == RUNNING and job.cancel_requested


def test_the_reaper_reports_only_the_jobs_it_failed(pg_db: Database, tmp_path: Path) -> None:
    """A lease renewed while the reaper looks at it: the job keeps running, and the
    reaper does not report it lost (its worker would log a failure that did not happen)."""
    job_id = add_job(pg_db, tmp_path, prepared=True, pool="a", nodes=1)
    with pg_db.write() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(state=RUNNING, worker_id="w", lease_expires=time.time() - 1)
        )
    reaped: list[list[int]] = []
    with pg_db.engine.connect() as renewal:
        renewal.execute(update(Job).where(Job.id == job_id).values(lease_expires=time.time() + 60))
        reaper = threading.Thread(target=lambda: reaped.append(reap(pg_db)))
        reaper.start()
        wait_until_answered_or_blocked(
            pg_db.engine, lambda: reaped, "the reaper to end or to wait for the renewal"
        )
        renewal.commit()
    reaper.join(timeout=60)
    assert reaped == [[]] and jobs(pg_db)[0].state == RUNNING


def test_a_worker_on_a_long_host_name_registers(db: Database, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "h" * 64)  # Linux's longest
    worker = JobWorker(Settings(data_dir=tmp_path), db)
    worker.register()
    with db.read() as session:
        assert session.get(Worker, worker.id).host == "h" * 64


# -- real workers --------------------------------------------------------------


def _intervals_disjoint(db: Database) -> dict[str, int]:
    """Per node, the jobs that ran on it, checked for overlapping [started, ended]."""
    with db.read() as session:
        rows = session.execute(
            select(JobNode.node_name, Job.started, Job.ended, Job.id).join(Job)
        ).all()
    per_node: dict[str, list[tuple[float, float, int]]] = {}
    for node, started, ended, job_id in rows:
        per_node.setdefault(node, []).append((started, ended, job_id))
    for node, spans in per_node.items():
        spans.sort()
        for (_s1, e1, j1), (s2, _e2, j2) in zip(spans, spans[1:], strict=False):
            assert e1 <= s2, f"node {node} double-booked: job {j1} until {e1}, job {j2} from {s2}"
    return {node: len(spans) for node, spans in per_node.items()}


def test_contention_many_jobs_few_nodes_several_workers(db: Database, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    add_nodes(db, "a", "a1", "a2", "a3", "a4")
    add_nodes(db, "b", "b1", "b2")
    project = make_project(tmp_path / "project")
    wanted = {}
    for i in range(52):
        pool = "a" if i % 3 else "b"
        nodes = 1 + i % (3 if pool == "a" else 2)
        wanted[add_job(db, project, pool=pool, nodes=nodes, label="sleep=0.1")] = (pool, nodes)
    locks = tmp_path / "locks"
    t0 = time.monotonic()
    workers = [start_worker(data_dir, locks, database_url=db.url) for _ in range(4)]
    try:
        wait_for(
            lambda: all(j.state in FINISHED for j in jobs(db)),
            timeout=240,
            what="52 jobs to end",
        )
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=60)
    elapsed = time.monotonic() - t0
    done = jobs(db)
    failed = {j.id: j.exit_reason for j in done if j.state != SUCCEEDED}
    assert not failed, failed
    counts = _intervals_disjoint(db)
    with db.read() as session:
        assert session.scalars(select(Node).where(Node.lease_job_id.is_not(None))).all() == []
        used = session.execute(select(JobNode.job_id, JobNode.node_name)).all()
    by_job: dict[int, list[str]] = {}
    for job_id, node in used:
        by_job.setdefault(job_id, []).append(node)
    for job_id, (pool, nodes) in wanted.items():
        assert len(by_job[job_id]) == nodes and all(n.startswith(pool) for n in by_job[job_id])
    assert sum(counts.values()) == sum(n for _, n in wanted.values())
    assert all(
        (Path(data_dir) / "jobs" / str(j.id) / "report" / "index.html").is_file() for j in done
    )
    assert not any(locks.iterdir())
    events = sorted([(j.started, 1) for j in done] + [(j.ended, -1) for j in done])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    parallel = sum(j.ended - j.started for j in done) / elapsed
    print(
        f"\n52 jobs, 4 workers, 6 nodes: {elapsed:.1f}s, mean parallelism {parallel:.2f}, peak {peak}"
    )
    assert peak >= 2  # several jobs ran at once, on disjoint nodes


def test_cancel_kills_the_process_group_and_frees_the_nodes(db: Database, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    add_nodes(db, "a", "a1")
    project = make_project(tmp_path / "project")
    long = add_job(db, project, pool="a", label="sleep=60")
    after = add_job(db, project, pool="a", label="sleep=0.05")
    worker = start_worker(data_dir, tmp_path / "locks", database_url=db.url)
    try:
        wait_for(lambda: jobs(db)[0].state == RUNNING, what="the long job to run")
        pid_file = data_dir / "jobs" / str(long) / "fake.pid"
        pid = int(
            wait_for(lambda: pid_file.is_file() and pid_file.read_text(), what="the fake run")
        )
        t0 = time.monotonic()
        assert request_cancel(db, long) == RUNNING
        wait_for(lambda: jobs(db)[0].state == CANCELLED, timeout=120, what="the cancel")
        assert time.monotonic() - t0 < 30  # the job sleeps 60 s
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        wait_for(lambda: jobs(db)[1].state == SUCCEEDED, what="the next job on the freed node")
        console = (data_dir / "jobs" / str(long) / "console.log").read_text()
        assert "SIGTERM to its process group" in console and "job cancelled" in console
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    assert jobs(db)[1].id == after


def test_killed_worker_its_job_fails_its_nodes_come_back(db: Database, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    add_nodes(db, "a", "a1")
    project = make_project(tmp_path / "project")
    locks = tmp_path / "locks"
    first = add_job(db, project, pool="a", label="sleep=60")
    second = add_job(db, project, pool="a", label="sleep=0.05")
    victim = start_worker(data_dir, locks, "--lease-ttl", "1", database_url=db.url)
    try:
        wait_for(lambda: jobs(db)[0].state == RUNNING, what="the first job to run")
        pid_file = data_dir / "jobs" / str(first) / "fake.pid"
        pid = int(
            wait_for(lambda: pid_file.is_file() and pid_file.read_text(), what="the fake run")
        )
        victim.kill()
        victim.wait()
        # the job's process got SIGKILL when its worker died (parent-death signal): no
        # graceful stop, whose report would belong to a failed job; the node locks it
        # held stay until they expire, as the stand-in's lock files stay: expire them
        wait_for(lambda: not _alive(pid), timeout=20, what="the orphaned job to stop")
        for lock in locks.iterdir():
            lock.unlink()
        rescuer = start_worker(data_dir, locks, database_url=db.url)
        try:
            wait_for(lambda: jobs(db)[0].state == FAILED, timeout=120, what="the reaper")
            assert "worker lost" in jobs(db)[0].exit_reason
            wait_for(lambda: jobs(db)[1].state == SUCCEEDED, timeout=120, what="the second job")
        finally:
            rescuer.terminate()
            rescuer.wait(timeout=60)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert jobs(db)[1].id == second


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie not yet reaped by init counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_bad_project_fails_fast_and_the_next_job_runs(db: Database, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    add_nodes(db, "marteau", "n1")
    good = make_project(tmp_path / "good")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / ".marteau.yml").write_text("script: [unclosed\n")
    missing = make_project(tmp_path / "missing", script="nothere.py")
    ids = [
        add_job(db, bad),
        add_job(db, missing),
        add_job(db, tmp_path / "nope"),
        add_job(db, good),
    ]
    worker = start_worker(data_dir, tmp_path / "locks", "--once", database_url=db.url)
    assert worker.wait(timeout=120) == 0
    result = jobs(db)
    assert [j.state for j in result] == [FAILED, FAILED, FAILED, SUCCEEDED]
    assert "invalid YAML" in result[0].exit_reason
    assert "nothere.py" in result[1].exit_reason
    assert "no .marteau.yml" in result[2].exit_reason
    for job_id in ids[:3]:
        assert "Error:" in (data_dir / "jobs" / str(job_id) / "console.log").read_text()


def test_a_command_that_cannot_start_fails_the_job_not_the_worker(
    db: Database, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    add_nodes(db, "marteau", "n1")
    project = make_project(tmp_path / "project")
    add_job(db, project)
    add_job(db, project)
    worker = start_worker(
        data_dir,
        tmp_path / "locks",
        "--once",
        "--run-command",
        "/nonexistent/marteau run",
        database_url=db.url,
    )
    assert worker.wait(timeout=120) == 0
    result = jobs(db)
    assert [j.state for j in result] == [FAILED, FAILED]
    assert all("cannot start /nonexistent/marteau" in j.exit_reason for j in result)
    with db.read() as session:
        assert session.scalars(select(Node).where(Node.lease_job_id.is_not(None))).all() == []
