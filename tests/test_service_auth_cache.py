"""The web process keeps who a login cookie or API token is for a few seconds
(auth_cache): every change this process commits to users, login sessions or tokens
takes effect on the next request, in this web process and in the others sharing its
data folder; one written by any other program within the cache's TTL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from fastapi import HTTPException  # noqa: E402
from sqlalchemy import delete, select  # noqa: E402

from marteau.service import accounts  # noqa: E402
from marteau.service.auth_cache import AuthCache  # noqa: E402
from marteau.service.db import Database, upgrade  # noqa: E402
from marteau.service.models import LoginSession, User  # noqa: E402
from marteau.service.routes.accounts import _new_token  # noqa: E402
from marteau.service.routes.deps import Auth  # noqa: E402
from marteau.service.routes.login import _open  # noqa: E402
from marteau.service.settings import Settings  # noqa: E402
from tests.support.live_app import PASSWORD, Uvicorn  # noqa: E402

ADMIN = "admin@example.org"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    upgrade(database, default_node=False)
    with database.write() as session:
        accounts.create_user(session, ADMIN, PASSWORD, admin=True)
        for name in ("alice", "bob", "carol", "dave"):
            accounts.create_user(session, f"{name}@example.org", PASSWORD)
    yield database
    database.dispose()


@pytest.fixture
def web(tmp_path: Path, db: Database) -> Iterator[Uvicorn]:
    with Uvicorn(Settings(data_dir=tmp_path / "data", database_url=db.url), db) as running:
        yield running


def cache_of(web: Uvicorn) -> AuthCache:
    return web.server.config.app.state.auth_cache


def user_id(admin: httpx.Client, email: str) -> int:
    return next(u["id"] for u in admin.get("/api/users").json()["users"] if u["email"] == email)


def test_changes_made_here_are_seen_by_the_next_request(web: Uvicorn) -> None:
    with (
        closing(web.client(ADMIN)) as admin,
        closing(web.client("alice@example.org")) as alice,
        closing(web.client("bob@example.org")) as bob,
        closing(web.client("carol@example.org")) as carol,
    ):
        for client in (admin, alice, bob, carol):  # each of them is in the cache now
            assert client.get("/api/me").status_code == 200
        token = alice.post("/api/tokens", json={"name": "ci"}).json()
        bearer = {"Authorization": f"Bearer {token['token']}"}
        assert httpx.get(f"{web.url}/api/me", headers=bearer).json()["email"] == "alice@example.org"

        assert alice.delete(f"/api/tokens/{token['id']}").status_code == 200
        assert httpx.get(f"{web.url}/api/me", headers=bearer).status_code == 401

        assert alice.post("/api/logout").status_code == 200
        assert alice.get("/api/me").status_code == 401
        assert alice.get("/", follow_redirects=False).status_code == 303

        changed = admin.patch(
            f"/api/users/{user_id(admin, 'bob@example.org')}", json={"password": "new-password-2"}
        )
        assert changed.status_code == 200, changed.text
        assert bob.get("/api/me").status_code == 401

        assert admin.delete(f"/api/users/{user_id(admin, 'carol@example.org')}").status_code == 200
        assert carol.get("/api/me").status_code == 401

        # an admin made a user again: their next request is refused the admin pages
        with closing(web.client("dave@example.org")) as dave:
            dave_id = user_id(admin, "dave@example.org")
            assert admin.patch(f"/api/users/{dave_id}", json={"admin": True}).status_code == 200
            assert dave.get("/api/users").status_code == 200
            assert admin.patch(f"/api/users/{dave_id}", json={"admin": False}).status_code == 200
            assert dave.get("/api/users").status_code == 403


def test_changes_of_another_process_are_seen_after_the_ttl(web: Uvicorn, db: Database) -> None:
    other_process = Database(db.url)  # its commits do not reach this process's cache
    try:
        cache_of(web).ttl = 3600  # however slow this machine is
        with closing(web.client("alice@example.org")) as alice:
            assert alice.get("/api/me").status_code == 200
            with other_process.write() as session:
                session.execute(delete(LoginSession))
            # within the TTL the cached login still answers: the documented bound
            assert alice.get("/api/me").status_code == 200
            cache_of(web).ttl = 0  # the TTL is over
            assert alice.get("/api/me").status_code == 401
    finally:
        other_process.dispose()


def test_changes_of_another_web_process_hold_at_once(tmp_path: Path, db: Database) -> None:
    """Two web apps on one database and data folder, as `serve --web-processes 2` runs
    them, each with its own engine: what one commits, the other's cache drops at once."""
    settings = Settings(data_dir=tmp_path / "data", database_url=db.url)
    second_db = Database(db.url)
    try:
        with Uvicorn(settings, db) as first, Uvicorn(settings, second_db) as second:
            cache_of(first).ttl = cache_of(second).ttl = 3600  # however slow this machine is
            with (
                closing(first.client("alice@example.org")) as alice,
                closing(first.client("bob@example.org")) as bob,
                closing(second.client(ADMIN)) as admin,
                closing(second.client("alice@example.org")) as alice_there,
            ):
                token = alice.post("/api/tokens", json={"name": "ci"}).json()
                bearer = {"Authorization": f"Bearer {token['token']}"}
                assert httpx.get(f"{first.url}/api/me", headers=bearer).status_code == 200
                assert bob.get("/api/me").status_code == 200  # both cached in the first

                revoked = alice_there.delete(f"/api/tokens/{token['id']}")
                assert revoked.status_code == 200
                assert httpx.get(f"{first.url}/api/me", headers=bearer).status_code == 401

                bob_id = user_id(admin, "bob@example.org")
                assert admin.delete(f"/api/users/{bob_id}").status_code == 200
                assert bob.get("/api/me").status_code == 401
                assert alice.get("/api/me").status_code == 200  # a new lookup, still valid
    finally:
        second_db.dispose()


def test_an_account_deleted_between_its_check_and_its_use_is_refused_not_a_500(
    db: Database,
) -> None:
    """The login's password check and the session it opens, a caller's authentication
    and the token it asks for, are two transactions: an admin may delete the account in
    between.  The login is then a wrong one, the token a 401."""
    with db.read() as session:
        alice = session.scalars(select(User).where(User.email == "alice@example.org")).one()
        admin = session.scalars(select(User).where(User.email == ADMIN)).one()
        session.expunge_all()
    assert _open(db, 1.0, alice.id) is not None
    with db.write() as session:
        accounts.delete_user(session, alice.id, admin)
    assert _open(db, 1.0, alice.id) is None
    with pytest.raises(HTTPException) as refused:
        _new_token(db, Auth(alice, None), "ci", "submit", None)
    assert refused.value.status_code == 401
    assert "no longer exists" in refused.value.detail
