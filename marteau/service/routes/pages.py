"""The job pages: the dashboard (the job lists, the nodes and workers), the new-job
form and its preview, a job's page and its actions (cancel, replay, delete), and the
files of its report. The other pages live with their resource's API (`accounts`,
`nodes`, `hosts`, `users`, `usage`) or on their own (`login`)."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from marteau.errors import MarteauError
from marteau.service.cost import preview_estimate
from marteau.service.job_fields import bounded_fields
from marteau.service.job_lists import listed_jobs
from marteau.service.jobs import create_job, delete_job, preview_project, replay_job
from marteau.service.live_figures import job_view
from marteau.service.messages import shown
from marteau.service.models import FINISHED, QUEUED, RUNNING
from marteau.service.routes.console import read_console
from marteau.service.routes.deps import (
    Auth,
    Config,
    Db,
    FormAuth,
    PageAuth,
    ReaderAuth,
    duration_text,
    render,
    run_read,
)
from marteau.service.routes.jobs import get_job, job_target_status, owner_or_admin
from marteau.service.routes.nodes import node_list, worker_list
from marteau.service.scheduler import request_cancel
from marteau.service.settings import Settings
from marteau.service.worker import console_path

router = APIRouter()


def safe_file(base: Path, relative: str) -> Path | None:
    """`base/relative` if it is a file inside `base` (no `..`, no link out), else None."""
    parts = [p for p in relative.split("/") if p]
    if any(p in (".", "..") or "\\" in p or "\0" in p for p in parts):
        return None
    try:
        root = base.resolve(strict=True)
        target = root.joinpath(*parts).resolve(strict=True)
        target.relative_to(root)
    except (OSError, ValueError):
        return None
    if target.is_dir():
        target = target / "index.html"
    return target if target.is_file() else None


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    return Response(status_code=204)  # no icon; pages say so with `<link rel=icon href=data:,>`


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def dashboard(request: Request, auth: PageAuth) -> Response:
    return await run_read(request.app.state.db, _dashboard, request, auth)


def _dashboard(session: Session, request: Request, auth: Auth) -> Response:
    """The page in one go: its reads (the lists need not agree to the instant) and
    the template."""
    app = request.app.state
    rows = app.listed_rows
    queued = list(reversed(listed_jobs(session, rows, [QUEUED], 50)))
    running = listed_jobs(session, rows, [RUNNING], 50)
    finished = listed_jobs(session, rows, FINISHED, 20)
    nodes = node_list(app.db, app.settings, auth, session)
    workers = worker_list(app.db, app.settings, session)
    return render(
        request,
        "dashboard.html",
        auth,
        queued=queued,
        running=running,
        finished=finished,
        nodes=nodes,
        workers=workers,
    )


@router.get("/jobs/new", response_class=HTMLResponse, include_in_schema=False)
def new_job_page(request: Request, auth: PageAuth) -> Response:
    return render(request, "job_new.html", auth, values={})


async def job_form(
    request: Request, settings: Settings
) -> tuple[dict[str, str], tuple[str, bytes] | None]:
    """The new-job form's text fields, and its uploaded archive (name, bytes) if any;
    one byte over the upload limit is read so that the limit can be reported."""
    form = await request.form()
    fields = bounded_fields({k: v for k, v in form.items() if isinstance(v, str)})
    upload = form.get("archive")
    if upload is None or isinstance(upload, str) or not upload.filename:
        return fields, None
    return fields, (upload.filename, await upload.read(settings.max_upload_mb * 2**20 + 1))


@router.post("/jobs", include_in_schema=False)
async def new_job_submit(request: Request, auth: FormAuth, db: Db, settings: Config) -> Response:
    fields, archive = await job_form(request, settings)
    try:
        job = await run_in_threadpool(create_job, db, settings, auth.user, fields, archive)
    except MarteauError as exc:
        error = shown(str(exc), settings.data_dir)
        return render(request, "job_new.html", auth, status=400, values=fields, error=error)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.post("/jobs/preview", include_in_schema=False)
async def new_job_preview(request: Request, auth: FormAuth, db: Db, settings: Config) -> Response:
    fields, archive = await job_form(request, settings)
    try:
        preview = await run_in_threadpool(preview_project, settings, auth.user, fields, archive)
    except MarteauError as exc:
        error = shown(str(exc), settings.data_dir)
        return render(request, "job_new.html", auth, status=400, values=fields, error=error)
    estimate = preview_estimate(db, settings, preview["plan"])
    return render(
        request,
        "job_new.html",
        auth,
        values=fields,
        preview=preview,
        estimate=estimate,
        target=job_target_status(db, settings, auth.user.id, preview),
        uploaded=bool(archive),
    )


@router.get("/jobs/{job_id}", response_class=HTMLResponse, include_in_schema=False)
def job_page(job_id: int, request: Request, auth: PageAuth, db: Db, settings: Config) -> Response:
    runs: list[dict] = []
    job = get_job(db, job_id, runs)
    data, end = read_console(settings, job_id, 0, 4 * 2**20)
    can_act = auth.user.is_admin or job.owner_id == auth.user.id
    return render(
        request,
        "job.html",
        auth,
        job=job,
        console=data.decode("utf-8", "replace"),
        console_end=end,
        figures=job_view(console_path(settings, job_id)),
        can_act=can_act,
        runs=runs,
        duration=duration_text(job),
        now=time.time(),
    )


@router.post("/jobs/{job_id}/{action}", include_in_schema=False)
def job_action(job_id: int, action: str, auth: FormAuth, db: Db, settings: Config) -> Response:
    job = get_job(db, job_id)
    owner_or_admin(auth, job)
    if action == "cancel":
        if job.state not in FINISHED:
            request_cancel(db, job_id)
        return RedirectResponse(f"/jobs/{job_id}", status_code=303)
    if action == "replay":
        new = replay_job(db, settings, auth.user, job)
        return RedirectResponse(f"/jobs/{new.id}", status_code=303)
    if action == "delete":
        delete_job(db, settings, job_id)
        return RedirectResponse("/", status_code=303)
    raise HTTPException(404, f"no action {action}")


@router.get("/jobs/{job_id}/report", include_in_schema=False)
def report_root(job_id: int, auth: ReaderAuth) -> Response:
    return RedirectResponse(f"/jobs/{job_id}/report/", status_code=303)


@router.get("/jobs/{job_id}/report/{path:path}", include_in_schema=False)
def report_file(job_id: int, path: str, auth: ReaderAuth, settings: Config) -> Response:
    target = safe_file(settings.job_dir(job_id) / "report", path)
    if target is None:
        raise HTTPException(404, "no such report file")
    return FileResponse(target)
