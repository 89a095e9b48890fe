"""Per-user quotas: what one user may take of a shared service.

A user's limits are the settings' `quota_*` defaults, overridden one by one by an admin
(`User.quotas`, name -> limit; 0 means no limit). What is known at submission (running
and queued jobs, disk, month's spend, the overrides' nodes and cycles) is checked then;
what only `.marteau.yml` and the test's conf tell (nodes, users per node, planned
duration, estimate) is checked by the worker when it prepares the job. The job
duration is also enforced while the job runs: the worker stops it at the limit.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from marteau.errors import MarteauError
from marteau.orchestration.clone import folder_bytes
from marteau.service import cost
from marteau.service.db import Database
from marteau.service.models import FINISHED, QUEUED, RUNNING, Job, User
from marteau.service.settings import Settings

PRUNE = "prune"  # User.quotas[PRUNE] = true: delete the oldest reports when over the disk quota
MB = 2**20


@dataclass(frozen=True)
class Quota:
    name: str  # the key in User.quotas, the setting is `quota_<name>`
    label: str  # how messages and pages call it
    unit: str = ""


QUOTAS = (
    Quota("nodes_per_job", "nodes per job"),
    Quota("concurrent_jobs", "concurrent jobs"),
    Quota("queued_jobs", "queued jobs"),
    Quota("users_per_node", "cycle users per node"),
    Quota("job_minutes", "job duration", "min"),
    Quota("disk_mb", "disk", "MB"),
    Quota("monthly_cost", "monthly cost"),
)
BY_NAME = {q.name: q for q in QUOTAS}


class QuotaExceeded(MarteauError):
    """A quota refuses the job; the message names the quota, the limit and the usage."""


def refuse(name: str, limit: float, usage: str) -> QuotaExceeded:
    quota = BY_NAME[name]
    unit = f" {quota.unit}" if quota.unit else ""
    return QuotaExceeded(f"quota {quota.label}: limit {limit:.10g}{unit}, {usage}")


def _megabytes(value: float) -> str:
    return f"{value:.1f}" if value >= 1 else f"{value:.2g}"


def limits(settings: Settings, user: User | None) -> dict[str, float]:
    """The effective limits of a user (0 = no limit)."""
    overrides = (user.quotas if user is not None else None) or {}
    result = {}
    for quota in QUOTAS:
        value = overrides.get(quota.name)
        if value is None or isinstance(value, bool):
            value = getattr(settings, f"quota_{quota.name}")
        result[quota.name] = float(value)
    return result


def prunes(user: User | None) -> bool:
    return bool(user is not None and (user.quotas or {}).get(PRUNE))


def check_quota_overrides(values: dict[str, Any]) -> dict[str, Any]:
    """An admin's overrides, validated: known names, limits >= 0, `prune` true/false;
    a None limit removes the override (back to the default)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key == PRUNE:
            if not isinstance(value, bool):
                raise MarteauError(f"quota {PRUNE}: {value!r}: expected true or false")
            out[key] = value
            continue
        if key not in BY_NAME:
            known = ", ".join([*BY_NAME, PRUNE])
            raise MarteauError(f"quota {key!r}: unknown (known: {known})")
        if value is None or value == "":
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise MarteauError(
                f"quota {key}: {value!r}: expected a number (0 = no limit)"
            ) from None
        if not 0 <= number < float("inf"):
            raise MarteauError(f"quota {key}: {value!r}: expected a number >= 0 (0 = no limit)")
        out[key] = int(number) if number.is_integer() else number
    return out


# -- usage -------------------------------------------------------------------------


def _count(session: Session, user_id: int, state: str) -> int:
    # COUNT always gives one row: never None
    return session.scalar(  # type: ignore[return-value]
        select(func.count(Job.id)).where(Job.owner_id == user_id, Job.state == state)
    )


def job_disk(settings: Settings, job: Job) -> int:
    """A finished job's measured size, or its folder walked now."""
    if job.disk_bytes is not None and job.state in FINISHED:
        return job.disk_bytes
    return folder_bytes(settings.job_dir(job.id))


def disk_used(session: Session, settings: Settings, user_id: int) -> int:
    jobs = session.scalars(select(Job).where(Job.owner_id == user_id))
    return sum(job_disk(settings, job) for job in jobs)


def usage(session: Session, settings: Settings, user: User) -> list[dict[str, Any]]:
    """Every quota with its limit and what the user uses now (for the profile page)."""
    limit = limits(settings, user)
    spent, pending = cost.month_spend(session, user.id)
    largest = session.execute(
        select(func.max(Job.nodes_wanted)).where(
            Job.owner_id == user.id, Job.state.in_([QUEUED, RUNNING])
        )
    ).scalar()
    used: dict[str, float] = {
        "nodes_per_job": float(largest or 0),
        "concurrent_jobs": float(_count(session, user.id, RUNNING)),
        "queued_jobs": float(_count(session, user.id, QUEUED)),
        "users_per_node": float(_largest_users_per_node(session, settings, user.id)),
        "job_minutes": _longest_running_minutes(session, user.id),
        "disk_mb": disk_used(session, settings, user.id) / MB,
        "monthly_cost": spent + pending,
    }
    return [
        {
            "name": q.name,
            "label": q.label,
            "unit": q.unit,
            "limit": limit[q.name] or None,
            "used": round(used[q.name], 4),
            "over": bool(limit[q.name]) and used[q.name] >= limit[q.name],
        }
        for q in QUOTAS
    ]


