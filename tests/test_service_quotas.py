"""Quotas against a real server (uvicorn on 127.0.0.1, worker processes running a
stand-in for `marteau run`): every quota at submission, the quotas only
`.marteau.yml` tells failing the job fast, the duration quota stopping a running job,
the disk quota's refusal, report deletion and pruning, the admin's overrides."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from tests.service_helpers import (  # noqa: E402
    Service,
    make_project,
    tar_of,
    wait_for,
)

PRICE = 36.0  # per node-hour: 0.01 per node-second, so that short fake jobs cost something
ENDED = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, module_db_url: str):
    base = tmp_path_factory.mktemp("quota-service")
    config = base / "marteau.toml"
    config.write_text(f"[marteau]\nenforce_quotas = true\ndefault_price_per_hour = {PRICE}\n")
    options = ("--config", str(config))
    svc = Service(base / "data", base / "locks", database_url=module_db_url, options=options)
    yield svc
    svc.stop()


class Users:
    """Makes one user per test, so that each test's usage starts from nothing."""

    def __init__(self, service: Service, admin) -> None:  # type: ignore[no-untyped-def]
        self.service, self.admin, self.count, self.clients = service, admin, 0, []

    def new(self, **quotas: object):  # type: ignore[no-untyped-def]
        self.count += 1
        email = f"user{self.count}-{os.getpid()}-{time.monotonic_ns()}@example.org"
        created = self.admin.post("/api/users", json={"email": email, "password": "password-1"})
        assert created.status_code == 201, created.text
        client = self.service.client(email, "password-1")
        client.user_id = created.json()["id"]  # type: ignore[attr-defined]
        self.clients.append(client)
        if quotas:
            self.set(client, **quotas)
        return client

    def set(self, client, **quotas: object) -> None:  # type: ignore[no-untyped-def]
        r = self.admin.put(f"/api/users/{client.user_id}/quotas", json=quotas)
        assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def users(service: Service, admin):
    made = Users(service, admin)
    yield made
    for client in made.clients:
        client.close()


def upload(client, project: Path, **fields: object):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/jobs/upload",
        files={"archive": ("project.tar.gz", tar_of(project), "application/gzip")},
        data={k: str(v) for k, v in fields.items()},
    )


def submitted(client, project: Path, **fields: object) -> int:  # type: ignore[no-untyped-def]
    r = upload(client, project, **fields)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def refused(client, project: Path, **fields: object) -> str:  # type: ignore[no-untyped-def]
    r = upload(client, project, **fields)
    assert r.status_code == 400, r.text
    return r.json()["detail"]


def job_of(client, job_id: int) -> dict:  # type: ignore[no-untyped-def]
    return client.get(f"/api/jobs/{job_id}").json()


def wait_state(client, job_id: int, states=ENDED, timeout: float = 90) -> dict:  # type: ignore[no-untyped-def]
    return wait_for(
        lambda: (job := job_of(client, job_id))["state"] in states and job,
        timeout=timeout,
        what=f"job {job_id} in {states}",
    )


def cancel(client, job_id: int) -> None:  # type: ignore[no-untyped-def]
    client.post(f"/api/jobs/{job_id}/cancel")
    wait_state(client, job_id)


def conf_project(path: Path, bench: str, **config: object) -> Path:
    make_project(path, **config)
    (path / "Simple.conf").write_text(f"[main]\nurl = http://127.0.0.1:9/\n\n[bench]\n{bench}")
    return path


def console(client, job_id: int) -> str:  # type: ignore[no-untyped-def]
    return client.get(f"/api/jobs/{job_id}/console").text


# -- overrides and usage -------------------------------------------------------------


