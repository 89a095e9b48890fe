"""Bounds on what a user types into a job (and any other form): lengths, and no
credentials inside a git URL.

A field is refused past its length before anything looks at it, so no message,
database row or page holds more than that of it. A git URL's credentials
(`https://alice:token@host/...`) would be stored with the job and shown to every user
in the job lists and the console: the URL is refused, pointing at the way that keeps
the secret with the admin (docs/service.md, "Private repositories"). Rows stored
before that rule are shown redacted."""

from __future__ import annotations

import functools
from urllib.parse import urlsplit, urlunsplit

from marteau.errors import MarteauError

MAX_FIELD = {
    "git_url": 2048,
    "path": 4096,
    "ref": 255,
    "cycles": 200,
    "pool": 100,
    "script": 255,
    "test": 255,
    "label": 200,
    "url": 2048,
    "thresholds": 255,
    "name": 100,
}
MAX_OTHER = 1024  # any other form field (numbers, flags, CSRF tokens)
PRIVATE_REPOSITORIES = (
    "use a deploy key or an access token that the service's admin configures for git "
    "(docs/service.md, 'Private repositories')"
)


def bounded_fields(fields: dict[str, str]) -> dict[str, str]:
    """`fields` if each is within its length, else MarteauError naming the field."""
    for key, value in fields.items():
        limit = MAX_FIELD.get(key, MAX_OTHER)
        if len(value) > limit:
            raise MarteauError(f"{key}: at most {limit} characters, got {len(value)}")
    return fields


def check_no_credentials(url: str) -> None:
    """Refuse a git URL that carries a password or token: an http(s) URL with any
    user part, an ssh or git URL with a password (`ssh://git@host/...` names an
    account, not a secret, and stays)."""
    try:
        parts = urlsplit(url)
        secret = parts.password is not None or (
            parts.scheme.lower() in ("http", "https") and parts.username is not None
        )
    except ValueError:
        return  # not a URL: check_source says so
    if secret:
        raise MarteauError(
            f"{redacted(url)}: the git URL holds credentials, which would be stored with "
            f"the job and shown to other users: give it without them and {PRIVATE_REPOSITORIES}"
        )


@functools.lru_cache(maxsize=1024)
def redacted(url: str) -> str:
    """The URL with any password or http(s) user part replaced by `***`. Cached: a
    page of jobs shows the same few project URLs over and over."""
    try:
        parts = urlsplit(url)
        if parts.password is None and not (
            parts.scheme.lower() in ("http", "https") and parts.username
        ):
            return url
        host = parts.netloc.rpartition("@")[2]
        kept = parts.username if parts.scheme.lower() not in ("http", "https") else None
        netloc = f"{kept}:***@{host}" if kept else f"***@{host}"
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return url
