"""What every route module shares: who is asking (login cookie with CSRF, or an API
token), the auth dependencies, and page rendering through the app's templates. Routes
live in `app` and in one module per topic that `app.create_app` includes."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import update
from starlette.concurrency import run_in_threadpool

from marteau.service import accounts
from marteau.service.db import Database
from marteau.service.models import ApiToken, LoginSession, User
from marteau.service.settings import Settings

COOKIE = "marteau_session"
LOGIN_CSRF = "marteau_login_csrf"
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


@dataclass
class Auth:
    user: User
    login: LoginSession | None  # None when authenticated by an API token

    @property
    def csrf(self) -> str:
        return self.login.csrf_token if self.login else ""


class LoginRequired(Exception):
    pass


def find_auth(request: Request) -> Auth | None:
    db: Database = request.app.state.db
    header = request.headers.get("authorization", "")
    with db.read() as session:
        if header.lower().startswith("bearer "):
            token = accounts.find_token(session, header[7:].strip())
            if token is None:
                return None
            user = token.user
            stale = token.last_used is None or token.last_used < time.time() - 60
            token_id = token.id
            auth = Auth(user=user, login=None)
        else:
            cookie = request.cookies.get(COOKIE)
            login = accounts.find_session(session, cookie) if cookie else None
            if login is None:
                return None
            return Auth(user=login.user, login=login)
    if stale:
        with db.write() as session:
            session.execute(
                update(ApiToken).where(ApiToken.id == token_id).values(last_used=time.time())
            )
    return auth


def api_auth(request: Request) -> Auth:
    auth = find_auth(request)
    if auth is None:
        raise HTTPException(401, "log in or send Authorization: Bearer <API token>")
    if request.method in UNSAFE and auth.login is not None:
        sent = request.headers.get("x-csrf-token", "")
        if not secrets.compare_digest(sent, auth.login.csrf_token):
            raise HTTPException(403, "missing or wrong X-CSRF-Token header")
    return auth


def api_admin(auth: Annotated[Auth, Depends(api_auth)]) -> Auth:
    if not auth.user.is_admin:
        raise HTTPException(403, "admins only")
    return auth


def page_auth(request: Request) -> Auth:
    auth = find_auth(request)
    if auth is None or auth.login is None:
        raise LoginRequired()
    return auth


async def form_auth(request: Request) -> Auth:
    """A logged-in user posting a form with the right CSRF token."""
    auth = await run_in_threadpool(find_auth, request)
    if auth is None or auth.login is None:
        raise LoginRequired()
    form = await request.form()
    if not secrets.compare_digest(str(form.get("csrf_token", "")), auth.login.csrf_token):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
    return auth


ApiAuth = Annotated[Auth, Depends(api_auth)]
ApiAdmin = Annotated[Auth, Depends(api_admin)]
PageAuth = Annotated[Auth, Depends(page_auth)]
FormAuth = Annotated[Auth, Depends(form_auth)]


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


def app_db(request: Request) -> Database:
    return request.app.state.db


def app_settings(request: Request) -> Settings:
    return request.app.state.settings
