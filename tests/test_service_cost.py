"""Job cost: the plan read from a project, the estimate against a hand computation, the
price of a pool, the measured provisioning overhead, the actual cost from node-hours,
the month's spend; and the estimate and actual cost in a real server's API and pages."""

from __future__ import annotations

import json
import time
from contextlib import closing
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")

from marteau.orchestration.project import load_config  # noqa: E402
from marteau.service import cost  # noqa: E402
from marteau.service.db import Database, upgrade  # noqa: E402
from marteau.service.models import QUEUED, SUCCEEDED, Job, JobNode, Node, User  # noqa: E402
from marteau.service.settings import Settings  # noqa: E402
from tests.service_helpers import (  # noqa: E402
    ADMIN,
    ADMIN_PASSWORD,
    Service,
    make_project,
    wait_for,
)

BENCH = "[bench]\ncycles = 10:20\nduration = 30\nstartup_delay = 0.5\ncycle_time = 2\n"


def conf_project(path: Path, bench: str = BENCH, **config: object) -> Path:
    """A project whose `Simple.conf` holds the bench settings."""
    make_project(path, **config)
    (path / "Simple.conf").write_text("[main]\nurl = http://127.0.0.1:9/\n\n" + bench)
    return path


@pytest.fixture
def db(db_url: str):
    database = Database(db_url)
    upgrade(database, default_node=False)
    yield database
    database.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, pool_prices={"lab": 0.60}, default_price_per_hour=0.10)


def test_estimate_against_a_hand_computation(db: Database, settings: Settings, tmp_path) -> None:
    project = load_config(conf_project(tmp_path / "p") / ".marteau.yml")
    plan = cost.read_plan(project, {}, "lab", 3)
    assert plan is not None
    # By hand, per cycle: staging (users × startup delay) + duration + cycle time
    #   cycle 0: 10 × 0.5 + 30 + 2 = 37 s
    #   cycle 1: 20 × 0.5 + 30 + 2 = 42 s        bench: 37 + 42 = 79 s
    # no job of pool "lab" finished yet: the default overhead, 60 s
    #   3 nodes × (79 + 60) s = 417 node-seconds = 0.115833… node-hours
    #   × 0.60 per node-hour = 0.0695
    assert plan.bench_seconds == 79.0
    assert plan.users_per_node == 20
    with db.read() as session:
        estimate = cost.estimate(session, settings, plan)
    assert estimate.overhead_seconds == cost.DEFAULT_OVERHEAD == 60.0
    assert estimate.price_per_hour == 0.60
    assert estimate.node_hours == pytest.approx(417 / 3600)
    assert estimate.cost == pytest.approx(0.0695)


def test_split_cycles_plan_the_busiest_node(tmp_path) -> None:
    project = load_config(conf_project(tmp_path / "p") / ".marteau.yml")
    plan = cost.read_plan(project, {"split": True}, "lab", 3)
    assert plan is not None
    # 10 users over 3 nodes: 4, 3, 3; 20 users: 7, 7, 6. The first node is the busiest:
    #   4 × 0.5 + 30 + 2 = 34 s, then 7 × 0.5 + 30 + 2 = 35.5 s: 69.5 s
    assert plan.node_cycles == (4, 7)
    assert plan.users_per_node == 7
    assert plan.bench_seconds == 69.5


def test_overrides_then_marteau_yml_then_conf(tmp_path) -> None:
    project = load_config(conf_project(tmp_path / "p", cycles="5", duration=10) / ".marteau.yml")
    from_yml = cost.read_plan(project, {}, "lab", 1)
    assert from_yml is not None and from_yml.cycles == (5,) and from_yml.duration == 10
    # 5 × 0.5 + 10 + 2 = 14.5 s
    assert from_yml.bench_seconds == 14.5
    overridden = cost.read_plan(project, {"cycles": "2:4", "duration": 20}, "lab", 1)
    assert overridden is not None
    # (2 × 0.5 + 20 + 2) + (4 × 0.5 + 20 + 2) = 23 + 24 = 47 s
    assert overridden.bench_seconds == 47.0
    bare = load_config(make_project(tmp_path / "bare") / ".marteau.yml")
    assert cost.read_plan(bare, {}, "lab", 1) is None  # no cycles anywhere: no estimate


