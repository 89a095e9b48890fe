"""User administration (admins only): the /users page (list, add, make or unmake
admin, reset a password, delete) and the same through the JSON API. Every form
carries the session's CSRF token (FormAuth)."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlalchemy import func, select

from marteau.errors import MarteauError
from marteau.service import accounts
from marteau.service.db import Database
from marteau.service.models import Job, User
from marteau.service.routes.deps import ApiAdmin, Auth, Db, FormAuth, PageAuth, render

router = APIRouter()
# what the page says after an action (redirect-after-post: `?done=<key>&who=<email>`);
# only these texts, so that a crafted link cannot put words in the service's mouth
NOTICES = {
    "added": "Added {who}.",
    "admin": "{who} is an admin now.",
    "user": "{who} is a user now.",
    "password": "New password set for {who}; their sessions were ended.",
    "deleted": "Deleted {who}.",
}


class UserChange(BaseModel):
    admin: bool | None = None
    password: str | None = None


def _admin(auth: Auth) -> Auth:
    if not auth.user.is_admin:
        raise HTTPException(403, "admins only")
    return auth


def user_json(user: User, jobs: int = 0) -> dict:
    return {
        "id": user.id,
        "email": user.email,
        "admin": user.is_admin,
        "created": user.created,
        "jobs": jobs,
    }


def _users(db: Database) -> list[dict]:
    with db.read() as session:
        counts = dict(
            session.execute(select(Job.owner_id, func.count(Job.id)).group_by(Job.owner_id)).all()
        )
        users = session.scalars(select(User).order_by(User.email)).all()
        return [user_json(user, counts.get(user.id, 0)) for user in users]


# -- API ---------------------------------------------------------------------------


@router.patch("/api/users/{user_id}", tags=["accounts"])
def api_change_user(user_id: int, body: UserChange, auth: ApiAdmin, db: Db) -> dict:
    """Make a user an admin or not (never yourself), and/or reset their password
    (which ends their login sessions)."""
    with db.write() as session:
        if body.password is not None:
            user = accounts.reset_password(session, user_id, body.password)
        if body.admin is not None:
            user = accounts.set_admin(session, user_id, body.admin, auth.user)
        if body.password is None and body.admin is None:
            raise MarteauError("give admin and/or password")
        return user_json(user)


@router.delete("/api/users/{user_id}", tags=["accounts"])
def api_delete_user(user_id: int, auth: ApiAdmin, db: Db) -> dict:
    """Delete a user (not yourself); their jobs stay, without an owner."""
    with db.write() as session:
        return {"deleted": accounts.delete_user(session, user_id, auth.user)}


# -- pages -------------------------------------------------------------------------


def _page(request: Request, auth: Auth, db: Database, status: int = 200, **context) -> Response:
    return render(request, "users.html", auth, status=status, users=_users(db), **context)


@router.get("/users", response_class=HTMLResponse, include_in_schema=False)
def users_page(request: Request, auth: PageAuth, db: Db, done: str = "", who: str = "") -> Response:
    notice = NOTICES[done].format(who=who[:254]) if done in NOTICES else ""
    return _page(request, _admin(auth), db, notice=notice)


def _done(key: str, email: str) -> Response:
    return RedirectResponse(f"/users?{urlencode({'done': key, 'who': email})}", status_code=303)


@router.post("/users", include_in_schema=False)
async def users_add(request: Request, auth: FormAuth, db: Db) -> Response:
    _admin(auth)
    form = await request.form()
    email = str(form.get("email", ""))
    try:
        with db.write() as session:
            user = accounts.create_user(
                session, email, str(form.get("password", "")), form.get("admin") == "1"
            )
            email = user.email
    except MarteauError as exc:
        return _page(request, auth, db, status=400, error=str(exc), email=email)
    return _done("added", email)


@router.post("/users/{user_id}/{action}", include_in_schema=False)
async def users_action(
    user_id: int, action: str, request: Request, auth: FormAuth, db: Db
) -> Response:
    _admin(auth)
    form = await request.form()
    try:
        with db.write() as session:
            if action in ("admin", "unadmin"):
                user = accounts.set_admin(session, user_id, action == "admin", auth.user)
                done, email = ("admin" if user.is_admin else "user"), user.email
            elif action == "password":
                user = accounts.reset_password(session, user_id, str(form.get("password", "")))
                done, email = "password", user.email
            elif action == "delete":
                done, email = "deleted", accounts.delete_user(session, user_id, auth.user)
            else:
                raise HTTPException(404, f"no action {action}")
    except MarteauError as exc:
        return _page(request, auth, db, status=400, error=str(exc))
    return _done(done, email)
