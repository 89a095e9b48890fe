"""Git clones of a URL someone else chose, bounded in time and in size.

The server behind a job's URL may never answer, or send a repository of any size (or a
small pack that checks out to gigabytes). So a clone here:

- runs each git command in a process group of its own and kills the whole group
  (SIGKILL) when the command ends, is stopped or passes a limit: `git clone` starts
  helpers (`git remote-https`, `index-pack`, `ssh`) that outlive a killed `git`. Each
  command also runs under coreutils' `timeout`, which signals the group by itself if
  the process watching it dies first;
- has one deadline for the whole clone: every attempt, the tree listing, the checkout;
- measures the folder several times a second while git writes it (git writes the
  pack as it arrives) and is killed once the folder is over the size cap;
- fetches without a checkout, then lists the tree to check out (`git ls-tree -r -l`,
  read as it streams) and refuses it at the first file past the size or the file
  cap, so a small pack cannot expand on disk.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from marteau.errors import MarteauError

TICK = 0.2  # seconds between two looks at a running git (time, size, stop)
TAIL = 4096  # bytes of git's output read back for an error message
TIMEOUT_EXIT = 124  # coreutils' `timeout` ran out


@dataclass(frozen=True)
class Limits:
    """A clone's limits: seconds in all, bytes on disk and files checked out (None: no
    limit)."""

    seconds: float
    max_bytes: int | None = None
    max_files: int | None = None


class LimitExceeded(MarteauError):
    """The clone passed one of its limits; the message says which (and is the user's)."""


class Stopped(Exception):
    """The caller's `stop` asked the clone to end (`why` is what it returned)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def folder_bytes(path: os.PathLike[str] | str, cap: int | None = None) -> int:
    """Bytes the files under `path` take (links not followed); the walk ends as soon
    as the sum passes `cap`."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
        if cap is not None and total > cap:
            break
    return total


def _killpg(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _megabytes(value: int) -> str:
    return f"{value / 2**20:g} MB"


class _Clone:
    """One clone: its limits, its deadline, where git's output goes."""

    def __init__(
        self,
        url: str,
        target: Path,
        limits: Limits,
        log: Path,
        env: dict[str, str] | None,
        stop: Callable[[], str | None] | None,
        preexec: Callable[[], None] | None,
        what: str = "git clone",
    ) -> None:
        self.url, self.target, self.limits, self.log = url, target, limits, log
        self.what = what  # how messages name the operation
        # no prompt for a password; no download by a Git LFS filter at checkout
        self.env = dict(os.environ if env is None else env)
        self.env.update(GIT_TERMINAL_PROMPT="0", GIT_LFS_SKIP_SMUDGE="1")
        self.stop, self.preexec = stop, preexec
        self.deadline = time.monotonic() + limits.seconds
        self.guard = ["timeout", "--kill-after=2"] if shutil.which("timeout") else []

    def _late(self) -> LimitExceeded:
        return LimitExceeded(f"{self.url}: {self.what}: not done within {self.limits.seconds:g} s")

    def _too_large(self) -> LimitExceeded:
        assert self.limits.max_bytes is not None
        return LimitExceeded(
            f"{self.url}: {self.what}: repository over {_megabytes(self.limits.max_bytes)}"
        )

    def _start(self, command: list[str], log: IO[bytes], pipe: bool = False) -> subprocess.Popen:
        """Start `command` in a new process group, its errors (and output, unless `pipe`)
        to `log`."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self._late()
        guard = self.guard + [f"{left + 1:.1f}"] if self.guard else []  # after ours
        return subprocess.Popen(
            guard + command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipe else log,
            stderr=log,
            start_new_session=True,
            preexec_fn=self.preexec,
            env=self.env,
        )

    def _watch(self, proc: subprocess.Popen) -> None:
        """Raise, having killed the group, when `proc` passes a limit or is stopped."""
        if time.monotonic() >= self.deadline:
            _killpg(proc.pid)
            raise self._late()
        cap = self.limits.max_bytes
        if cap is not None and folder_bytes(self.target, cap) > cap:
            _killpg(proc.pid)
            raise self._too_large()
        why = self.stop() if self.stop else None
        if why:
            _killpg(proc.pid)
            raise Stopped(why)

    def git(self, command: list[str]) -> str | None:
        """Run one git command to its end under the limits: None if it succeeded, else
        the last line of its output."""
        with open(self.log, "ab") as log:
            start = log.tell()
            proc = self._start(command, log)
        try:
            while True:
                try:
                    code = proc.wait(timeout=TICK)
                    break
                except subprocess.TimeoutExpired:
                    self._watch(proc)
        finally:
            _killpg(proc.pid)  # what the command left in its group
            proc.wait()
        if code == TIMEOUT_EXIT and self.guard:
            raise self._late()
        if code == 0:
            return None
        with open(self.log, "rb") as log:
            log.seek(max(start, os.path.getsize(self.log) - TAIL))
            lines = log.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else f"exit {code}"

    def check_tree(self, rev: str) -> None:
        """Refuse the checkout of `rev` at the first file past the size or file cap
        (what is already on disk counts)."""
        cap, most = self.limits.max_bytes, self.limits.max_files
        if cap is None and most is None:
            return
        total = folder_bytes(self.target)
        files = 0
        command = ["git", "-C", str(self.target), "ls-tree", "-r", "-l", "-z", rev]
        with open(self.log, "ab") as log:  # a failure here: the checkout says why
            proc = self._start(command, log, pipe=True)
        assert proc.stdout is not None
        rest = b""
        try:
            while chunk := proc.stdout.read(65536):
                *entries, rest = (rest + chunk).split(b"\0")
                for entry in entries:
                    size = entry.split(b"\t", 1)[0].split()[-1]
                    total += int(size) if size.isdigit() else 0  # a submodule: "-"
                    files += 1
                    if cap is not None and total > cap:
                        raise self._too_large()
                    if most is not None and files > most:
                        raise LimitExceeded(
                            f"{self.url}: {self.what}: more than {most} files to check out"
                        )
                if time.monotonic() >= self.deadline:
                    raise self._late()
        finally:
            _killpg(proc.pid)
            proc.stdout.close()
            proc.wait()


def clone(
    url: str,
    target: Path,
    ref: str | None,
    limits: Limits,
    log: Path,
    env: dict[str, str] | None = None,
    stop: Callable[[], str | None] | None = None,
    preexec: Callable[[], None] | None = None,
    shallow: bool = True,
    options: list[str] | None = None,
) -> None:
    """Clone `url` into `target` and check out `ref` (a branch, tag or commit; None:
    the default branch), git's output appended to `log`.

    A shallow clone first, unless `shallow` is False; a ref that is not a branch or tag
    then takes a full clone.
    MarteauError when git fails (with its last line), LimitExceeded past a limit,
    Stopped when `stop()` returns a reason. `preexec` runs in each git child before exec;
    `options` are git's global options for the fetch (`-c name=value`: the service pins a
    public clone's address).
    """
    if ref is not None and (not ref or ref.startswith("-")):
        raise MarteauError(f"ref {ref!r}: not a branch, tag or commit")
    run = _Clone(url, target, limits, log, env, stop, preexec)
    fetch = ["git", *(options or []), "clone", "--quiet", "--no-checkout"]
    attempts = [(fetch + ["--depth", "1"] + (["--branch", ref] if ref else []), "HEAD")]
    if not shallow:
        attempts = [(fetch, ref or "HEAD")]
    elif ref:
        attempts.append((fetch, ref))
    error = ""
    try:
        for command, rev in attempts:
            shutil.rmtree(target, ignore_errors=True)
            failed = run.git(command + ["--", url, str(target)])
            if failed is not None:
                error = failed
                continue
            run.check_tree(rev)
            failed = run.git(["git", "-C", str(target), "checkout", "--quiet", rev, "--"])
            if failed is None:
                return
            error = failed
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # a partial clone takes no disk
        raise
    shutil.rmtree(target, ignore_errors=True)
    raise MarteauError(f"{url}: git clone failed: {error}")


def update(url: str, target: Path, limits: Limits, log: Path) -> None:
    """`git pull --ff-only` in an existing clone of `url`, under the same limits."""
    run = _Clone(url, target, limits, log, None, None, None, "git pull")
    failed = run.git(["git", "-C", str(target), "pull", "--quiet", "--ff-only"])
    if failed is not None:
        raise MarteauError(f"{url}: git pull failed: {failed}")