def test_admin_overrides_and_the_usage_of_every_quota(users, admin) -> None:
    alice = users.new(concurrent_jobs=2, disk_mb=1.5, prune=True)
    usage = alice.get("/api/quotas").json()
    assert usage["enforced"] is True and usage["prune"] is True
    limits = {q["name"]: q["limit"] for q in usage["quotas"]}
    assert limits == {
        "nodes_per_job": None,  # 0 in the settings: no limit
        "concurrent_jobs": 2,
        "queued_jobs": None,
        "users_per_node": None,
        "job_minutes": None,
        "disk_mb": 1.5,
        "monthly_cost": None,
    }
    assert {q["name"]: q["used"] for q in usage["quotas"]}["concurrent_jobs"] == 0
    bad = admin.put(f"/api/users/{alice.user_id}/quotas", json={"gpus": 1})
    assert bad.status_code == 400 and "quota 'gpus': unknown" in bad.json()["detail"]
    negative = admin.put(f"/api/users/{alice.user_id}/quotas", json={"queued_jobs": -1})
    assert negative.status_code == 400 and "expected a number >= 0" in negative.json()["detail"]
    assert alice.put(f"/api/users/{alice.user_id}/quotas", json={}).status_code == 403
    assert alice.get(f"/api/quotas?user_id={alice.user_id + 1000}").status_code == 403
    assert admin.get(f"/api/quotas?user_id={alice.user_id}").json()["quotas"] == usage["quotas"]
    page = alice.get("/profile")
    assert page.status_code == 200
    assert "concurrent jobs" in page.text and "cycle users per node" in page.text
    assert alice.get("/admin/usage").status_code == 403
    # the admin page's form sets the overrides too
    form = {"csrf_token": admin.headers["X-CSRF-Token"], "queued_jobs": "4", "prune": "1"}
    saved = admin.post(f"/admin/users/{alice.user_id}/quotas", data=form)
    assert saved.status_code == 303 and saved.headers["location"] == "/admin/usage"
    assert "Quotas per user" in admin.get("/admin/usage").text
    assert admin.get(f"/api/quotas?user_id={alice.user_id}").json()["overrides"] == {
        "queued_jobs": 4,
        "prune": True,
    }


# -- at submission -------------------------------------------------------------------


def test_concurrent_jobs_quota(users, tmp_path) -> None:
    bob = users.new(concurrent_jobs=1)
    project = make_project(tmp_path / "p")
    first = submitted(bob, project, label="sleep=30")
    wait_state(bob, first, ("running",))
    assert refused(bob, project) == "quota concurrent jobs: limit 1, you have 1 running"
    # the web form is refused the same way
    form = {"csrf_token": bob.headers["X-CSRF-Token"], "git_url": "https://example.org/x.git"}
    page = bob.post("/jobs", data=form)
    assert page.status_code == 400
    assert "quota concurrent jobs: limit 1, you have 1 running" in page.text
    cancel(bob, first)
    assert submitted(bob, project, label="sleep=0.05")


def test_queued_jobs_quota(users, tmp_path) -> None:
    carol = users.new(queued_jobs=1)
    project = make_project(tmp_path / "p")
    waiting = submitted(carol, project, pool="nowhere")  # no node: it stays queued
    assert refused(carol, project) == "quota queued jobs: limit 1, you have 1 queued"
    cancel(carol, waiting)
    cancel(carol, submitted(carol, project, pool="nowhere"))


def test_nodes_and_users_per_node_quotas(users, tmp_path) -> None:
    dave = users.new(nodes_per_job=2, users_per_node=50)
    project = make_project(tmp_path / "p")
    assert refused(dave, project, nodes=3) == "quota nodes per job: limit 2, this job asks for 3"
    assert refused(dave, project, cycles="10:60") == (
        "quota cycle users per node: limit 50, this job runs up to 60 users per node "
        "(cycles 10:60 on each node)"
    )
    # split among 2 nodes, the busiest runs 30
    cancel(dave, submitted(dave, project, cycles="10:60", nodes=2, split=1, pool="nowhere"))


def test_disk_quota_refuses_and_the_profile_deletes_old_reports(
    service: Service, users, tmp_path
) -> None:
    # about 1 kB: the upload (its expanded size counts) fits, the finished job is over it
    erin = users.new(disk_mb=0.001)
    project = make_project(tmp_path / "p")
    first = submitted(erin, project, label="sleep=0.05")
    assert wait_state(erin, first)["state"] == "succeeded"
    size = job_of(erin, first)["disk_bytes"]
    detail = refused(erin, project)
    assert detail == (
        f"quota disk: limit 0.001 MB, your jobs use {size / 2**20:.2g} MB: "
        "delete old reports on your profile page"
    )
    profile = erin.get("/profile")
    assert f'name="job" value="{first}"' in profile.text
    form = {"csrf_token": erin.headers["X-CSRF-Token"], "job": str(first)}
    deleted = erin.post("/profile/reports/delete", data=form)
    assert "Deleted the files of 1 job(s)." in deleted.text
    job = job_of(erin, first)
    assert job["disk_bytes"] == 0 and job["report_url"] is None
    assert not (service.data_dir / "jobs" / str(first)).exists()
    assert wait_state(erin, submitted(erin, project, label="sleep=0.05"))["state"] == "succeeded"


