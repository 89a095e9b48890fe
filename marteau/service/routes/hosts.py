"""Routes of verified hosts: the JSON API under /api/hosts and the /hosts page.

Every user sees and acts on their own hosts only; another user's host answers 404."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from marteau.errors import MarteauError
from marteau.service import hosts
from marteau.service.db import Database
from marteau.service.models import VerifiedHost
from marteau.service.routes.deps import ApiAuth, Auth, Config, Db, FormAuth, PageAuth, render
from marteau.service.settings import Settings

router = APIRouter()


class HostIn(BaseModel):
    host: str = Field(description="HOST or HOST:PORT (a DNS name or an IP address)")


def _own(db: Database, auth: Auth, host_id: int) -> VerifiedHost:
    row = hosts.get_host(db, auth.user.id, host_id)
    if row is None:
        raise HTTPException(404, f"no host {host_id} of yours")
    return row


# -- API -------------------------------------------------------------------------


@router.get("/api/hosts", tags=["hosts"])
def api_hosts(auth: ApiAuth, db: Db, settings: Config) -> dict:
    """The caller's hosts, their status and the ways to prove ownership."""
    return {
        "enforced": settings.hosts_enforced,
        "hosts": [hosts.host_json(row, settings) for row in hosts.user_hosts(db, auth.user.id)],
    }


@router.post("/api/hosts", tags=["hosts"], status_code=201)
def api_add_host(body: HostIn, auth: ApiAuth, db: Db, settings: Config) -> dict:
    """Register a host: the answer holds the token to publish; 400 past the caller's
    `max_hosts_per_user`."""
    row = hosts.add_host(db, auth.user.id, body.host, settings.max_hosts_per_user)
    return hosts.host_json(row, settings)


@router.post("/api/hosts/{host_id}/verify", tags=["hosts"])
def api_verify_host(host_id: int, auth: ApiAuth, db: Db, settings: Config) -> dict:
    """Check every way of proving ownership now; `status` and `last_error` tell the outcome."""
    try:
        row = hosts.check_host(db, settings, _own(db, auth, host_id))
    except hosts.CheckedRecently as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": f"{exc.wait:.0f}"}) from exc
    return hosts.host_json(row, settings)


@router.delete("/api/hosts/{host_id}", tags=["hosts"])
def api_remove_host(host_id: int, auth: ApiAuth, db: Db) -> dict:
    if not hosts.remove_host(db, auth.user.id, host_id):
        raise HTTPException(404, f"no host {host_id} of yours")
    return {"deleted": host_id}


# -- page --------------------------------------------------------------------------


def _page(
    request: Request, auth: Auth, db: Database, settings: Settings, status: int = 200, **extra
) -> Response:
    rows = [hosts.host_json(row, settings) for row in hosts.user_hosts(db, auth.user.id)]
    return render(
        request,
        "hosts.html",
        auth,
        status=status,
        hosts=rows,
        enforced=settings.hosts_enforced,
        days=settings.verification_days,
        **extra,
    )


@router.get("/hosts", response_class=HTMLResponse, include_in_schema=False)
def hosts_page(request: Request, auth: PageAuth, db: Db, settings: Config) -> Response:
    return _page(request, auth, db, settings)


@router.post("/hosts", include_in_schema=False)
async def hosts_add(request: Request, auth: FormAuth, db: Db, settings: Config) -> Response:
    form = await request.form()
    text = str(form.get("host", ""))
    try:
        row = await run_in_threadpool(
            hosts.add_host, db, auth.user.id, text, settings.max_hosts_per_user
        )
    except MarteauError as exc:
        return await run_in_threadpool(
            _page, request, auth, db, settings, 400, error=str(exc), value=text
        )
    return RedirectResponse(f"/hosts#host-{row.id}", status_code=303)


@router.post("/hosts/{host_id}/verify", include_in_schema=False)
def hosts_verify(
    request: Request, host_id: int, auth: FormAuth, db: Db, settings: Config
) -> Response:
    try:
        hosts.check_host(db, settings, _own(db, auth, host_id))
    except hosts.CheckedRecently as exc:
        return _page(request, auth, db, settings, 429, error=str(exc))
    return RedirectResponse(f"/hosts#host-{host_id}", status_code=303)


@router.post("/hosts/{host_id}/remove", include_in_schema=False)
def hosts_remove(host_id: int, auth: FormAuth, db: Db) -> Response:
    if not hosts.remove_host(db, auth.user.id, host_id):
        raise HTTPException(404, f"no host {host_id} of yours")
    return RedirectResponse("/hosts", status_code=303)
