"""The web app: the JSON API under /api (OpenAPI at /docs and /openapi.json) and the
server-rendered pages. Auth: a login session cookie (with a CSRF token for every
unsafe request: a form field, or the X-CSRF-Token header for the API) or
`Authorization: Bearer <API token>`."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from pathlib import Path
from typing import Annotated, Any, Literal

from anyio import to_thread
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from pydantic_core import to_json
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from marteau import __version__
from marteau.errors import MarteauError
from marteau.service import (
    accounts,
    figures_web,
    login_routes,
    metrics_web,
    nodes_web,
    trend_web,
    usage_web,
    users_web,
)
from marteau.service.accounts import MAX_TOKEN_DAYS, TokenRefused
from marteau.service.auth_cache import STAMP, AuthCache
from marteau.service.comparisons import change_text, figure_text, project_runs
from marteau.service.cost import preview_estimate
from marteau.service.db import Database
from marteau.service.figure_cells import change_badge, figure_cells
from marteau.service.hosts import target_status
from marteau.service.hosts_routes import router as hosts_router
from marteau.service.job_fields import MAX_FIELD, bounded_fields
from marteau.service.job_lists import ListedJob, ListedRows, job_count, listed_jobs
from marteau.service.jobs import (
    create_job,
    delete_job,
    job_json,
    preview_project,
    replay_job,
)
from marteau.service.limits import RequestLimits
from marteau.service.live_figures import job_figures, job_view
from marteau.service.login_gate import LoginGate
from marteau.service.login_routes import EMAIL_MAX, PASSWORD_MAX
from marteau.service.messages import shown
from marteau.service.models import (
    FINISHED,
    QUEUED,
    RUNNING,
    ApiToken,
    Job,
    LoginSession,
    Node,
    User,
    Worker,
)
from marteau.service.node_pool import (
    add_nodes,
    check_now,
    forget_check,
    node_command,
    node_json,
    node_locks,
    node_view,
    parse_host_list,
    refuse_local,
)
from marteau.service.scheduler import request_cancel
from marteau.service.settings import Settings
from marteau.service.web import (
    COOKIE,
    ApiAdmin,
    ApiAuth,
    Auth,
    FormAuth,
    LoginRequired,
    PageAuth,
    ReaderAuth,
    render,
    run_read,
)
from marteau.service.worker import console_path

HERE = Path(__file__).resolve().parent

# -- API models ------------------------------------------------------------------


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


class NodeIn(BaseModel):
    name: str = Field(max_length=255)
    pool: str = Field("marteau", max_length=100)
    vars: dict[str, Any] = Field(
        default_factory=dict, max_length=100, description="Ansible host variables"
    )


class UserIn(BaseModel):
    email: str = Field(max_length=EMAIL_MAX)
    password: str = Field(max_length=PASSWORD_MAX)
    admin: bool = False


class TokenIn(BaseModel):
    name: str = Field("token", max_length=100)
    scope: Literal["read", "submit", "admin"] = Field(
        "submit",
        description="read: GET only; submit: all but the admin routes; admin: an admin's all "
        "(admins only). Never wider than the credential that asks.",
    )
    expires_days: float | None = Field(
        None, gt=0, le=MAX_TOKEN_DAYS, description="the token ends after this many days"
    )


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


def _duration(job: Job) -> str:
    if not job.started:
        return ""
    seconds = int((job.ended or time.time()) - job.started)
    return (
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )


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


def lifespan_of(
    threads: int, db: Database
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: size the thread pool its sync routes run in (each slow
    request, a preview's clone or a node check, holds one for its duration), and at
    the end close the connections of the asyncio engine (`web.run_read`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        to_thread.current_default_thread_limiter().total_tokens = threads
        gc.collect()
        gc.freeze()
        yield
        await db.dispose_async()

    return lifespan


def create_app(settings: Settings, db: Database | None = None) -> FastAPI:
    db = db or Database(settings.db_url)
    app = FastAPI(
        title="Marteau",
        version=__version__,
        description="A queue of distributed load tests run with `marteau run`.",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan_of(settings.web_threads, db),
    )
    app.state.settings = settings
    app.state.db = db
    app.state.auth_cache = AuthCache(db, settings.data_dir / STAMP)
    app.state.login_gate = LoginGate(settings)
    app.add_middleware(RequestLimits)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["when"] = _when
    templates.env.globals["duration"] = _duration
    templates.env.filters["shown"] = lambda text: shown(text or "", settings.data_dir)
    templates.env.globals["version"] = __version__
    templates.env.globals.update(
        figure_text=figure_text,
        change_text=change_text,
        change_badge=change_badge,
        figure_cells=figure_cells,
    )
    app.state.templates = templates
    rows = ListedRows()

    def row_json(job: ListedJob) -> bytes:
        return to_json(job_json(job, settings, listed=True))

    # the module's context is a copy of the globals when first made: shown_row first
    templates.env.globals["shown_row"] = lambda job: job.shown("html", job_row)
    job_row = templates.env.get_template("_jobs.html").module.job_row  # type: ignore[attr-defined]
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(login_routes.router)
    app.include_router(hosts_router)
    app.include_router(figures_web.router)
    app.include_router(usage_web.router)
    app.include_router(nodes_web.router)
    app.include_router(users_web.router)
    app.include_router(metrics_web.router)
    app.include_router(trend_web.router)

    def owner_or_admin(auth: Auth, job: Job) -> None:
        if not (auth.user.is_admin or job.owner_id == auth.user.id):
            raise HTTPException(403, "only the job's owner or an admin may do this")

    def get_job(job_id: int, runs: list[dict] | None = None) -> Job:
        """The job, its owner and nodes loaded; with `runs`, its project's runs too."""
        with db.read() as session:
            job = session.get(Job, job_id)
            if job is None:
                raise HTTPException(404, f"no job {job_id}")
            _ = job.owner, job.nodes  # load them now
            if runs is not None:
                runs += project_runs(session, job.project_key, job_id)
            return job

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        # without the raw input: a binary body cannot go back into JSON
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    def _error(request: Request, message: str, status: int) -> Response:
        message = shown(message, settings.data_dir)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": message}, status_code=status)
        return templates.TemplateResponse(
            request, "error.html", {"message": message, "auth": None}, status_code=status
        )

    @app.exception_handler(MarteauError)
    async def _bad_input(request: Request, exc: MarteauError) -> Response:
        return _error(request, str(exc), 400)

    @app.exception_handler(OverflowError)
    async def _out_of_range(request: Request, exc: OverflowError) -> Response:
        # an id or count past the database's integers (SQLite: 64 bits)
        return _error(request, "a number in the request is out of range", 400)

    @app.exception_handler(IntegrityError)
    async def _conflict(request: Request, exc: IntegrityError) -> Response:
        # Two requests writing the same unique row (a user, a node) at once: on
        # PostgreSQL both pass the existence check (SQLite runs one writer at a time)
        # and the second one's INSERT fails when the first commits.
        return _error(request, "another request wrote the same at the same time: try again", 409)

    # -- API: accounts ---------------------------------------------------------

    @app.post("/api/logout", tags=["accounts"])
    def api_logout(auth: ApiAuth) -> JSONResponse:
        if auth.login is not None:
            with db.write() as session:
                session.execute(
                    LoginSession.__table__.delete().where(LoginSession.id == auth.login.id)
                )
        response = JSONResponse({"ok": True})
        response.delete_cookie(COOKIE)
        return response

    @app.get("/api/me", tags=["accounts"])
    def api_me(auth: ApiAuth) -> dict:
        return {
            "email": auth.user.email,
            "admin": auth.user.is_admin,
            "csrf_token": auth.csrf or None,
        }

    @app.get("/api/users", tags=["accounts"])
    def api_users(auth: ApiAdmin) -> dict:
        with db.read() as session:
            users = session.scalars(select(User).order_by(User.email)).all()
            return {"users": [{"id": u.id, "email": u.email, "admin": u.is_admin} for u in users]}

    @app.post("/api/users", tags=["accounts"], status_code=201)
    def api_add_user(body: UserIn, auth: ApiAdmin) -> dict:
        with db.write() as session:
            user = accounts.create_user(session, body.email, body.password, body.admin)
            return {"id": user.id, "email": user.email, "admin": user.is_admin}

    @app.get("/api/tokens", tags=["accounts"])
    def api_tokens(auth: ApiAuth) -> dict:
        with db.read() as session:
            rows = session.scalars(
                select(ApiToken).where(ApiToken.user_id == auth.user.id).order_by(ApiToken.id)
            ).all()
            return {"tokens": [_token_json(t) for t in rows]}

    def _token_json(t: ApiToken) -> dict:
        return {
            "id": t.id,
            "name": t.name,
            "prefix": t.prefix,
            "scope": t.scope,
            "created": t.created,
            "expires": t.expires,
            "last_used": t.last_used,
            "revoked": t.revoked,
        }

    def _new_token(auth: Auth, name: str, scope: str, days: float | None) -> tuple[str, dict]:
        try:
            accounts.check_token_scope(auth.user, scope, auth.effective_scope)
        except TokenRefused as exc:
            raise HTTPException(403, str(exc)) from None
        with db.write() as session:
            user = session.get(User, auth.user.id)
            token, row = accounts.create_token(session, user, name, scope, days)
            return token, _token_json(row)

    @app.post("/api/tokens", tags=["accounts"], status_code=201)
    def api_new_token(body: TokenIn, auth: ApiAuth) -> dict:
        """A new API token for the caller; the token itself is shown only in this answer.
        Only an admin gets an `admin` token, and never one wider than the asking token."""
        token, row = _new_token(auth, body.name, body.scope, body.expires_days)
        return {**row, "token": token}

    @app.delete("/api/tokens/{token_id}", tags=["accounts"])
    def api_revoke_token(token_id: int, auth: ApiAuth) -> dict:
        with db.write() as session:
            row = session.get(ApiToken, token_id)
            if row is None or (row.user_id != auth.user.id and not auth.user.is_admin):
                raise HTTPException(404, f"no token {token_id}")
            row.revoked = row.revoked or time.time()
            return _token_json(row)

    # -- API: jobs -------------------------------------------------------------

    @app.post("/api/jobs", tags=["jobs"], status_code=201)
    def api_create_job(body: JobIn, auth: ApiAuth) -> dict:
        """Queue a job from a git URL (and ref), or a local path (admins)."""
        job = create_job(db, settings, auth.user, body.model_dump())
        return job_json(get_job(job.id), settings)

    @app.post("/api/jobs/preview", tags=["jobs"])
    def api_preview(body: JobIn, auth: ApiAuth) -> dict:
        """What the project's `.marteau.yml` says (a shallow clone), without queuing a job,
        and the job's cost estimate."""
        project = preview_project(settings, auth.user, body.model_dump())
        return {
            "project": project,
            "estimate": preview_estimate(db, settings, project["plan"]),
            "target": _target_status(auth.user.id, project),
        }

    def _target_status(user_id: int, project: dict[str, Any]) -> dict[str, Any] | None:
        """With hosts enforced, whether the previewed job's target is a verified host."""
        if not settings.hosts_enforced or not project["target"]:
            return None
        return target_status(db, settings, user_id, project["target"], project["target_from"])

    @app.post("/api/jobs/upload", tags=["jobs"], status_code=201)
    async def api_upload_job(
        archive: Annotated[
            UploadFile, File(description=".tar.gz, .tgz, .tar or .zip of the project")
        ],
        auth: ApiAuth,
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
        return job_json(get_job(job.id), settings)

    @app.get("/api/jobs", tags=["jobs"], response_model=dict[str, Any])
    async def api_jobs(
        auth: ApiAuth, state: str | None = None, limit: int = 50, offset: int = 0
    ) -> Response:
        return await run_read(db, _job_list, state, limit, offset)

    def _job_list(session: Session, state: str | None, limit: int, offset: int) -> Response:
        """The page of jobs as JSON, reads and encoding in one go (the list and its
        total need not agree to the instant)."""
        limit = max(1, min(limit, 500))
        states = [state] if state else None
        jobs = listed_jobs(session, rows, states, limit, max(0, offset))
        total = job_count(session, states)
        # each row's JSON made once (ListedRows), by pydantic's encoder (Rust): a
        # quarter of the time of json.dumps here
        body = b",".join(job.shown("json", row_json) for job in jobs)
        return Response(
            b'{"jobs":[' + body + b'],"total":' + str(total).encode() + b"}",
            media_type="application/json",
        )

    @app.get("/api/jobs/{job_id}", tags=["jobs"])
    def api_job(job_id: int, auth: ApiAuth) -> dict:
        """The job, with its live per-cycle figures (see /api/jobs/{job_id}/figures)."""
        job = get_job(job_id)
        return {**job_json(job, settings), "figures": job_figures(console_path(settings, job_id))}

    @app.post("/api/jobs/{job_id}/cancel", tags=["jobs"])
    def api_cancel(job_id: int, auth: ApiAuth) -> dict:
        job = get_job(job_id)
        owner_or_admin(auth, job)
        if job.state in FINISHED:
            raise HTTPException(409, f"job {job_id} is already {job.state}")
        request_cancel(db, job_id)
        return job_json(get_job(job_id), settings)

    @app.post("/api/jobs/{job_id}/replay", tags=["jobs"], status_code=201)
    def api_replay(job_id: int, auth: ApiAuth) -> dict:
        job = get_job(job_id)
        owner_or_admin(auth, job)
        new = replay_job(db, settings, auth.user, job)
        return job_json(get_job(new.id), settings)

    @app.delete("/api/jobs/{job_id}", tags=["jobs"])
    def api_delete(job_id: int, auth: ApiAuth) -> dict:
        job = get_job(job_id)
        owner_or_admin(auth, job)
        if job.state not in FINISHED:
            raise HTTPException(409, f"job {job_id} is {job.state}: cancel it first")
        delete_job(db, settings, job_id)
        return {"deleted": job_id}

    @app.get("/api/jobs/{job_id}/console", tags=["jobs"], response_class=PlainTextResponse)
    def api_console(job_id: int, auth: ApiAuth, offset: int = 0) -> Response:
        """The console from byte `offset`; X-Console-Offset is where to go on from."""
        job = get_job(job_id)
        data, end = _read_console(job_id, max(0, offset), 4 * 2**20)
        return PlainTextResponse(
            data.decode("utf-8", "replace"),
            headers={"X-Console-Offset": str(end), "X-Job-State": job.state},
        )

    def _read_console(job_id: int, offset: int, limit: int) -> tuple[bytes, int]:
        path = console_path(settings, job_id)
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(limit)
        except FileNotFoundError:
            return b"", offset
        return data, offset + len(data)

    def _state(job_id: int) -> str | None:
        with db.read() as session:
            return session.scalar(select(Job.state).where(Job.id == job_id))

    @app.get("/api/jobs/{job_id}/console/stream", tags=["jobs"])
    async def api_console_stream(
        job_id: int, request: Request, auth: ApiAuth, offset: int = 0
    ) -> StreamingResponse:
        """Server-sent events: one `line` event per console line (its id is the byte
        offset after it, for Last-Event-ID), then an `end` event with the job's state."""
        await run_in_threadpool(get_job, job_id)
        last = request.headers.get("last-event-id", "")
        start = int(last) if last.isdigit() else max(0, offset)

        async def events():  # type: ignore[no-untyped-def]
            position = start
            pending = b""
            checked = 0.0
            yield "retry: 1000\n\n"
            while True:
                # read in the event loop: a console is a local file, and a thread-pool
                # round trip per poll queues behind busy request threads under load
                data, end = _read_console(job_id, position, 2**16)
                if data:
                    pending += data
                    position = end
                    *lines, pending = pending.split(b"\n")
                    consumed = position - len(pending)
                    out = []
                    for line in lines:
                        text = line.decode("utf-8", "replace").replace("\r", "")
                        out.append(f"event: line\ndata: {text}\n\n")
                    if out:
                        out[-1] = out[-1][:-1] + f"id: {consumed}\n\n"
                        yield "".join(out)
                    continue
                now = time.monotonic()
                if now - checked >= 0.5:
                    checked = now
                    state = await run_in_threadpool(_state, job_id)
                    if state is None or state in FINISHED:
                        data, end = await run_in_threadpool(_read_console, job_id, position, 2**20)
                        if data:
                            continue
                        if pending:
                            yield f"event: line\ndata: {pending.decode('utf-8', 'replace')}\nid: {position}\n\n"
                        yield f"event: end\ndata: {state or 'deleted'}\n\n"
                        return
                if await request.is_disconnected():
                    return
                await asyncio.sleep(0.1)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # -- API: nodes and workers ----------------------------------------------

    def _nodes(auth: Auth, session: Session | None = None) -> list[dict]:
        """The nodes; their Ansible variables (which may hold secrets) for admins only."""
        now = time.time()
        with nullcontext(session) if session else db.read() as session:
            locks = node_locks(settings)
            nodes = [
                node_view(node_json(n, now), locks)
                for n in session.scalars(select(Node).order_by(Node.pool, Node.name))
            ]
        return nodes if auth.user.is_admin else [{**n, "vars": {}} for n in nodes]

    @app.get("/api/nodes", tags=["nodes"])
    def api_nodes(auth: ApiAuth) -> dict:
        """The nodes (their `vars` are shown to admins only)."""
        return {"nodes": _nodes(auth)}

    def _add_node(name: str, pool: str, variables: Any) -> dict:
        return add_nodes(db, settings, [name], pool, variables)[0]

    def _node_action(name: str, action: str) -> dict:
        with db.write() as session:
            node = session.scalar(select(Node).where(Node.name == name))
            if node is None:
                raise HTTPException(404, f"no node {name}")
            if action == "remove":
                if node.lease_job_id is not None and (node.lease_expires or 0) >= time.time():
                    raise HTTPException(
                        409,
                        f"node {name} runs job {node.lease_job_id}: disable it, or cancel the job",
                    )
                session.delete(node)
                forget_check(settings, name)
                return {"removed": name}
            if action == "enable":
                refuse_local(settings, node.name, node.vars)
            node.enabled = action == "enable"
            return node_json(node, time.time())

    @app.post("/api/nodes", tags=["nodes"], status_code=201)
    def api_add_node(body: NodeIn, auth: ApiAdmin) -> dict:
        return _add_node(body.name, body.pool, body.vars)

    @app.delete("/api/nodes/{name}", tags=["nodes"])
    def api_remove_node(name: str, auth: ApiAdmin) -> dict:
        return _node_action(name, "remove")

    @app.post("/api/nodes/{name}/enable", tags=["nodes"])
    def api_enable_node(name: str, auth: ApiAdmin) -> dict:
        return _node_action(name, "enable")

    def _node_run(name: str, action: str) -> dict:
        with db.read() as session:
            node = session.scalar(select(Node).where(Node.name == name))
        if node is None:
            raise HTTPException(404, f"no node {name}")
        if action == "check":
            return {"name": name, "action": action, **check_now(db, settings, node)}
        code, output = node_command(settings, node, action)
        return {"name": name, "action": action, "exit_code": code, "output": output}

    @app.post("/api/nodes/{name}/check", tags=["nodes"])
    def api_check_node(name: str, auth: ApiAdmin) -> dict:
        """`marteau nodes check` on the node: reachable, lock holder, version, clock."""
        return _node_run(name, "check")

    @app.post("/api/nodes/{name}/unlock", tags=["nodes"])
    def api_unlock_node(name: str, auth: ApiAdmin) -> dict:
        """`marteau nodes unlock --force` on the node (its lock, whoever holds it)."""
        return _node_run(name, "unlock")

    @app.post("/api/nodes/{name}/disable", tags=["nodes"])
    def api_disable_node(name: str, auth: ApiAdmin) -> dict:
        return _node_action(name, "disable")

    def _workers(session: Session | None = None) -> list[dict]:
        stale = time.time() - max(settings.lease_ttl, 10) * 2
        with nullcontext(session) if session else db.read() as session:
            rows = session.scalars(
                select(Worker)
                .where(Worker.stopped.is_(None), Worker.heartbeat >= stale)
                .order_by(Worker.started)
            ).all()
            return [
                {
                    "id": w.id,
                    "host": w.host,
                    "pid": w.pid,
                    "job": w.job_id,
                    "heartbeat": w.heartbeat,
                }
                for w in rows
            ]

    @app.get("/api/workers", tags=["nodes"])
    def api_workers(auth: ApiAuth) -> dict:
        return {"workers": _workers()}

    # -- pages -----------------------------------------------------------------

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)  # no icon; pages say so with `<link rel=icon href=data:,>`

    @app.post("/logout", include_in_schema=False)
    def logout(auth: FormAuth) -> Response:
        with db.write() as session:
            session.execute(LoginSession.__table__.delete().where(LoginSession.id == auth.login.id))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard(request: Request, auth: PageAuth) -> Response:
        return await run_read(db, _dashboard, request, auth)

    def _dashboard(session: Session, request: Request, auth: Auth) -> Response:
        """The page in one go: its reads (the lists need not agree to the instant) and
        the template."""
        queued = list(reversed(listed_jobs(session, rows, [QUEUED], 50)))
        running = listed_jobs(session, rows, [RUNNING], 50)
        finished = listed_jobs(session, rows, FINISHED, 20)
        nodes = _nodes(auth, session)
        workers = _workers(session)
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

    @app.get("/jobs/new", response_class=HTMLResponse, include_in_schema=False)
    def new_job_page(request: Request, auth: PageAuth) -> Response:
        return render(request, "job_new.html", auth, values={})

    async def job_form(request: Request) -> tuple[dict[str, str], tuple[str, bytes] | None]:
        """The new-job form's text fields, and its uploaded archive (name, bytes) if any;
        one byte over the upload limit is read so that the limit can be reported."""
        form = await request.form()
        fields = bounded_fields({k: v for k, v in form.items() if isinstance(v, str)})
        upload = form.get("archive")
        if upload is None or isinstance(upload, str) or not upload.filename:
            return fields, None
        return fields, (upload.filename, await upload.read(settings.max_upload_mb * 2**20 + 1))

    @app.post("/jobs", include_in_schema=False)
    async def new_job_submit(request: Request, auth: FormAuth) -> Response:
        fields, archive = await job_form(request)
        try:
            job = await run_in_threadpool(create_job, db, settings, auth.user, fields, archive)
        except MarteauError as exc:
            error = shown(str(exc), settings.data_dir)
            return render(request, "job_new.html", auth, status=400, values=fields, error=error)
        return RedirectResponse(f"/jobs/{job.id}", status_code=303)

    @app.post("/jobs/preview", include_in_schema=False)
    async def new_job_preview(request: Request, auth: FormAuth) -> Response:
        fields, archive = await job_form(request)
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
            target=_target_status(auth.user.id, preview),
            uploaded=bool(archive),
        )

    @app.get("/jobs/{job_id}", response_class=HTMLResponse, include_in_schema=False)
    def job_page(job_id: int, request: Request, auth: PageAuth) -> Response:
        runs: list[dict] = []
        job = get_job(job_id, runs)
        data, _end = _read_console(job_id, 0, 4 * 2**20)
        can_act = auth.user.is_admin or job.owner_id == auth.user.id
        return render(
            request,
            "job.html",
            auth,
            job=job,
            console=data.decode("utf-8", "replace"),
            console_end=_end,
            figures=job_view(console_path(settings, job_id)),
            can_act=can_act,
            runs=runs,
            duration=_duration(job),
            now=time.time(),
        )

    @app.post("/jobs/{job_id}/{action}", include_in_schema=False)
    def job_action(job_id: int, action: str, auth: FormAuth) -> Response:
        job = get_job(job_id)
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

    @app.get("/jobs/{job_id}/report", include_in_schema=False)
    def report_root(job_id: int, auth: ReaderAuth) -> Response:
        return RedirectResponse(f"/jobs/{job_id}/report/", status_code=303)

    @app.get("/jobs/{job_id}/report/{path:path}", include_in_schema=False)
    def report_file(job_id: int, path: str, auth: ReaderAuth) -> Response:
        target = safe_file(settings.job_dir(job_id) / "report", path)
        if target is None:
            raise HTTPException(404, "no such report file")
        return FileResponse(target)

    @app.get("/nodes", response_class=HTMLResponse, include_in_schema=False)
    def nodes_page(request: Request, auth: PageAuth) -> Response:
        return render(request, "nodes.html", auth, nodes=_nodes(auth), workers=_workers())

    @app.post("/nodes", include_in_schema=False)
    async def nodes_add(request: Request, auth: FormAuth) -> Response:
        if not auth.user.is_admin:
            raise HTTPException(403, "admins only")
        form = await request.form()
        try:
            await run_in_threadpool(
                add_nodes,
                db,
                settings,
                parse_host_list(str(form.get("name", ""))),
                str(form.get("pool", "") or "marteau"),
                str(form.get("vars", "")),
            )
        except MarteauError as exc:
            return render(
                request,
                "nodes.html",
                auth,
                status=400,
                nodes=_nodes(auth),
                workers=_workers(),
                error=str(exc),
            )
        return RedirectResponse("/nodes", status_code=303)

    @app.post("/nodes/{name}/{action}", include_in_schema=False)
    def nodes_action(name: str, action: str, request: Request, auth: FormAuth) -> Response:
        if not auth.user.is_admin:
            raise HTTPException(403, "admins only")
        if action in ("check", "unlock"):
            result = _node_run(name, action)
            return render(
                request, "nodes.html", auth, nodes=_nodes(auth), workers=_workers(), result=result
            )
        if action not in ("enable", "disable", "remove"):
            raise HTTPException(404, f"no action {action}")
        _node_action(name, action)
        return RedirectResponse("/nodes", status_code=303)

    @app.get("/account", response_class=HTMLResponse, include_in_schema=False)
    def account_page(request: Request, auth: PageAuth) -> Response:
        with db.read() as session:
            tokens = session.scalars(
                select(ApiToken).where(ApiToken.user_id == auth.user.id).order_by(ApiToken.id)
            ).all()
        return render(request, "account.html", auth, tokens=tokens, new_token=None)

    @app.post("/account/tokens", include_in_schema=False)
    async def account_new_token(request: Request, auth: FormAuth) -> Response:
        form = bounded_fields({k: str(v) for k, v in (await request.form()).items()})
        days = (form.get("expires_days") or "").strip()
        try:
            expires = float(days) if days else None
        except ValueError:
            raise MarteauError(f"expiry {days!r}: expected a number of days") from None
        token, _row = await run_in_threadpool(
            _new_token, auth, form.get("name") or "token", form.get("scope") or "submit", expires
        )
        with db.read() as session:
            tokens = session.scalars(
                select(ApiToken).where(ApiToken.user_id == auth.user.id).order_by(ApiToken.id)
            ).all()
        return render(request, "account.html", auth, tokens=tokens, new_token=token)

    @app.post("/account/tokens/{token_id}/revoke", include_in_schema=False)
    def account_revoke_token(token_id: int, auth: FormAuth) -> Response:
        with db.write() as session:
            row = session.get(ApiToken, token_id)
            if row is not None and row.user_id == auth.user.id:
                row.revoked = row.revoked or time.time()
        return RedirectResponse("/account", status_code=303)

    return app