def _largest_users_per_node(session: Session, settings: Settings, user_id: int) -> int:
    ids = session.scalars(
        select(Job.id).where(Job.owner_id == user_id, Job.state.in_([QUEUED, RUNNING]))
    )
    plans = [cost.saved_plan(settings, job_id) for job_id in ids]
    return max((p.users_per_node for p in plans if p is not None), default=0)


def _longest_running_minutes(session: Session, user_id: int) -> float:
    started = session.scalar(
        select(func.min(Job.started)).where(Job.owner_id == user_id, Job.state == RUNNING)
    )
    return (time.time() - started) / 60 if started else 0.0


# -- checks ------------------------------------------------------------------------


def check_submission(
    session: Session, settings: Settings, user: User, overrides: dict[str, Any], adding: int = 0
) -> None:
    """Refuse a new job that would go over a quota (QuotaExceeded); call it in the
    transaction that adds the job, so two submissions cannot both slip under a limit.
    `adding`: the bytes the new job brings (an uploaded archive, expanded)."""
    if not settings.quotas_enforced:
        return
    limit = limits(settings, user)
    if limit["concurrent_jobs"]:
        running = _count(session, user.id, RUNNING)
        if running >= limit["concurrent_jobs"]:
            raise refuse("concurrent_jobs", limit["concurrent_jobs"], f"you have {running} running")
    if limit["queued_jobs"]:
        queued = _count(session, user.id, QUEUED)
        if queued >= limit["queued_jobs"]:
            raise refuse("queued_jobs", limit["queued_jobs"], f"you have {queued} queued")
    nodes = int(overrides.get("nodes") or 1)
    if limit["nodes_per_job"] and nodes > limit["nodes_per_job"]:
        raise refuse("nodes_per_job", limit["nodes_per_job"], f"this job asks for {nodes}")
    if limit["users_per_node"] and overrides.get("cycles"):
        _check_users(limit["users_per_node"], str(overrides["cycles"]), nodes, overrides)
    if limit["disk_mb"]:
        used = disk_used(session, settings, user.id) / MB
        if used >= limit["disk_mb"] or (adding and used + adding / MB > limit["disk_mb"]):
            brings = f" and this job's archive expands to {_megabytes(adding / MB)} MB" * bool(
                adding
            )
            raise refuse(
                "disk_mb",
                limit["disk_mb"],
                f"your jobs use {_megabytes(used)} MB{brings}: delete old reports on your "
                "profile page",
            )
    if limit["monthly_cost"]:
        spent, pending = cost.month_spend(session, user.id)
        if spent + pending >= limit["monthly_cost"]:
            raise refuse(
                "monthly_cost",
                limit["monthly_cost"],
                f"you have spent {spent:.2f} this month and your queued and running jobs "
                f"are estimated at {pending:.2f}",
            )


def disk_room(db: Database, settings: Settings, user: User) -> int | None:
    """The bytes the user's disk quota has left (None: no limit): the most an upload
    may expand to, checked while it is unpacked."""
    limit = limits(settings, user)["disk_mb"] if settings.quotas_enforced else 0
    if not limit:
        return None
    with db.read() as session:
        return max(0, int(limit * MB) - disk_used(session, settings, user.id))


def disk_refusal(db: Database, settings: Settings, user: User, room: int) -> QuotaExceeded:
    """An upload that expands past the disk quota's room (none left: what is used)."""
    if room <= 0:
        with db.read() as session:
            used = _megabytes(disk_used(session, settings, user.id) / MB)
        why = f"your jobs use {used} MB"
    else:
        why = f"this archive expands past the {_megabytes(room / MB)} MB your jobs leave"
    limit = limits(settings, user)["disk_mb"]
    return refuse("disk_mb", limit, f"{why}: delete old reports on your profile page")


def _check_users(limit: float, cycles: str, nodes: int, overrides: dict[str, Any]) -> None:
    split = bool(overrides.get("split"))
    most = max(cost.busiest_node(tuple(int(c) for c in cycles.split(":")), nodes, split))
    if most > limit:
        how = f"split among {nodes} nodes" if split and nodes > 1 else "on each node"
        raise refuse(
            "users_per_node",
            limit,
            f"this job runs up to {most} users per node (cycles {cycles} {how})",
        )


