"""The jobs' JSON API: queue (from a git URL, a local path or an uploaded archive),
preview, list, show, cancel, replay, delete. The console is in `console`, the live
figures in `figures`, the project's runs in `trend`; the pages in `pages`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field
from pydantic_core import to_json
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from marteau.service.comparisons import project_runs
from marteau.service.cost import preview_estimate
from marteau.service.db import Database
from marteau.service.hosts import target_status
from marteau.service.job_fields import MAX_FIELD
from marteau.service.job_lists import ListedJob, ListedRows, job_count, listed_jobs
from marteau.service.jobs import create_job, delete_job, job_json, preview_project, replay_job
from marteau.service.live_figures import job_figures
from marteau.service.models import FINISHED, Job
from marteau.service.routes.deps import ApiAuth, Auth, Config, Db, run_read
from marteau.service.scheduler import request_cancel
from marteau.service.settings import Settings
from marteau.service.worker import console_path

router = APIRouter()


class JobIn(BaseModel):
    git_url: str | None = Field(
        None,
        max_length=MAX_FIELD["git_url"],
        description="http(s), ssh or git URL, without credentials (file:// and local paths: "
        "admins)",
    )
    ref: str | None = Field(None, max_length=MAX_FIELD["ref"], description="branch, tag or commit")
    path: str | None = Field(
        None, max_length=MAX_FIELD["path"], description="a local project directory (admins only)"
    )
    cycles: str | None = Field(None, max_length=MAX_FIELD["cycles"])
    duration: int | None = None
    nodes: int | None = None
    pool: str | None = Field(None, max_length=MAX_FIELD["pool"])
    script: str | None = Field(None, max_length=MAX_FIELD["script"])
    test: str | None = Field(None, max_length=MAX_FIELD["test"])
    label: str | None = Field(None, max_length=MAX_FIELD["label"])
    url: str | None = Field(None, max_length=MAX_FIELD["url"])
    thresholds: str | None = Field(None, max_length=MAX_FIELD["thresholds"])
    split: bool = False


def owner_or_admin(auth: Auth, job: Job) -> None:
    if not (auth.user.is_admin or job.owner_id == auth.user.id):
        raise HTTPException(403, "only the job's owner or an admin may do this")


def get_job(db: Database, job_id: int, runs: list[dict] | None = None) -> Job:
    """The job, its owner and nodes loaded; with `runs`, its project's runs too."""
    with db.read() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        _ = job.owner, job.nodes  # load them now
        if runs is not None:
            runs += project_runs(session, job.project_key, job_id)
        return job


def job_target_status(
    db: Database, settings: Settings, user_id: int, project: dict[str, Any]
) -> dict[str, Any] | None:
    """With hosts enforced, whether the previewed job's target is a verified host."""
    if not settings.hosts_enforced or not project["target"]:
        return None
    return target_status(db, settings, user_id, project["target"], project["target_from"])


@router.post("/api/jobs", tags=["jobs"], status_code=201)
def api_create_job(body: JobIn, auth: ApiAuth, db: Db, settings: Config) -> dict:
    """Queue a job from a git URL (and ref), or a local path (admins)."""
    job = create_job(db, settings, auth.user, body.model_dump())
    return job_json(get_job(db, job.id), settings)


@router.post("/api/jobs/preview", tags=["jobs"])
def api_preview(body: JobIn, auth: ApiAuth, db: Db, settings: Config) -> dict:
    """What the project's `.marteau.yml` says (a shallow clone), without queuing a job,
    and the job's cost estimate."""
    project = preview_project(settings, auth.user, body.model_dump())
    return {
        "project": project,
        "estimate": preview_estimate(db, settings, project["plan"]),
        "target": job_target_status(db, settings, auth.user.id, project),
    }


