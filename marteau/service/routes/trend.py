"""Routes for a job's project: its runs side by side (each one's key figures, up to
the job), the data the job page's trend table and the trend report draw."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from marteau.service.comparisons import (
    TREND_RUNS,
    comparison_json,
    key_figures_json,
    project_runs,
)
from marteau.service.models import Job
from marteau.service.routes.deps import ApiAuth, Config, Db

router = APIRouter(tags=["jobs"])
MAX_RUNS = 100


@router.get("/api/jobs/{job_id}/trend")
def api_trend(
    job_id: int,
    auth: ApiAuth,
    db: Db,
    settings: Config,
    limit: Annotated[int, Query(ge=1, le=MAX_RUNS)] = TREND_RUNS,
) -> dict:
    """The job's project's runs with key figures up to this job, oldest first (the
    newest `limit`), and the job's own comparison and report links."""
    with db.read() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        runs = project_runs(session, job.project_key, job_id, limit)
        base = f"{settings.public_url}/jobs/"
        return {
            "job": job_id,
            "project": job.project_name,
            "project_key": job.project_key,
            "key_figures": key_figures_json(job),
            **comparison_json(job, f"{base}{job_id}/"),
            "runs": [{**run, "url": f"{base}{run['id']}"} for run in runs],
        }