def test_price_node_var_then_pool_setting_then_default(db: Database, settings: Settings) -> None:
    now = time.time()
    with db.write() as session:
        session.add_all(
            [
                Node(name="a1", pool="priced", vars={cost.PRICE_VAR: "1.0"}, created=now),
                Node(name="a2", pool="priced", vars={cost.PRICE_VAR: 2}, created=now),
                Node(name="b1", pool="lab", vars={}, created=now),
            ]
        )
    with db.read() as session:
        assert cost.price_per_hour(session, settings, "priced") == 1.5  # the nodes' mean
        assert cost.price_per_hour(session, settings, "priced", ["a2"]) == 2.0
        assert cost.price_per_hour(session, settings, "lab") == 0.60  # settings.pool_prices
        assert cost.price_per_hour(session, settings, "other") == 0.10  # the default


def _finished_job(db: Database, settings: Settings, pool: str, seconds: float, plan) -> int:  # type: ignore[no-untyped-def]
    now = time.time()
    with db.write() as session:
        job = Job(source_kind="path", source_url="/x", created=now - seconds, pool=pool)
        job.state, job.started, job.ended = SUCCEEDED, now - seconds, now
        session.add(job)
        session.flush()
        job_id = job.id
    folder = settings.job_dir(job_id)
    folder.mkdir(parents=True)
    (folder / cost.PLAN_FILE).write_text(json.dumps(plan.as_json()))
    return job_id


def test_overhead_is_measured_on_the_pool_s_finished_jobs(
    db: Database, settings: Settings, tmp_path
) -> None:
    project = load_config(conf_project(tmp_path / "p") / ".marteau.yml")
    plan = cost.read_plan(project, {}, "lab", 1)
    assert plan is not None
    _finished_job(db, settings, "lab", 100.0, plan)  # 79 s planned: 21 s overhead
    _finished_job(db, settings, "lab", 120.0, plan)  # 41 s overhead
    _finished_job(db, settings, "other", 500.0, plan)  # another pool: not counted
    with db.read() as session:
        overhead = cost.provisioning_overhead(session, settings, "lab")
        estimate = cost.estimate(session, settings, plan)
    assert overhead == pytest.approx((21 + 41) / 2)
    # 1 node × (79 + 31) s = 110 s at 0.60 per hour
    assert estimate.cost == pytest.approx(110 / 3600 * 0.60)


def test_actual_cost_from_node_hours_and_the_month_s_spend(
    db: Database, settings: Settings
) -> None:
    now = time.time()
    with db.write() as session:
        user = User(email="u@example.org", password_hash="x", created=now)
        session.add(user)
        session.add(Node(name="b1", pool="lab", vars={}, created=now))
        session.add(Node(name="b2", pool="lab", vars={}, created=now))
        session.flush()
        done = Job(source_kind="path", source_url="/x", created=now, pool="lab", owner_id=user.id)
        done.state, done.started, done.ended = SUCCEEDED, now - 1800, now
        waiting = Job(source_kind="path", source_url="/x", created=now, owner_id=user.id)
        waiting.state, waiting.estimated_cost, waiting.pool = QUEUED, 0.25, "lab"
        session.add_all([done, waiting])
        session.flush()
        session.add_all([JobNode(job_id=done.id, node_name=n) for n in ("b1", "b2")])
        job_id, user_id = done.id, user.id
    with db.write() as session:
        cost.record_actual(session, settings, job_id)
    with db.read() as session:
        job = session.get(Job, job_id)
        # 2 nodes × 1800 s = 1 node-hour, × 0.60
        assert job.node_hours == pytest.approx(1.0)
        assert job.actual_cost == pytest.approx(0.60)
        assert job.price_per_hour == 0.60
        assert cost.month_spend(session, user_id) == pytest.approx((0.60, 0.25))
        report = cost.spend_report(session)
    assert report["users"] == [
        {"name": "u@example.org", "spent": 0.60, "node_hours": 1.0, "jobs": 1, "pending": 0.25}
    ]
    assert [(row["name"], row["spent"]) for row in report["pools"]] == [("lab", 0.60)]
    assert report["total"] == pytest.approx(0.60)


def test_month_bounds_are_the_utc_calendar_month() -> None:
    start, end = cost.month_bounds(1_703_980_800.0)  # 2023-12-31 00:00 UTC
    assert time.gmtime(start)[:3] == (2023, 12, 1) and time.gmtime(end)[:3] == (2024, 1, 1)