@router.post("/api/jobs/upload", tags=["jobs"], status_code=201)
async def api_upload_job(
    archive: Annotated[UploadFile, File(description=".tar.gz, .tgz, .tar or .zip of the project")],
    auth: ApiAuth,
    db: Db,
    settings: Config,
    cycles: Annotated[str | None, Form()] = None,
    duration: Annotated[int | None, Form()] = None,
    nodes: Annotated[int | None, Form()] = None,
    pool: Annotated[str | None, Form()] = None,
    script: Annotated[str | None, Form()] = None,
    test: Annotated[str | None, Form()] = None,
    label: Annotated[str | None, Form()] = None,
    url: Annotated[str | None, Form()] = None,
    thresholds: Annotated[str | None, Form()] = None,
    split: Annotated[bool, Form()] = False,
) -> dict:
    """Queue a job from an uploaded archive of the project's directory."""
    data = await archive.read(settings.max_upload_mb * 2**20 + 1)
    fields = dict(
        cycles=cycles,
        duration=duration,
        nodes=nodes,
        pool=pool,
        script=script,
        test=test,
        label=label,
        url=url,
        thresholds=thresholds,
        split=split,
    )
    job = await run_in_threadpool(
        create_job, db, settings, auth.user, fields, (archive.filename or "upload", data)
    )
    return job_json(get_job(db, job.id), settings)


@router.get("/api/jobs", tags=["jobs"], response_model=dict[str, Any])
async def api_jobs(
    request: Request, auth: ApiAuth, state: str | None = None, limit: int = 50, offset: int = 0
) -> Response:
    app = request.app.state
    return await run_read(app.db, _job_list, app.settings, app.listed_rows, state, limit, offset)


def _job_list(
    session: Session,
    settings: Settings,
    rows: ListedRows,
    state: str | None,
    limit: int,
    offset: int,
) -> Response:
    """The page of jobs as JSON, reads and encoding in one go (the list and its
    total need not agree to the instant)."""
    limit = max(1, min(limit, 500))
    states = [state] if state else None
    jobs = listed_jobs(session, rows, states, limit, max(0, offset))
    total = job_count(session, states)

    def row_json(job: ListedJob) -> bytes:
        # a ListedJob has Job's columns as attributes (job_lists): job_json takes either
        return to_json(job_json(job, settings, listed=True))  # type: ignore[arg-type]

    # each row's JSON made once (ListedRows), by pydantic's encoder (Rust): a
    # quarter of the time of json.dumps here
    body = b",".join(job.shown("json", row_json) for job in jobs)
    return Response(
        b'{"jobs":[' + body + b'],"total":' + str(total).encode() + b"}",
        media_type="application/json",
    )


@router.get("/api/jobs/{job_id}", tags=["jobs"])
def api_job(job_id: int, auth: ApiAuth, db: Db, settings: Config) -> dict:
    """The job, with its live per-cycle figures (see /api/jobs/{job_id}/figures)."""
    job = get_job(db, job_id)
    return {**job_json(job, settings), "figures": job_figures(console_path(settings, job_id))}


@router.post("/api/jobs/{job_id}/cancel", tags=["jobs"])
def api_cancel(job_id: int, auth: ApiAuth, db: Db, settings: Config) -> dict:
    job = get_job(db, job_id)
    owner_or_admin(auth, job)
    if job.state in FINISHED:
        raise HTTPException(409, f"job {job_id} is already {job.state}")
    request_cancel(db, job_id)
    return job_json(get_job(db, job_id), settings)


@router.post("/api/jobs/{job_id}/replay", tags=["jobs"], status_code=201)
def api_replay(job_id: int, auth: ApiAuth, db: Db, settings: Config) -> dict:
    job = get_job(db, job_id)
    owner_or_admin(auth, job)
    new = replay_job(db, settings, auth.user, job)
    return job_json(get_job(db, new.id), settings)


@router.delete("/api/jobs/{job_id}", tags=["jobs"])
def api_delete(job_id: int, auth: ApiAuth, db: Db, settings: Config) -> dict:
    job = get_job(db, job_id)
    owner_or_admin(auth, job)
    if job.state not in FINISHED:
        raise HTTPException(409, f"job {job_id} is {job.state}: cancel it first")
    delete_job(db, settings, job_id)
    return {"deleted": job_id}
