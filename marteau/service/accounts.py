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


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(user: User, password: str) -> bool:
    try:
        return _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


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


def authenticate(session: Session, email: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        _hasher.hash(password)  # the same time whether or not the user exists
        return None
    return user if check_password(user, password) else None


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


def create_token(session: Session, user: User, name: str) -> tuple[str, ApiToken]:
    """A new API token: (the token, shown once; row)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        name=name.strip()[:100] or "token",
        token_hash=sha256(token),
        prefix=token[:10],
        created=time.time(),
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
