"""Who a login cookie or API token is, kept a few seconds: without it every request
reads its login session (or token) and user from the database, a quarter of a page's
CPU under load.

An entry lives `TTL` seconds. A commit of this process that changes a user, a login
session or an API token (a logout, a revoked token, a password reset, a deleted user,
a role or quota change) makes every entry read before it stale at once
(`Database.auth_generation`), and replaces the stamp file in the data folder: the other
web processes of `--web-processes` look at it (one `stat`) on every lookup, so such a
change holds there at once too. A change written by any other program is seen within
`TTL`. Only found credentials are kept, so a new login or a wrong token always reaches
the database."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marteau.service.db import Database

TTL = 5.0
STAMP = "auth-changed"  # the stamp file's name in the data folder
MAX_ENTRIES = 10_000  # then start afresh: bounds the memory a flood of logins could take
# this process's count of auth changes, and the stamp file's (inode, mtime) if any
Generation = tuple[int, tuple[int, int] | None]


@dataclass(frozen=True)
class Entry:
    value: Any
    generation: Generation
    fetched: float  # time.monotonic()
    expires: float | None  # time.time() when the credential ends (a login session), or None


class AuthCache:
    def __init__(self, db: Database, stamp: Path | None = None, ttl: float = TTL) -> None:
        self.db = db
        self.ttl = ttl
        self.stamp = stamp
        self._entries: dict[str, Entry] = {}
        if stamp is not None:
            db.on_auth_change(self._replace_stamp)

    def _replace_stamp(self) -> None:
        """A new file (a new inode and time) in one rename: what the others compare."""
        assert self.stamp is not None
        self.stamp.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.stamp.with_name(f".{self.stamp.name}.{os.getpid()}")
        temporary.write_text(f"{os.getpid()} {time.time_ns()}\n")
        os.replace(temporary, self.stamp)

    def _stamp_version(self) -> tuple[int, int] | None:
        if self.stamp is None:
            return None
        try:
            found = os.stat(self.stamp)
        except FileNotFoundError:
            return None
        return found.st_ino, found.st_mtime_ns

    def generation(self) -> Generation:
        """Read it before the database: `put` keeps nothing read before a change."""
        return self.db.auth_generation, self._stamp_version()

    def get(self, key: str) -> Any | None:
        entry = self._entries.get(key)
        if (
            entry is None
            or entry.generation != self.generation()
            or time.monotonic() - entry.fetched > self.ttl
            or (entry.expires is not None and entry.expires < time.time())
        ):
            return None
        return entry.value

    def put(self, key: str, value: Any, generation: Generation, expires: float | None) -> None:
        if generation != self.generation() or self.ttl <= 0:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries = {}
        self._entries[key] = Entry(value, generation, time.monotonic(), expires)
