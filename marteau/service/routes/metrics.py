"""`GET /metrics`: the service's figures for Prometheus.

Jobs by state, how long the oldest queued job has waited, the nodes by pool
and state (leased to a job, idle, disabled), the live workers, and for each
running job its nodes' requests/s and users as their last progress lines say
(the job's console: `marteau.service.live_figures`). Built at each scrape from
the database, in the Prometheus text format or OpenMetrics when the scraper
asks for it, by the official `prometheus_client` library.

Who may read it: an admin (login, or an API token of any scope: a `read` token
is the one to give Prometheus), or whoever sends the `metrics_token` setting
as a bearer token (a secret that opens this route only). Others get 401/403:
the figures cover every user's jobs, even if they name none of their owners,
projects, labels or targets (a job is its number only).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import func, select

from marteau.service.live_figures import FiguresReader
from marteau.service.models import QUEUED, RUNNING, STATES, Job, Node, Worker
from marteau.service.routes.deps import Config, credential, resolve_auth
from marteau.service.settings import Settings
from marteau.service.worker import console_path

router = APIRouter(tags=["metrics"])
NODE_STATES = ("leased", "idle", "disabled")


async def metrics_reader(request: Request) -> None:
    """The `metrics_token` as a bearer token, or an admin; else 401 or 403."""
    settings: Settings = request.app.state.settings
    found = credential(request) or ("", "")
    token = settings.metrics_token.encode()
    if token and found[0] == "token" and secrets.compare_digest(found[1].encode(), token):
        return
    auth = await resolve_auth(request)
    if auth is None:
        raise HTTPException(
            401,
            "send Authorization: Bearer <an admin's API token, or the metrics_token setting>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not auth.user.is_admin:
        raise HTTPException(403, "the service's metrics are for admins")


@dataclass
class RunningFigures:
    """One console reader per running job, kept between scrapes: each scrape reads
    only what the job's console gained since the last one."""

    readers: dict[int, FiguresReader] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def current(self, settings: Settings, jobs: list[int]) -> dict[int, tuple[float, int]]:
        """For each job, its nodes' requests/s and users in the cycle each is in now."""
        found = {}
        with self.lock:
            for gone in set(self.readers) - set(jobs):
                del self.readers[gone]
            for job in jobs:
                reader = self.readers.setdefault(job, FiguresReader(console_path(settings, job)))
                reader.update()
                latest: dict[str, dict[str, Any]] = {}
                for row in reader.rows():  # in cycle order: the last one of a node wins
                    latest[row["node"]] = row
                rps = sum(row["rps"] or 0.0 for row in latest.values())
                found[job] = (rps, sum(row["users"] for row in latest.values()))
        return found


_running_lock = threading.Lock()


def _running(request: Request) -> RunningFigures:
    with _running_lock:
        figures = getattr(request.app.state, "running_figures", None)
        if figures is None:
            figures = request.app.state.running_figures = RunningFigures()
        return figures


class Families:
    """The families of one scrape, for `prometheus_client`'s encoders."""

    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> Iterator[Any]:
        yield from self.families


def service_families(request: Request, settings: Settings) -> list[Any]:
    from prometheus_client.core import GaugeMetricFamily

    now = time.time()
    db = request.app.state.db
    with db.read() as session:
        by_state = dict(session.execute(select(Job.state, func.count()).group_by(Job.state)).all())
        oldest = session.scalar(select(func.min(Job.created)).where(Job.state == QUEUED))
        nodes = session.execute(
            select(Node.pool, Node.enabled, Node.lease_job_id, Node.lease_expires)
        ).all()
        stale = now - max(settings.lease_ttl, 10) * 2
        workers = session.scalar(
            select(func.count())
            .select_from(Worker)
            .where(Worker.stopped.is_(None), Worker.heartbeat >= stale)
        )
        running = list(session.scalars(select(Job.id).where(Job.state == RUNNING)))
    jobs = GaugeMetricFamily("marteau_service_jobs", "Jobs by state.", labels=["state"])
    for state in STATES:
        jobs.add_metric([state], by_state.get(state, 0))
    wait = GaugeMetricFamily(
        "marteau_service_queue_wait_seconds",
        "How long the oldest queued job has waited (0: none is queued).",
        value=max(now - oldest, 0.0) if oldest is not None else 0.0,
    )
    counts: dict[tuple[str, str], int] = {}
    for pool, enabled, lease_job, lease_expires in nodes:
        leased = lease_job is not None and (lease_expires or 0) >= now
        state = "leased" if leased else "idle" if enabled else "disabled"
        counts[(pool, state)] = counts.get((pool, state), 0) + 1
    node_family = GaugeMetricFamily(
        "marteau_service_nodes",
        "Nodes by pool and state: leased to a job, idle, disabled.",
        labels=["pool", "state"],
    )
    for pool in sorted({pool for pool, _ in counts}):
        for state in NODE_STATES:
            node_family.add_metric([pool, state], counts.get((pool, state), 0))
    worker_family = GaugeMetricFamily(
        "marteau_service_workers", "Workers alive (heartbeat recent).", value=workers or 0
    )
    rates = GaugeMetricFamily(
        "marteau_service_job_requests_per_second",
        "A running job's requests/s: the sum of its nodes' last progress lines.",
        labels=["job"],
    )
    users = GaugeMetricFamily(
        "marteau_service_job_users",
        "A running job's virtual users: the sum of its nodes' last progress lines.",
        labels=["job"],
    )
    for job, (rps, started) in sorted(_running(request).current(settings, running).items()):
        rates.add_metric([str(job)], rps)
        users.add_metric([str(job)], started)
    return [jobs, wait, node_family, worker_family, rates, users]


@router.get(
    "/metrics",
    dependencies=[Depends(metrics_reader)],
    response_class=Response,
    responses={200: {"content": {"text/plain": {}, "application/openmetrics-text": {}}}},
)
def metrics(request: Request, settings: Config) -> Response:
    """The service's figures for Prometheus (admins, or the `metrics_token` setting)."""
    from prometheus_client.exposition import choose_encoder

    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    families = Families(service_families(request, settings))
    return Response(encoder(families), media_type=content_type)
