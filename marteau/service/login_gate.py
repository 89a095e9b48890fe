"""What a login may cost the service: failed attempts throttled per account and per
client address, and the password hash (argon2: tens of milliseconds of CPU and 64 MiB
each) computed in a small pool of low-priority threads, never in the request threads.

Without it 60 wrong passwords then the right one logged in, and 40 logins at once took
every request thread and pushed other requests' latency to seconds. Now:

- an account with `login_account_failures` failures within `login_window` seconds, or
  a client address with `login_address_failures`, is refused (429, `Retry-After`)
  before any hash is computed, until its oldest failure leaves the window; a correct
  password changes nothing then. The account limit lets anyone lock an account out
  for a window: the price of stopping a distributed guesser; an admin can still reset
  the password.
- at most `login_hash_threads` hashes run at once, niced, so the event loop and the
  request threads keep the CPU; past `QUEUE_PER_THREAD` waiting logins per thread a
  login is refused at once (429) rather than queued for seconds.

The counts live in this web process's memory: with `--web-processes N` each process
counts apart (an attacker gets at most N times the limits); a restart forgets them."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from marteau.service.accounts import verify_hash
from marteau.service.settings import Settings

QUEUE_PER_THREAD = 16  # logins waiting for a hashing thread, per thread
MAX_KEYS = 100_000  # accounts or addresses tracked; then the stalest half is forgotten
HASH_NICE = 10  # the hashing threads' niceness (Linux: per thread, inherited by argon2's)


class Throttle:
    """Failure times per key (an email, an address) within a sliding window."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        while times and times[0] <= now - self.window:
            times.popleft()
        if times is not None and not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until `key` may try again (0: now)."""
        times = self._recent(key, now)
        if self.limit <= 0 or times is None or len(times) < self.limit:
            return 0.0
        return times[-self.limit] + self.window - now

    def fail(self, key: str, now: float) -> None:
        if len(self._failures) >= MAX_KEYS and key not in self._failures:
            stalest = sorted(self._failures, key=lambda k: self._failures[k][-1])
            for old in stalest[: MAX_KEYS // 2]:
                del self._failures[old]
        times = self._failures.setdefault(key, deque())
        times.append(now)
        while len(times) > max(self.limit, 1):
            times.popleft()

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)


class Busy(Exception):
    """Too many logins wait for a hashing thread."""


def _lower_priority() -> None:
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, 0, HASH_NICE)  # this thread, on Linux


class LoginGate:
    def __init__(self, settings: Settings) -> None:
        threads = max(1, settings.login_hash_threads)
        self.accounts = Throttle(settings.login_account_failures, settings.login_window)
        self.addresses = Throttle(settings.login_address_failures, settings.login_window)
        self.pool = ThreadPoolExecutor(threads, "marteau-login", initializer=_lower_priority)
        self.max_waiting = threads * QUEUE_PER_THREAD
        self.waiting = 0

    def retry_after(self, email: str, address: str) -> int:
        """Whole seconds until this login may be tried (0: now)."""
        now = time.monotonic()
        wait = max(self.accounts.retry_after(email, now), self.addresses.retry_after(address, now))
        return math.ceil(wait) if wait > 0 else 0

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """The password check, in the hashing pool; Busy when too many wait for it."""
        if self.waiting >= self.max_waiting:
            raise Busy()
        self.waiting += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.pool, verify_hash, password_hash, password)
        finally:
            self.waiting -= 1

    def failed(self, email: str, address: str) -> None:
        now = time.monotonic()
        self.accounts.fail(email, now)
        self.addresses.fail(address, now)

    def succeeded(self, email: str) -> None:
        self.accounts.clear(email)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