def test_disk_quota_prunes_the_oldest_reports_when_the_admin_says_so(
    service: Service, users, tmp_path
) -> None:
    frank = users.new()
    project = make_project(tmp_path / "p")
    oldest = submitted(frank, project, label="sleep=0.05")
    size = wait_state(frank, oldest)["disk_bytes"]
    assert size > 0
    # room for one job and a half: the next job's end prunes the oldest
    users.set(frank, disk_mb=1.5 * size / 2**20, prune=True)
    newest = submitted(frank, project, label="sleep=0.05")
    assert wait_state(frank, newest)["state"] == "succeeded"
    wait_for(lambda: job_of(frank, oldest)["disk_bytes"] == 0, what="the oldest job pruned")
    assert not (service.data_dir / "jobs" / str(oldest)).exists()
    assert job_of(frank, newest)["report_url"]
    assert (service.data_dir / "jobs" / str(newest) / "report" / "index.html").is_file()


def test_monthly_cost_quota(users, tmp_path) -> None:
    gina = users.new()
    project = make_project(tmp_path / "p")
    job = wait_state(gina, submitted(gina, project, label="sleep=0.3"))
    spent = job["cost"]["actual"]
    assert spent >= 0.3 * PRICE / 3600  # one node for at least the fake run's 0.3 s
    users.set(gina, monthly_cost=0.001)
    assert refused(gina, project) == (
        f"quota monthly cost: limit 0.001, you have spent {spent:.2f} this month and your "
        "queued and running jobs are estimated at 0.00"
    )
    assert gina.get("/api/costs").json()["spent"] == round(spent, 4)


# -- when `.marteau.yml` is read -----------------------------------------------------


@pytest.mark.parametrize(
    ("quotas", "bench", "config", "message"),
    [
        (
            {"nodes_per_job": 2},
            "cycles = 1\nduration = 1\n",
            {"nodes": 3},
            "quota nodes per job: limit 2, this job asks for 3",
        ),
        (
            {"users_per_node": 50},
            "cycles = 10:60\nduration = 1\n",
            {},
            "quota cycle users per node: limit 50, this job runs up to 60 users per node "
            "(cycles 10:60 on each node)",
        ),
        (
            {"job_minutes": 1},
            "cycles = 1\nduration = 120\n",
            {},
            "quota job duration: limit 1 min, this job plans",
        ),
        (
            # 1 node × ≥ 55 s × 0.01 per node-second ≥ 0.55
            {"monthly_cost": 0.5},
            "cycles = 1\nduration = 55\n",
            {},
            "quota monthly cost: limit 0.5, you have spent 0.00 this month, your other queued "
            "and running jobs are estimated at 0.00 and this one at",
        ),
    ],
    ids=["nodes", "users-per-node", "duration", "monthly-cost"],
)
def test_quotas_known_from_the_project_fail_the_job_fast(
    users, tmp_path, quotas, bench, config, message
) -> None:
    client = users.new(**quotas)
    project = conf_project(tmp_path / "p", bench, **config)
    job = wait_state(client, submitted(client, project, label="sleep=30"))
    assert job["state"] == "failed" and job["started"] is None  # never given nodes
    assert job["exit_reason"].startswith(message), job["exit_reason"]
    assert f"Error: {message}" in console(client, job["id"])


# -- while running -------------------------------------------------------------------


def test_duration_quota_stops_a_running_job(service: Service, users, admin, tmp_path) -> None:
    hugo = users.new(job_minutes=0.05)  # 3 s
    project = make_project(tmp_path / "p")  # no cycles anywhere: no plan to refuse early
    job_id = submitted(hugo, project, label="sleep=60")
    job = wait_state(hugo, job_id, timeout=120)
    assert job["state"] == "failed"
    assert job["exit_reason"] == "stopped: quota job duration: limit 0.05 min, the job ran over it"
    assert job["ended"] - job["started"] < 50  # the fake run sleeps 60 s
    text = console(hugo, job_id)
    assert "stopping the job (quota): SIGTERM to its process group" in text
    assert "fake run: SIGTERM, releasing" in text  # the run's own cleanup ran
    pid = int((service.data_dir / "jobs" / str(job_id) / "fake.pid").read_text())
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), what="the run to end")
    nodes = admin.get("/api/nodes").json()["nodes"]
    assert [n["status"] for n in nodes if n["name"] == "localhost"] == ["idle"]
    assert job["cost"]["actual"] > 0


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True
