"""Routes for quotas and cost: the profile page (usage against every quota, the month's
spend, deleting old reports), the admin's usage page (spend per user and per pool,
quota overrides per user), and the same in the JSON API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from marteau.errors import MarteauError
from marteau.service import cost, quotas
from marteau.service.db import Database
from marteau.service.models import User
from marteau.service.routes.deps import (
    ApiAdmin,
    ApiAuth,
    Auth,
    Config,
    Db,
    FormAuth,
    PageAuth,
    render,
)
from marteau.service.settings import Settings

router = APIRouter(tags=["quotas"])


def _user(db: Database, user_id: int) -> User:
    with db.read() as session:
        user = session.get(User, user_id)
    if user is None:
        raise HTTPException(404, f"no user {user_id}")
    return user


def _quotas_json(db: Database, settings: Settings, user: User) -> dict[str, Any]:
    with db.read() as session:
        user = session.get(User, user.id) or user
        spent, pending = cost.month_spend(session, user.id)
        return {
            "user": user.email,
            "enforced": settings.quotas_enforced,
            "quotas": quotas.usage(session, settings, user),
            "overrides": dict(user.quotas or {}),
            "prune": quotas.prunes(user),
            "month": cost.month_label(),
            "spent": round(spent, 4),
            "pending": round(pending, 4),
        }


def _set_overrides(db: Database, user_id: int, values: dict[str, Any]) -> dict[str, Any]:
    overrides = quotas.check_quota_overrides(values)
    with db.write() as session:
        user = session.get(User, user_id)
        if user is None:
            raise HTTPException(404, f"no user {user_id}")
        user.quotas = overrides
        return {"id": user.id, "email": user.email, "quotas": dict(overrides)}


# -- API -----------------------------------------------------------------------------


@router.get("/api/quotas")
def api_quotas(auth: ApiAuth, db: Db, settings: Config, user_id: int | None = None) -> dict:
    """Your usage against every quota (an admin may ask for another user's)."""
    if user_id is not None and user_id != auth.user.id:
        if not auth.user.is_admin:
            raise HTTPException(403, "admins only")
        return _quotas_json(db, settings, _user(db, user_id))
    return _quotas_json(db, settings, auth.user)


@router.get("/api/costs")
def api_costs(auth: ApiAuth, db: Db, settings: Config) -> dict:
    """The month's spend: yours, and for an admin per user and per pool."""
    with db.read() as session:
        spent, pending = cost.month_spend(session, auth.user.id)
        report = cost.spend_report(session) if auth.user.is_admin else {}
    return {
        "month": cost.month_label(),
        **report,
        "spent": round(spent, 4),
        "pending": round(pending, 4),
    }


@router.put("/api/users/{user_id}/quotas")
def api_set_quotas(
    user_id: int,
    auth: ApiAdmin,
    db: Db,
    values: Annotated[
        dict[str, Any],
        Body(description="quota name -> limit (0 = no limit, null = the default); prune: bool"),
    ],
) -> dict:
    """Replace a user's quota overrides."""
    return _set_overrides(db, user_id, values)


# -- pages ---------------------------------------------------------------------------


def _profile(request: Request, auth: Auth, db: Database, settings: Settings, **extra: Any):
    data = _quotas_json(db, settings, auth.user)
    with db.read() as session:
        reports = quotas.finished_jobs_by_size(session, settings, auth.user.id)
    return render(request, "profile.html", auth, usage=data, reports=reports, **extra)


@router.get("/profile", response_class=HTMLResponse, include_in_schema=False)
def profile_page(request: Request, auth: PageAuth, db: Db, settings: Config) -> Response:
    return _profile(request, auth, db, settings)


@router.post("/profile/reports/delete", include_in_schema=False)
async def profile_delete_reports(
    request: Request, auth: FormAuth, db: Db, settings: Config
) -> Response:
    form = await request.form()
    ids = [int(str(v)) for v in form.getlist("job") if str(v).isdigit()]
    freed = quotas.free_reports(db, settings, auth.user.id, ids)
    message = f"Deleted the files of {len(freed)} job(s)." if freed else "Nothing deleted."
    return _profile(request, auth, db, settings, notice=message)


def _admin_page(request: Request, auth: Auth, db: Database, settings: Settings, **extra: Any):
    with db.read() as session:
        report = cost.spend_report(session)
        users = session.scalars(select(User).order_by(User.email)).all()
    return render(
        request,
        "usage_admin.html",
        auth,
        report=report,
        users=users,
        names=quotas.QUOTAS,
        defaults=quotas.limits(settings, None),
        enforced=settings.quotas_enforced,
        **extra,
    )


@router.get("/admin/usage", response_class=HTMLResponse, include_in_schema=False)
def admin_usage_page(request: Request, auth: PageAuth, db: Db, settings: Config) -> Response:
    if not auth.user.is_admin:
        raise HTTPException(403, "admins only")
    return _admin_page(request, auth, db, settings)


@router.post("/admin/users/{user_id}/quotas", include_in_schema=False)
async def admin_set_quotas(
    user_id: int, request: Request, auth: FormAuth, db: Db, settings: Config
) -> Response:
    if not auth.user.is_admin:
        raise HTTPException(403, "admins only")
    form = await request.form()
    values: dict[str, Any] = {q.name: str(form.get(q.name, "")).strip() for q in quotas.QUOTAS}
    values[quotas.PRUNE] = form.get(quotas.PRUNE) == "1"
    try:
        _set_overrides(db, user_id, values)
    except MarteauError as exc:
        return _admin_page(request, auth, db, settings, status=400, error=str(exc))
    return RedirectResponse("/admin/usage", status_code=303)
