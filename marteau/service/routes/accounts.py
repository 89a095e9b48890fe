"""The caller's own account: who they are, their API tokens (the JSON API and the
/account page), logging out; and adding a user through the JSON API (admins; the
/users page and the rest of user administration: `users`)."""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from marteau.errors import MarteauError
from marteau.service import accounts
from marteau.service.accounts import MAX_TOKEN_DAYS, TokenRefused
from marteau.service.db import Database
from marteau.service.job_fields import bounded_fields
from marteau.service.models import ApiToken, LoginSession, User
from marteau.service.routes.deps import (
    COOKIE,
    ApiAdmin,
    ApiAuth,
    Auth,
    Db,
    FormAuth,
    PageAuth,
    render,
)
from marteau.service.routes.login import EMAIL_MAX, PASSWORD_MAX

router = APIRouter()


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


def _new_token(
    db: Database, auth: Auth, name: str, scope: str, days: float | None
) -> tuple[str, dict]:
    try:
        accounts.check_token_scope(auth.user, scope, auth.effective_scope)
    except TokenRefused as exc:
        raise HTTPException(403, str(exc)) from None
    with db.write() as session:
        user = session.get(User, auth.user.id)
        if user is None:  # deleted since it was authenticated
            raise HTTPException(401, "this account no longer exists")
        token, row = accounts.create_token(session, user, name, scope, days)
        return token, _token_json(row)


def _own_tokens(db: Database, auth: Auth) -> list[ApiToken]:
    with db.read() as session:
        return list(
            session.scalars(
                select(ApiToken).where(ApiToken.user_id == auth.user.id).order_by(ApiToken.id)
            ).all()
        )


def _log_out(db: Database, auth: Auth) -> None:
    """End the caller's login session (its cookie is deleted by the answer)."""
    if auth.login is not None:
        with db.write() as session:
            # a mapped class's __table__ is typed FromClause; it is the Table
            table = LoginSession.__table__
            session.execute(table.delete().where(LoginSession.id == auth.login.id))  # type: ignore[attr-defined]


# -- API -------------------------------------------------------------------------


@router.post("/api/logout", tags=["accounts"])
def api_logout(auth: ApiAuth, db: Db) -> JSONResponse:
    _log_out(db, auth)
    response = JSONResponse({"ok": True})
    response.delete_cookie(COOKIE)
    return response


@router.get("/api/me", tags=["accounts"])
def api_me(auth: ApiAuth) -> dict:
    return {
        "email": auth.user.email,
        "admin": auth.user.is_admin,
        "csrf_token": auth.csrf or None,
    }


@router.get("/api/users", tags=["accounts"])
def api_users(auth: ApiAdmin, db: Db) -> dict:
    with db.read() as session:
        users = session.scalars(select(User).order_by(User.email)).all()
        return {"users": [{"id": u.id, "email": u.email, "admin": u.is_admin} for u in users]}


@router.post("/api/users", tags=["accounts"], status_code=201)
def api_add_user(body: UserIn, auth: ApiAdmin, db: Db) -> dict:
    with db.write() as session:
        user = accounts.create_user(session, body.email, body.password, body.admin)
        return {"id": user.id, "email": user.email, "admin": user.is_admin}


@router.get("/api/tokens", tags=["accounts"])
def api_tokens(auth: ApiAuth, db: Db) -> dict:
    return {"tokens": [_token_json(t) for t in _own_tokens(db, auth)]}


@router.post("/api/tokens", tags=["accounts"], status_code=201)
def api_new_token(body: TokenIn, auth: ApiAuth, db: Db) -> dict:
    """A new API token for the caller; the token itself is shown only in this answer.
    Only an admin gets an `admin` token, and never one wider than the asking token."""
    token, row = _new_token(db, auth, body.name, body.scope, body.expires_days)
    return {**row, "token": token}


@router.delete("/api/tokens/{token_id}", tags=["accounts"])
def api_revoke_token(token_id: int, auth: ApiAuth, db: Db) -> dict:
    with db.write() as session:
        row = session.get(ApiToken, token_id)
        if row is None or (row.user_id != auth.user.id and not auth.user.is_admin):
            raise HTTPException(404, f"no token {token_id}")
        row.revoked = row.revoked or time.time()
        return _token_json(row)


# -- pages -----------------------------------------------------------------------


@router.post("/logout", include_in_schema=False)
def logout(auth: FormAuth, db: Db) -> Response:
    _log_out(db, auth)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@router.get("/account", response_class=HTMLResponse, include_in_schema=False)
def account_page(request: Request, auth: PageAuth, db: Db) -> Response:
    return render(request, "account.html", auth, tokens=_own_tokens(db, auth), new_token=None)


@router.post("/account/tokens", include_in_schema=False)
async def account_new_token(request: Request, auth: FormAuth, db: Db) -> Response:
    form = bounded_fields({k: str(v) for k, v in (await request.form()).items()})
    days = (form.get("expires_days") or "").strip()
    try:
        expires = float(days) if days else None
    except ValueError:
        raise MarteauError(f"expiry {days!r}: expected a number of days") from None
    name, scope = form.get("name") or "token", form.get("scope") or "submit"
    token, _row = await run_in_threadpool(_new_token, db, auth, name, scope, expires)
    return render(request, "account.html", auth, tokens=_own_tokens(db, auth), new_token=token)


@router.post("/account/tokens/{token_id}/revoke", include_in_schema=False)
def account_revoke_token(token_id: int, auth: FormAuth, db: Db) -> Response:
    with db.write() as session:
        row = session.get(ApiToken, token_id)
        if row is not None and row.user_id == auth.user.id:
            row.revoked = row.revoked or time.time()
    return RedirectResponse("/account", status_code=303)
