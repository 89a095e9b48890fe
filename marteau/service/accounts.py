"""Users (argon2 password hashes), login sessions and API tokens."""

from __future__ import annotations

import hashlib
import re
import secrets
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from marteau.errors import MarteauError
from marteau.service.models import ApiToken, LoginSession, User

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
    row = session.scalar(select(LoginSession).where(LoginSession.token_hash == sha256(token)))
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
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == sha256(token)))
    if row is None or row.revoked is not None:
        return None
    return row