# -- against a real server ---------------------------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, module_db_url: str):
    pytest.importorskip("httpx")
    base = tmp_path_factory.mktemp("cost-service")
    config = base / "marteau.toml"
    config.write_text("[marteau]\npool_prices = { marteau = 36.0 }\n")
    options = ("--config", str(config))
    svc = Service(base / "data", base / "locks", database_url=module_db_url, options=options)
    yield svc
    svc.stop()


def test_estimate_in_preview_job_json_and_pages_actual_cost_after(
    service: Service, tmp_path
) -> None:
    project = conf_project(tmp_path / "p", bench=BENCH.replace("10:20", "1:2"))
    with closing(service.client(ADMIN, ADMIN_PASSWORD)) as admin:
        preview = admin.post("/api/jobs/preview", json={"path": str(project)})
        assert preview.status_code == 200, preview.text
        # 1 node, (1 × 0.5 + 30 + 2) + (2 × 0.5 + 30 + 2) = 32.5 + 33 = 65.5 s of bench,
        # + 60 s (no job of the pool measured yet) = 125.5 s at 36 per hour: 1.255
        estimate = preview.json()["estimate"]
        assert estimate["bench_seconds"] == 65.5 and estimate["overhead_seconds"] == 60.0
        assert estimate["cost"] == pytest.approx(1.255)
        page = admin.post("/jobs/preview", data={"path": str(project), "csrf_token": _csrf(admin)})
        assert "Estimated cost: <strong>1.2550</strong>" in page.text
        created = admin.post("/api/jobs", json={"path": str(project), "label": "sleep=0.3"})
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        job = _wait(admin, job_id)
        assert job["state"] == "succeeded", job
        assert job["cost"]["estimated"] == pytest.approx(1.255)
        run_seconds = job["ended"] - job["started"]
        assert job["cost"]["node_hours"] == pytest.approx(run_seconds / 3600)
        assert job["cost"]["actual"] == pytest.approx(run_seconds / 3600 * 36.0)
        assert job["disk_bytes"] > 0
        assert "node-hours × 36.0" in admin.get(f"/jobs/{job_id}").text
        costs = admin.get("/api/costs").json()
        assert costs["spent"] == round(job["cost"]["actual"], 4)  # the API rounds to 4 places
        assert [row["name"] for row in costs["pools"]] == ["marteau"]
        assert ADMIN in admin.get("/admin/usage").text


def _csrf(client) -> str:  # type: ignore[no-untyped-def]
    return client.headers["X-CSRF-Token"]


def _wait(client, job_id: int) -> dict:  # type: ignore[no-untyped-def]
    def done():  # type: ignore[no-untyped-def]
        job = client.get(f"/api/jobs/{job_id}").json()
        return job if job["state"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(done, timeout=90, what=f"job {job_id} to end")


@pytest.fixture(scope="module")
def free_service(tmp_path_factory: pytest.TempPathFactory):
    """A service with no price set anywhere: nodes cost nothing.

    On its own SQLite file: a database shared with the priced `service` would let
    that one's workers run this one's jobs, at its price.
    """
    pytest.importorskip("httpx")
    base = tmp_path_factory.mktemp("free-service")
    svc = Service(base / "data", base / "locks")
    yield svc
    svc.stop()


def test_no_cost_line_without_prices(free_service: Service, tmp_path) -> None:
    """No "Estimated cost: 0.0000" nor "Cost 0.0000" when no price is set (the API keeps 0)."""
    project = conf_project(tmp_path / "p", bench=BENCH.replace("10:20", "1"))
    with closing(free_service.client(ADMIN, ADMIN_PASSWORD)) as admin:
        page = admin.post("/jobs/preview", data={"path": str(project), "csrf_token": _csrf(admin)})
        assert page.status_code == 200, page.text
        assert 'id="target-status"' in page.text or "<dl" in page.text  # the preview is shown
        assert "Estimated cost" not in page.text and 'id="estimate"' not in page.text
        created = admin.post("/api/jobs", json={"path": str(project), "label": "sleep=0.1"})
        assert created.status_code == 201, created.text
        job = _wait(admin, created.json()["id"])
        assert job["state"] == "succeeded", job
        assert job["cost"]["estimated"] == 0.0 and job["cost"]["actual"] == 0.0
        html = admin.get(f"/jobs/{job['id']}").text
        assert "<dt>Duration</dt>" in html
        assert "<dt>Cost</dt>" not in html and 'id="job-cost"' not in html
