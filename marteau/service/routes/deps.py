"""What every route module shares: who is asking (login cookie with CSRF, or an API
token), the auth dependencies, the app's database and settings as dependencies, and
the pages' templates and their rendering. The routes live in one module per resource
in this package; `marteau.service.app.create_app` includes them."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import update
from starlette.concurrency import run_in_threadpool

from marteau import __version__
from marteau.service import accounts
from marteau.service.auth_cache import AuthCache
from marteau.service.comparisons import change_text, figure_text
from marteau.service.db import Database
from marteau.service.figure_cells import change_badge, figure_cells
from marteau.service.messages import shown
from marteau.service.models import ApiToken, Job, LoginSession, User
from marteau.service.settings import Settings

COOKIE = "marteau_session"
LOGIN_CSRF = "marteau_login_csrf"
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
SERVICE = Path(__file__).resolve().parent.parent  # marteau/service: templates/, static/
T = TypeVar("T")


@dataclass
class Auth:
    user: User
    login: LoginSession | None  # None when authenticated by an API token
    scope: str | None = None  # an API token's scope; None for a login (the user's role)

    @property
    def csrf(self) -> str:
        return self.login.csrf_token if self.login else ""

    @property
    def effective_scope(self) -> str:
        return self.scope or ("admin" if self.user.is_admin else "submit")

    def allows(self, scope: str) -> bool:
        return accounts.scope_rank(self.effective_scope) >= accounts.scope_rank(scope)


class LoginRequired(Exception):
    pass


TOKEN_TOUCH = 60.0  # seconds between two writes of an API token's last_used


@dataclass(frozen=True)
class Known:
    """A cached caller (see auth_cache): the auth and, for a token, its last use."""

    auth: Auth
    token_id: int | None = None
    token_used: float | None = None

    def token_stale(self) -> bool:
        return self.token_id is not None and (self.token_used or 0) < time.time() - TOKEN_TOUCH


def credential(request: Request) -> tuple[str, str] | None:
    """("token", API token) or ("login", session cookie), or None."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return "token", header[7:].strip()
    cookie = request.cookies.get(COOKIE)
    return ("login", cookie) if cookie else None


def _cache_key(kind: str, secret: str) -> str:
    return f"{kind}:{accounts.sha256(secret)}"


def cached_auth(request: Request) -> Auth | None:
    """The caller from this process's auth cache; None if the database must be asked."""
    found = credential(request)
    if found is None:
        return None
    known: Known | None = request.app.state.auth_cache.get(_cache_key(*found))
    return None if known is None or known.token_stale() else known.auth


def find_auth(request: Request) -> Auth | None:
    """The caller from the database (kept in the auth cache); None if unknown."""
    found = credential(request)
    if found is None:
        return None
    kind, secret = found
    db: Database = request.app.state.db
    cache: AuthCache = request.app.state.auth_cache
    generation = cache.generation()
    with db.read() as session:
        if kind == "token":
            token = accounts.find_token(session, secret)
            if token is None:
                return None
            known = Known(Auth(token.user, None, token.scope), token.id, token.last_used)
            expires = token.expires
        else:
            login = accounts.find_session(session, secret)
            if login is None:
                return None
            known, expires = Known(Auth(user=login.user, login=login)), login.expires
    if known.token_stale():
        now = time.time()
        with db.write() as session:
            session.execute(
                update(ApiToken).where(ApiToken.id == known.token_id).values(last_used=now)
            )
        known = Known(known.auth, known.token_id, now)
        generation = cache.generation()
    cache.put(_cache_key(kind, secret), known, generation, expires)
    return known.auth


async def run_read(db: Database, function: Callable[..., T], *args: Any) -> T:
    """Run a hot page's or list's reads and rendering, `function(session, *args)`, in
    the event loop, with no hop to the thread pool: under load the hop cost as much
    CPU as the request (the GIL handed between the loop and the thread at each step;
    bench/service.py: 3.6 ms per request with the hop, 1.8 ms without). On SQLite
    with a plain session, without a transaction: a few indexed statements on a local
    file, where WAL readers never wait for a writer. On a networked database through
    SQLAlchemy's asyncio session (`run_sync`: the same code, each round trip awaited),
    so that the loop serves other requests meanwhile."""
    if db.is_sqlite:
        with db.read(snapshot=False) as session:
            return function(session, *args)
    async with db.async_read() as session:
        return await session.run_sync(function, *args)


