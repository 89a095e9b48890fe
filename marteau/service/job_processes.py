"""The processes of a job whose worker was lost, found and killed on this machine.

A job runs in its own process group with `MARTEAU_SERVICE_JOB=<queue>/<id>` in its
environment, the queue being a digest of the service's database URL (two services of
one machine may both have a job 1).
When its worker dies, the child it started gets SIGKILL (Linux's parent-death signal),
but the rest of the group (Ansible, ssh, the bench) would go on, sending load and
writing results nobody links. The worker that reaps the job (any worker of this
machine: `marteau serve` restarts a dead one) kills every process group in which a
process still carries the job's mark. Another user's processes are not readable, so
never touched; a job run on another machine is that machine's reaper's to kill."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
from pathlib import Path

JOB_VARIABLE = "MARTEAU_SERVICE_JOB"
PROC = Path("/proc")


def job_mark(database_url: str, job_id: int) -> str:
    """The value of JOB_VARIABLE for this service's job."""
    return f"{hashlib.sha256(database_url.encode()).hexdigest()[:16]}/{job_id}"


def job_groups(mark_value: str, proc: Path = PROC) -> set[int]:
    """The process groups of this machine holding a process marked with the job."""
    mark = f"{JOB_VARIABLE}={mark_value}".encode()
    groups = set()
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            if mark not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            # the field after the command's closing parenthesis: state, ppid, pgrp
            stat = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        groups.add(int(stat[2]))
    groups.discard(os.getpgrp())  # never the reaper's own group
    return groups


def kill_job(database_url: str, job_id: int) -> set[int]:
    """SIGKILL the job's process groups on this machine; returns them."""
    groups = job_groups(job_mark(database_url, job_id))
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
    return groups
