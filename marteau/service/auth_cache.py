"""Who a login cookie or API token is, kept a few seconds: without it every request
reads its login session (or token) and user from the database, a quarter of a page's
CPU under load.

An entry lives `TTL` seconds. A commit of this process that changes a user, a login
session or an API token (a logout, a revoked token, a password reset, a deleted user,
a role or quota change) makes every entry read before it stale at once
(`Database.auth_generation`). Such a change made by another process (another web
process of `--web-processes`, any program writing the database) is seen within `TTL`. Only found credentials are
kept, so a new login or a wrong token always reaches the database."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from marteau.service.db import Database

TTL = 5.0
MAX_ENTRIES = 10_000  # then start afresh: bounds the memory a flood of logins could take


@dataclass(frozen=True)
class Entry:
    value: Any
    generation: int
    fetched: float  # time.monotonic()
    expires: float | None  # time.time() when the credential ends (a login session), or None


class AuthCache:
    def __init__(self, db: Database, ttl: float = TTL) -> None:
        self.db = db
        self.ttl = ttl
        self._entries: dict[str, Entry] = {}

    def generation(self) -> int:
        """Read it before the database: `put` keeps nothing read before a change."""
        return self.db.auth_generation

    def get(self, key: str) -> Any | None:
        entry = self._entries.get(key)
        if (
            entry is None
            or entry.generation != self.db.auth_generation
            or time.monotonic() - entry.fetched > self.ttl
            or (entry.expires is not None and entry.expires < time.time())
        ):
            return None
        return entry.value

    def put(self, key: str, value: Any, generation: int, expires: float | None) -> None:
        if generation != self.db.auth_generation or self.ttl <= 0:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries = {}
        self._entries[key] = Entry(value, generation, time.monotonic(), expires)
