"""`GET /metrics` of a real `marteau serve` (uvicorn, its workers running the `marteau
run` stand-in of tests/service_helpers.py): who may read it, what it says while jobs
queue and run, and that it names no user's data. The Grafana dashboard's service
panels read only names this scrape shows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests.service_helpers import Service, make_project, tar_of, upload, wait_for, wait_job
from tests.support.metrics import (
    OPENMETRICS,
    Samples,
    dashboard_metrics,
    exported_names,
    samples,
    value,
)

TOKEN = "metrics-token-for-the-tests-0123456789"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    base = tmp_path_factory.mktemp("service")
    config = base / "marteau.toml"
    config.write_text(f'metrics_token = "{TOKEN}"\n')
    # one worker: a second job waits in the queue while the first runs
    svc = Service(base / "data", base / "locks", workers=1, options=("--config", str(config)))
    yield svc
    svc.stop()


def scrape(client: httpx.Client, **headers: str) -> Samples:
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    openmetrics = headers.get("Accept") == OPENMETRICS
    kind = "application/openmetrics-text" if openmetrics else "text/plain"
    assert r.headers["content-type"].startswith(kind), r.headers
    return samples(r.text, openmetrics=openmetrics)


def test_only_admins_and_the_metrics_token_read_it(service: Service, admin, alice) -> None:
    with closing(service.client()) as anonymous:
        r = anonymous.get("/metrics")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        for wrong in (TOKEN[:-1], TOKEN + "x", "x"):
            r = anonymous.get("/metrics", headers={"Authorization": f"Bearer {wrong}"})
            assert r.status_code == 401, wrong
        found = scrape(anonymous, Authorization=f"Bearer {TOKEN}")
        assert value(found, "marteau_service_jobs", state="queued") is not None
    assert alice.get("/metrics").status_code == 403  # a user's login
    token = alice.post("/api/tokens", json={"name": "t", "scope": "read"}).json()["token"]
    with closing(service.client()) as client:
        r = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 403, r.text
    scrape(admin)  # an admin's login
    read = admin.post("/api/tokens", json={"name": "prometheus", "scope": "read"}).json()
    with closing(service.client()) as prometheus:  # what to give Prometheus: a read token
        scrape(prometheus, Authorization=f"Bearer {read['token']}")
        # the metrics token opens /metrics only
        r = prometheus.get("/api/jobs", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 401


def test_jobs_queue_nodes_and_running_rates(service: Service, admin, alice, tmp_path) -> None:
    project = make_project(tmp_path / "project")
    first = upload(alice, tar_of(project), label="sleep=20").json()["id"]
    second = upload(alice, tar_of(project), label="sleep=0.1").json()["id"]

    def running() -> Samples | None:
        found = scrape(admin)
        rate = value(found, "marteau_service_job_requests_per_second", job=str(first))
        return found if rate else None

    during = wait_for(running, timeout=90, what=f"job {first}'s requests/s")
    assert value(during, "marteau_service_jobs", state="running") == 1
    assert value(during, "marteau_service_jobs", state="queued") == 1  # the second one
    assert value(during, "marteau_service_nodes", pool="marteau", state="leased") == 1
    assert value(during, "marteau_service_workers") == 1
    assert value(during, "marteau_service_job_users", job=str(first)) > 0
    waited = value(during, "marteau_service_queue_wait_seconds")
    assert waited > 0
    # the figures move: the rates grow with the fake run's ticks, the queue's wait too
    rate = value(during, "marteau_service_job_requests_per_second", job=str(first))

    def grown() -> Samples | None:
        found = scrape(admin)
        now = value(found, "marteau_service_job_requests_per_second", job=str(first))
        wait = value(found, "marteau_service_queue_wait_seconds")
        return found if now is not None and now > rate and wait > waited else None

    moved = wait_for(grown, timeout=60, what="the figures to move")
    also = scrape(admin, Accept=OPENMETRICS)  # the same families, OpenMetrics
    assert {name for name in exported_names(moved) if name.startswith("marteau_service_")} <= {
        name for name in exported_names(also)
    }
    for job in (first, second):
        assert wait_job(admin, job)["state"] == "succeeded"
    after = scrape(admin)
    assert value(after, "marteau_service_job_requests_per_second", job=str(first)) is None
    assert value(after, "marteau_service_jobs", state="succeeded") >= 2
    assert value(after, "marteau_service_jobs", state="running") == 0
    assert value(after, "marteau_service_queue_wait_seconds") == 0
    assert value(after, "marteau_service_nodes", pool="marteau", state="idle") == 1
    # no user's data: no address, label or project in any sample
    text = admin.get("/metrics").text
    for secret in ("alice@example.org", "sleep=", "loadtest", str(project)):
        assert secret not in text
    # the dashboard's service panels read what the service exports
    wanted = {name for name in dashboard_metrics() if name.startswith("marteau_service_")}
    assert len(wanted) >= 4, wanted
    assert wanted <= exported_names(moved), wanted - exported_names(moved)


def test_a_short_metrics_token_is_refused_at_start(tmp_path: Path) -> None:
    from marteau.errors import MarteauError
    from marteau.service.settings import load_settings

    config = tmp_path / "marteau.toml"
    config.write_text('metrics_token = "short"\n')
    with pytest.raises(MarteauError, match="metrics_token: at least 16 characters"):
        load_settings(config)