async def resolve_auth(request: Request) -> Auth | None:
    """The caller: from the cache in the event loop, else one hop to the database."""
    if credential(request) is None:
        return None
    return cached_auth(request) or await run_in_threadpool(find_auth, request)


async def api_auth(request: Request) -> Auth:
    auth = await resolve_auth(request)
    if auth is None:
        raise HTTPException(401, "log in or send Authorization: Bearer <API token>")
    if request.method in UNSAFE and auth.login is not None:
        sent = request.headers.get("x-csrf-token", "")
        if not secrets.compare_digest(sent, auth.login.csrf_token):
            raise HTTPException(403, "missing or wrong X-CSRF-Token header")
    if request.method in UNSAFE and not auth.allows("submit"):
        raise HTTPException(403, "this API token's scope is read: it cannot change anything")
    return auth


async def api_admin(auth: Annotated[Auth, Depends(api_auth)]) -> Auth:
    if not auth.user.is_admin:
        raise HTTPException(403, "admins only")
    if not auth.allows("admin"):
        raise HTTPException(403, f"this API token's scope is {auth.scope}: admin routes need admin")
    return auth


async def page_auth(request: Request) -> Auth:
    auth = await resolve_auth(request)
    if auth is None or auth.login is None:
        raise LoginRequired()
    return auth


async def reader_auth(request: Request) -> Auth:
    """A page a `read` API token may fetch too (a report): a login or any token."""
    auth = await resolve_auth(request)
    if auth is None:
        if (credential(request) or ("",))[0] == "token":
            raise HTTPException(401, "unknown, revoked or expired API token")
        raise LoginRequired()
    return auth


async def form_auth(request: Request) -> Auth:
    """A logged-in user posting a form with the right CSRF token."""
    auth = await resolve_auth(request)
    if auth is None or auth.login is None:
        raise LoginRequired()
    form = await request.form()
    if not secrets.compare_digest(str(form.get("csrf_token", "")), auth.login.csrf_token):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
    return auth


ApiAuth = Annotated[Auth, Depends(api_auth)]
ApiAdmin = Annotated[Auth, Depends(api_admin)]
PageAuth = Annotated[Auth, Depends(page_auth)]
ReaderAuth = Annotated[Auth, Depends(reader_auth)]
FormAuth = Annotated[Auth, Depends(form_auth)]


def when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


def duration_text(job: Job) -> str:
    """How long the job ran (runs, while it does): M:SS, or H:MM:SS past an hour."""
    if not job.started:
        return ""
    seconds = int((job.ended or time.time()) - job.started)
    return (
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )


def page_templates(settings: Settings) -> Jinja2Templates:
    """The pages' templates with their filters and globals. `shown_row` renders a
    job list's row once per row (`ListedJob.shown`: a finished job's row is shared by
    the requests) with the `job_row` macro of `_jobs.html`; it is set before that
    module is first made, as the module's context is a copy of the globals then."""
    templates = Jinja2Templates(directory=str(SERVICE / "templates"))
    templates.env.filters["when"] = when
    templates.env.globals["duration"] = duration_text
    templates.env.filters["shown"] = lambda text: shown(text or "", settings.data_dir)
    templates.env.globals["version"] = __version__
    templates.env.globals.update(
        figure_text=figure_text,
        change_text=change_text,
        change_badge=change_badge,
        figure_cells=figure_cells,
    )
    templates.env.globals["shown_row"] = lambda job: job.shown("html", job_row)
    # a template's module has its macros as attributes, which Jinja2's types cannot list
    job_row: Callable[..., Any] = templates.env.get_template("_jobs.html").module.job_row  # type: ignore[attr-defined]
    return templates


def render(
    request: Request, name: str, auth: Auth | None, status: int = 200, **context: Any
) -> Response:
    """A page from the service's templates, with the user and the CSRF token for its forms."""
    return request.app.state.templates.TemplateResponse(
        request,
        name,
        {"auth": auth, "csrf": auth.csrf if auth else "", **context},
        status_code=status,
    )


async def app_db(request: Request) -> Database:
    return request.app.state.db


async def app_settings(request: Request) -> Settings:
    return request.app.state.settings


# async: a sync dependency would cost each request a hop to the thread pool
Db = Annotated[Database, Depends(app_db)]
Config = Annotated[Settings, Depends(app_settings)]