def check_prepared(
    session: Session,
    settings: Settings,
    job: Job,
    nodes: int,
    plan: cost.JobPlan | None,
    estimate: cost.Estimate | None,
) -> None:
    """The worker's check once `.marteau.yml` and the conf are read."""
    if not settings.quotas_enforced:
        return
    user = session.get(User, job.owner_id) if job.owner_id is not None else None
    limit = limits(settings, user)
    if limit["nodes_per_job"] and nodes > limit["nodes_per_job"]:
        raise refuse("nodes_per_job", limit["nodes_per_job"], f"this job asks for {nodes}")
    if plan is None:
        return
    if limit["users_per_node"]:
        cycles = ":".join(map(str, plan.cycles))
        _check_users(limit["users_per_node"], cycles, plan.nodes, {"split": plan.split})
    if limit["job_minutes"] and estimate is not None:
        minutes = estimate.seconds / 60
        if minutes > limit["job_minutes"]:
            raise refuse(
                "job_minutes",
                limit["job_minutes"],
                f"this job plans {minutes:.1f} min ({estimate.bench_seconds:g} s of bench "
                f"+ {estimate.overhead_seconds:.0f} s of provisioning)",
            )
    if limit["monthly_cost"] and estimate is not None and user is not None:
        spent, pending = cost.month_spend(session, user.id)
        own = session.scalar(select(Job.estimated_cost).where(Job.id == job.id)) or 0.0
        others = pending - own
        if spent + others + estimate.cost > limit["monthly_cost"]:
            raise refuse(
                "monthly_cost",
                limit["monthly_cost"],
                f"you have spent {spent:.2f} this month, your other queued and running jobs "
                f"are estimated at {others:.2f} and this one at {estimate.cost:.2f}",
            )


def job_seconds_limit(session: Session, settings: Settings, job: Job) -> float | None:
    """How long the job may run, or None."""
    if not settings.quotas_enforced:
        return None
    user = session.get(User, job.owner_id) if job.owner_id is not None else None
    minutes = limits(settings, user)["job_minutes"]
    return minutes * 60 if minutes else None


def users_per_node_limit(session: Session, settings: Settings, job: Job) -> int | None:
    """The users a node may run per cycle for this job (`marteau run --max-users`), or None."""
    if not settings.quotas_enforced:
        return None
    user = session.get(User, job.owner_id) if job.owner_id is not None else None
    users = int(limits(settings, user)["users_per_node"])
    return users or None


def duration_message(seconds: float) -> str:
    return f"stopped: quota job duration: limit {seconds / 60:.10g} min, the job ran over it"


# -- disk ----------------------------------------------------------------------------


def record_disk(session: Session, settings: Settings, job_id: int) -> None:
    """Measure a finished job's folder (in the transaction that ends it)."""
    job = session.get(Job, job_id)
    if job is not None:
        job.disk_bytes = folder_bytes(settings.job_dir(job_id))


def prune_owner(db: Database, settings: Settings, user_id: int | None) -> None:
    """After a job: prune its owner's oldest reports if the admin asked and it is over."""
    if user_id is None or not settings.quotas_enforced:
        return
    with db.read() as session:
        owner = session.get(User, user_id)
    if owner is not None and prunes(owner):
        prune(db, settings, owner)


def free_reports(db: Database, settings: Settings, user_id: int, job_ids: list[int]) -> list[int]:
    """Delete the folders (report, results, console) of the user's finished jobs; the
    jobs stay listed. Returns the ids freed."""
    freed = []
    with db.write() as session:
        jobs = session.scalars(
            select(Job).where(Job.id.in_(job_ids), Job.owner_id == user_id, Job.state.in_(FINISHED))
        ).all()
        for job in jobs:
            shutil.rmtree(settings.job_dir(job.id), ignore_errors=True)
            job.disk_bytes = 0
            job.report_path = None
            freed.append(job.id)
    return freed


def prune(db: Database, settings: Settings, user: User) -> list[int]:
    """Delete the user's oldest finished jobs' folders until under the disk quota."""
    limit = limits(settings, user)["disk_mb"] * MB
    if not limit:
        return []
    with db.read() as session:
        jobs = session.scalars(select(Job).where(Job.owner_id == user.id).order_by(Job.id)).all()
        sizes = {job.id: job_disk(settings, job) for job in jobs}
        oldest = [job.id for job in jobs if job.state in FINISHED and sizes[job.id]]
    total = sum(sizes.values())
    victims = []
    for job_id in oldest:
        if total < limit:
            break
        victims.append(job_id)
        total -= sizes[job_id]
    return free_reports(db, settings, user.id, victims) if victims else []


def make_room(db: Database, settings: Settings, user: User) -> None:
    """Before a submission: prune if the admin turned pruning on for this user."""
    if settings.quotas_enforced and prunes(user):
        prune(db, settings, user)


def finished_jobs_by_size(
    session: Session, settings: Settings, user_id: int, limit: int = 200
) -> list[tuple[Job, int]]:
    """The user's finished jobs that hold files, oldest first (for the profile page)."""
    jobs = session.scalars(
        select(Job)
        .where(Job.owner_id == user_id, Job.state.in_(FINISHED))
        .order_by(Job.id)
        .limit(limit)
    ).all()
    sized = [(job, job_disk(settings, job)) for job in jobs]
    return [(job, size) for job, size in sized if size]
