"""Users (argon2 password hashes), login sessions and API tokens."""

from __future__ import annotations

import hashlib
import re
import secrets
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, joinedload

from marteau.errors import MarteauError
from marteau.service.models import ApiToken, Job, LoginSession, User, VerifiedHost

_hasher = PasswordHasher()
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
TOKEN_PREFIX = "mt_"
SCOPES = ("read", "submit", "admin")  # each allows what the ones before it do
MAX_TOKEN_DAYS = 3650


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def create_user(session: Session, email: str, password: str, admin: bool = False) -> User:
    email = email.strip().lower()
    if not EMAIL.match(email):
        raise MarteauError(f"{email!r}: not an email address")
    if len(password) < 8:
        raise MarteauError("the password needs at least 8 characters")
    if session.scalar(select(User).where(User.email == email)):
        raise MarteauError(f"{email}: a user with this email exists")
    user = User(
        email=email, password_hash=hash_password(password), is_admin=admin, created=time.time()
    )
    session.add(user)
    session.flush()
    return user


def password_hash_of(session: Session, email: str) -> tuple[int, str] | None:
    """(user id, password hash) of the account with this email, if any."""
    row = session.execute(
        select(User.id, User.password_hash).where(User.email == email.strip().lower())
    ).first()
    return (row[0], row[1]) if row else None


def verify_hash(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches; for no account (None), a hash all the same, so that
    the answer takes as long whether or not the account exists. CPU-heavy (argon2):
    the login gate runs it in its own bounded pool."""
    if password_hash is None:
        _hasher.hash(password)
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def open_session(session: Session, user: User, hours: float) -> tuple[str, LoginSession]:
    """A new login session: (cookie token, row)."""
    token = secrets.token_urlsafe(32)
    now = time.time()
    row = LoginSession(
        user_id=user.id,
        token_hash=sha256(token),
        csrf_token=secrets.token_urlsafe(32),
        created=now,
        expires=now + hours * 3600,
    )
    session.add(row)
    session.flush()
    return token, row


def find_session(session: Session, token: str) -> LoginSession | None:
    row = session.scalar(
        select(LoginSession)
        .options(joinedload(LoginSession.user))  # every request needs the user: one query
        .where(LoginSession.token_hash == sha256(token))
    )
    if row is None or row.expires < time.time():
        return None
    return row


class TokenRefused(MarteauError):
    """A token of this scope may not be made by this caller."""


def scope_rank(scope: str) -> int:
    return SCOPES.index(scope)


def check_token_scope(user: User, scope: str, caller_scope: str) -> None:
    """Only an admin gets admin tokens; a caller cannot make a token wider than its own
    credential (`caller_scope`: a token's scope, or the user's role for a login)."""
    if scope not in SCOPES:
        raise MarteauError(f"scope {scope!r}: expected one of {', '.join(SCOPES)}")
    if scope == "admin" and not user.is_admin:
        raise TokenRefused("only an admin can create an admin token")
    if scope_rank(scope) > scope_rank(caller_scope):
        raise TokenRefused(f"a {caller_scope} credential cannot create a {scope} token")


def create_token(
    session: Session,
    user: User,
    name: str,
    scope: str = "submit",
    days: float | None = None,
) -> tuple[str, ApiToken]:
    """A new API token: (the token, shown once; row). `days`: it ends after them."""
    if days is not None and not 0 < days <= MAX_TOKEN_DAYS:
        raise MarteauError(f"expiry {days:g} days: expected more than 0, at most {MAX_TOKEN_DAYS}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = time.time()
    row = ApiToken(
        user_id=user.id,
        name=name.strip()[:100] or "token",
        token_hash=sha256(token),
        prefix=token[:10],
        created=now,
        scope=scope,
        expires=now + days * 86400 if days else None,
    )
    session.add(row)
    session.flush()
    return token, row


def find_token(session: Session, token: str) -> ApiToken | None:
    row = session.scalar(
        select(ApiToken)
        .options(joinedload(ApiToken.user))  # every request needs the user: one query
        .where(ApiToken.token_hash == sha256(token))
    )
    if row is None or row.revoked is not None:
        return None
    if row.expires is not None and row.expires < time.time():
        return None
    return row


def _other_user(session: Session, user_id: int, acting: User, what: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise MarteauError(f"no user {user_id}")
    if user.id == acting.id:
        raise MarteauError(f"you cannot {what} yourself: ask another admin")
    return user


def set_admin(session: Session, user_id: int, admin: bool, acting: User) -> User:
    """Make a user an admin or not; never the acting admin, so that an admin
    cannot lock the service out of its last admin by mistake."""
    user = _other_user(session, user_id, acting, "change the role of")
    user.is_admin = admin
    return user


def reset_password(session: Session, user_id: int, password: str) -> User:
    """Set a user's password and end their login sessions (a reset is often
    because the old one leaked). Their API tokens stay: revoke them apart."""
    user = session.get(User, user_id)
    if user is None:
        raise MarteauError(f"no user {user_id}")
    if len(password) < 8:
        raise MarteauError("the password needs at least 8 characters")
    user.password_hash = hash_password(password)
    session.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
    return user


def delete_user(session: Session, user_id: int, acting: User) -> str:
    """Delete a user (not the acting one): their sessions, tokens and verified hosts
    go with them; their jobs stay, without an owner. Returns the email."""
    user = _other_user(session, user_id, acting, "delete")
    email = user.email
    session.execute(update(Job).where(Job.owner_id == user.id).values(owner_id=None))
    for table in (LoginSession, ApiToken, VerifiedHost):  # whether or not the DB cascades
        session.execute(delete(table).where(table.user_id == user.id))
    session.execute(delete(User).where(User.id == user.id))
    return email
