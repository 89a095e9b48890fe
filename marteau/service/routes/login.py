"""Logging in: the JSON API's `/api/login` and the login page, both through the app's
login gate (throttling, the bounded hashing pool: see login_gate)."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from marteau.service import accounts
from marteau.service.db import Database
from marteau.service.login_gate import Busy, LoginGate
from marteau.service.models import User
from marteau.service.routes.deps import COOKIE, LOGIN_CSRF, render
from marteau.service.settings import Settings

router = APIRouter()

EMAIL_MAX, PASSWORD_MAX = 254, 1024


class LoginIn(BaseModel):
    email: str = Field(max_length=EMAIL_MAX)
    password: str = Field(max_length=PASSWORD_MAX)


class Refused(Exception):
    """A login refused before its password was checked (throttled, or the pool full)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _open(db: Database, hours: float, user_id: int) -> tuple[str, dict] | None:
    """A session for the user whose password just matched; None if the account was
    deleted in between (a wrong login, not a 500)."""
    with db.write() as session:
        user = session.get(User, user_id)
        if user is None:
            return None
        token, login = accounts.open_session(session, user, hours)
        return token, {"email": user.email, "admin": user.is_admin, "csrf_token": login.csrf_token}


def _hash_of(db: Database, email: str) -> tuple[int, str] | None:
    with db.read() as session:
        return accounts.password_hash_of(session, email)


async def log_in(request: Request, email: str, password: str) -> tuple[str, dict] | None:
    """(session cookie token, the user as JSON) or None for a wrong email or password;
    Refused when the gate refuses the attempt."""
    gate: LoginGate = request.app.state.login_gate
    db: Database = request.app.state.db
    settings: Settings = request.app.state.settings
    email = email.strip().lower()
    address = client_address(request)
    wait = gate.retry_after(email, address)
    if wait:
        raise Refused(f"too many failed logins: try again in {wait} s", wait)
    found = await run_in_threadpool(_hash_of, db, email)
    try:
        ok = await gate.verify(found[1] if found else None, password)
    except Busy:
        raise Refused("too many logins at once: try again in a second", 1) from None
    if not ok or found is None:
        gate.failed(email, address)
        return None
    gate.succeeded(email)
    return await run_in_threadpool(_open, db, settings.session_hours, found[0])


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    settings: Settings = request.app.state.settings
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(settings.session_hours * 3600),
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )


@router.post("/api/login", tags=["accounts"])
async def api_login(body: LoginIn, request: Request) -> JSONResponse:
    """Open a login session: sets the session cookie; returns the CSRF token.
    429 with Retry-After when the account or the address failed too often lately."""
    try:
        opened = await log_in(request, body.email, body.password)
    except Refused as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
    if opened is None:
        raise HTTPException(401, "wrong email or password")
    token, data = opened
    response = JSONResponse(data)
    set_session_cookie(request, response, token)
    return response


def _local(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else "/"


def _login_form(request: Request, status: int = 200, **context: object) -> Response:
    """The login page with a fresh login CSRF token (cookie and form field)."""
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", None, status=status, login_csrf=token, **context)
    response.set_cookie(
        LOGIN_CSRF,
        token,
        httponly=True,
        samesite="lax",
        secure=request.app.state.settings.secure_cookies,
    )
    return response


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(request: Request, next: str = "/") -> Response:
    return _login_form(request, next=_local(next))


@router.post("/login", include_in_schema=False)
async def login_submit(
    request: Request,
    email: Annotated[str, Form(max_length=EMAIL_MAX)],
    password: Annotated[str, Form(max_length=PASSWORD_MAX)],
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2048)] = "/",
) -> Response:
    cookie = request.cookies.get(LOGIN_CSRF, "")
    if not cookie or not secrets.compare_digest(cookie, csrf_token):
        raise HTTPException(403, "missing or wrong CSRF token: reload the login page")
    try:
        opened = await log_in(request, email, password)
    except Refused as exc:
        response = _login_form(request, status=429, next=_local(next), error=f"{exc}.", email=email)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if opened is None:
        return _login_form(
            request, status=401, next=_local(next), error="Wrong email or password.", email=email
        )
    response = RedirectResponse(_local(next), status_code=303)
    set_session_cookie(request, response, opened[0])
    response.delete_cookie(LOGIN_CSRF)
    return response
