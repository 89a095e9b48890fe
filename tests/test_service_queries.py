"""The job lists (the dashboard, `GET /api/jobs`) cost the same number of SQL statements
whatever the number of jobs they show: owners and nodes come in one query per list, not
two per job (bench/service.py measures what that is worth with 10,000 jobs)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from sqlalchemy import event  # noqa: E402

from marteau.service import accounts  # noqa: E402
from marteau.service.db import Database, upgrade  # noqa: E402
from marteau.service.models import FAILED, GIT, RUNNING, SUCCEEDED, Job, JobNode  # noqa: E402
from marteau.service.settings import Settings  # noqa: E402
from tests.support.live_app import PASSWORD, Uvicorn  # noqa: E402


class StatementCounter:
    """Counts the SQL statements the engines send (every thread: uvicorn's pool too;
    on PostgreSQL the asyncio engine of the hot reads too)."""

    def __init__(self, db: Database) -> None:
        self.count = 0
        event.listen(db.engine, "before_cursor_execute", self._seen)
        if db.async_engine is not None:
            event.listen(db.async_engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, *args: object) -> None:
        self.count += 1

    def during(self, request) -> int:  # type: ignore[no-untyped-def]
        before = self.count
        request()
        return self.count - before


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    upgrade(database, default_node=False)
    yield database
    database.dispose()


def add_jobs(db: Database, owners: list[int], count: int, state: str) -> list[int]:
    """`count` jobs of `state`, owned in turn by `owners`, each on two nodes."""
    now = time.time()
    with db.write() as session:
        jobs = [
            Job(
                owner_id=owners[i % len(owners)],
                source_kind=GIT,
                source_url=f"https://git.example.org/p{i}.git",
                state=state,
                prepared=True,
                pool="marteau",
                nodes_wanted=2,
                created=now,
                started=now,
                ended=None if state == RUNNING else now + 60,
                nodes=[JobNode(node_name=f"n{i}a"), JobNode(node_name=f"n{i}b")],
            )
            for i in range(count)
        ]
        session.add_all(jobs)
        session.flush()
        return [job.id for job in jobs]


def test_job_lists_cost_no_query_per_job(tmp_path: Path, db: Database) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=db.url)
    with db.write() as session:
        owners = [
            accounts.create_user(session, f"user{i}@example.org", PASSWORD).id for i in range(3)
        ]
    counter = StatementCounter(db)
    with Uvicorn(settings, db) as web:
        client = web.client("user0@example.org")
        client.get("/api/me")  # the login is in the auth cache: no query for it from now

        def dashboard() -> None:
            answer = client.get("/")
            assert answer.status_code == 200
            pages.append(answer.text)

        def job_list() -> None:
            answer = client.get("/api/jobs")
            assert answer.status_code == 200
            lists.append(answer.json())

        pages: list[str] = []
        lists: list[dict] = []
        add_jobs(db, owners, 1, RUNNING)
        add_jobs(db, owners, 1, SUCCEEDED)
        few = (counter.during(dashboard), counter.during(job_list))
        add_jobs(db, owners, 2, RUNNING)
        newest = add_jobs(db, owners, 30, FAILED)[-1]
        many = (counter.during(dashboard), counter.during(job_list))
        running = client.get("/api/jobs", params={"state": RUNNING, "limit": 2}).json()
        second_page = client.get("/api/jobs", params={"limit": 5, "offset": 5}).json()
        with db.write() as session:
            orphan = Job(source_kind=GIT, source_url="https://git.example.org/o.git", created=0)
            session.add(orphan)
            session.flush()
            orphan_id = orphan.id
        orphan_json = client.get("/api/jobs", params={"limit": 1}).json()["jobs"][0]

    assert few == many, "statements for (dashboard, /api/jobs): 2 jobs vs 34"
    assert few[0] >= 5 and few[1] >= 2  # three lists, nodes, workers; the page and its count
    assert lists[-1]["total"] == 34
    shown = {job["id"]: job for job in lists[-1]["jobs"]}
    assert shown[newest]["owner"] == f"user{29 % 3}@example.org"
    assert shown[newest]["nodes"] == ["n29a", "n29b"]
    assert {job["owner"] for job in shown.values()} == {f"user{i}@example.org" for i in range(3)}
    assert f"#{newest}" in pages[-1] and "n29a, n29b" in pages[-1]
    assert pages[-1].count('class="state state-running"') == 3
    assert running["total"] == 3 and len(running["jobs"]) == 2
    assert {job["state"] for job in running["jobs"]} == {RUNNING}
    assert [job["id"] for job in second_page["jobs"]] == list(range(newest - 5, newest - 10, -1))
    assert second_page["total"] == 34
    assert (orphan_json["id"], orphan_json["owner"], orphan_json["nodes"]) == (orphan_id, None, [])


def test_kept_rows_follow_every_change_of_a_finished_job(tmp_path: Path, db: Database) -> None:
    """A finished job's list row is built once (job_lists.ListedRows), yet a change of
    any of its columns shows at once in both lists: its report purged, its overrides
    changed, its figures compared."""
    settings = Settings(data_dir=tmp_path / "data", database_url=db.url)
    with db.write() as session:
        owner = accounts.create_user(session, "user0@example.org", PASSWORD).id
    [job_id] = add_jobs(db, [owner], 1, SUCCEEDED)
    with db.write() as session:
        job = session.get(Job, job_id)
        job.report_path, job.overrides, job.p95 = "report", {"cycles": "1:2"}, 0.25

    def seen(client: httpx.Client) -> tuple[dict, str]:
        page = client.get("/").text
        return client.get("/api/jobs").json()["jobs"][0], page

    with Uvicorn(settings, db) as web:
        client = web.client("user0@example.org")
        first, again = seen(client), seen(client)
        with db.write() as session:
            job = session.get(Job, job_id)
            job.report_path, job.overrides, job.p95 = None, {"cycles": "3"}, 0.5
            job.compared_to, job.flagged = job_id - 1, "p95:+100%:worse"
        changed = seen(client)

    assert first == again
    assert first[0]["report_url"].endswith(f"/jobs/{job_id}/report/")
    assert first[0]["overrides"] == {"cycles": "1:2"} and "250 ms" in first[1]
    row, page = changed
    assert row["report_url"] is None and row["overrides"] == {"cycles": "3"}
    assert row["key_figures"]["p95"] == 0.5 and row["flagged"]["p95"]["class"] == "worse"
    assert "500 ms" in page and "250 ms" not in page and "+100%" in page
