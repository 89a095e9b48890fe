"""What a job costs: the price per node-hour of a pool, the estimate before a job runs
and the actual cost from its real node-hours after.

Estimate = nodes × (planned bench time + provisioning overhead) × price per node-hour.

- The planned bench time is the engine's own schedule (`marteau.engine.runner.schedule`)
  on the busiest node: per cycle, ``users × startup_delay`` of staging, ``duration`` of
  recording, then ``cycle_time`` (the last cycle's too: the bench waits it out).
- The provisioning overhead (install, lock, deploy, collect, report) is measured: the
  mean of (run time − planned bench time) over the pool's last finished jobs, each job's
  plan being kept in its folder (`plan.json`). With no such job yet, `DEFAULT_OVERHEAD`.
- The price of a pool is its nodes' `marteau_cost_per_hour` host variable (the mean
  when they differ), else `settings.pool_prices[pool]`, else `default_price_per_hour`.
"""

from __future__ import annotations

import calendar
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from marteau.engine.schedule import BenchPlan, schedule
from marteau.errors import MarteauError
from marteau.orchestration.project import Project
from marteau.orchestration.run import split_cycles
from marteau.service.db import Database
from marteau.service.models import QUEUED, RUNNING, SUCCEEDED, Job, JobNode, Node, User
from marteau.service.settings import Settings

PRICE_VAR = "marteau_cost_per_hour"
DEFAULT_OVERHEAD = 60.0  # seconds a job spends around its bench when no job measured it yet
OVERHEAD_SAMPLE = 20  # the last finished jobs of a pool whose overhead is averaged
PLAN_FILE = "plan.json"


def busiest_node(cycles: tuple[int, ...], nodes: int, split: bool) -> tuple[int, ...]:
    """The busiest node's users per cycle: all of them, or with --split the first
    node's share (`marteau run` gives the remainders to the first nodes)."""
    if split and nodes > 1:
        share = split_cycles(":".join(map(str, cycles)), nodes)[0]
        return tuple(int(users) for users in share.split(":"))
    return cycles


@dataclass(frozen=True)
class JobPlan:
    """What a job will run, as far as time goes."""

    pool: str
    nodes: int
    split: bool
    cycles: tuple[int, ...]
    duration: int
    startup_delay: float
    cycle_time: float

    @property
    def node_cycles(self) -> tuple[int, ...]:
        return busiest_node(self.cycles, self.nodes, self.split)

    @property
    def users_per_node(self) -> int:
        return max(self.node_cycles)

    @property
    def bench_seconds(self) -> float:
        plan = BenchPlan(self.node_cycles, self.duration, self.startup_delay, 0.0, self.cycle_time)
        return schedule(plan, 0.0)[-1].next

    def as_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "cycles": ":".join(map(str, self.cycles)),
            "users_per_node": self.users_per_node,
            "bench_seconds": self.bench_seconds,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobPlan:
        return cls(
            pool=str(data["pool"]),
            nodes=int(data["nodes"]),
            split=bool(data["split"]),
            cycles=tuple(int(c) for c in str(data["cycles"]).split(":")),
            duration=int(data["duration"]),
            startup_delay=float(data["startup_delay"]),
            cycle_time=float(data["cycle_time"]),
        )


@dataclass(frozen=True)
class Estimate:
    price_per_hour: float
    bench_seconds: float
    overhead_seconds: float
    nodes: int

    @property
    def node_hours(self) -> float:
        return self.nodes * (self.bench_seconds + self.overhead_seconds) / 3600

    @property
    def cost(self) -> float:
        return self.node_hours * self.price_per_hour

    @property
    def seconds(self) -> float:
        return self.bench_seconds + self.overhead_seconds

    def as_json(self) -> dict[str, Any]:
        return {
            "price_per_hour": self.price_per_hour,
            "nodes": self.nodes,
            "bench_seconds": round(self.bench_seconds, 3),
            "overhead_seconds": round(self.overhead_seconds, 3),
            "node_hours": round(self.node_hours, 6),
            "cost": round(self.cost, 4),
        }


def _bench_value(conf: Any, key: str) -> str:
    try:
        return str(conf.get("bench", key, "")).strip()
    except MarteauError:
        return ""  # `marteau run` reports a bad conf; the estimate just leaves the value out


def _bench_number(conf: Any, key: str) -> float:
    try:
        return max(0.0, float(_bench_value(conf, key) or 0))
    except ValueError:
        return 0.0


def read_plan(project: Project, overrides: dict[str, Any], pool: str, nodes: int) -> JobPlan | None:
    """The job's plan from its overrides, `.marteau.yml` and the test's `<Class>.conf`
    (the order `marteau run` uses); None when cycles or duration is nowhere."""
    from marteau.funkload.config import FunkLoadConfig

    try:
        conf = FunkLoadConfig(str(project.test_dir / f"{project.test_class}.conf"))
    except MarteauError:
        return None
    cycles = str(overrides.get("cycles") or project.cycles or _bench_value(conf, "cycles"))
    duration = str(overrides.get("duration") or project.duration or _bench_value(conf, "duration"))
    try:
        users = tuple(int(c) for c in cycles.strip().split(":"))
        seconds = int(duration.strip())
    except ValueError:
        return None
    if min(users) < 1 or seconds < 1:
        return None
    return JobPlan(
        pool=pool,
        nodes=max(1, nodes),
        split=bool(overrides.get("split")),
        cycles=users,
        duration=seconds,
        startup_delay=_bench_number(conf, "startup_delay"),
        cycle_time=_bench_number(conf, "cycle_time"),
    )


def _price_of(variables: dict | None) -> float | None:
    try:
        return float((variables or {})[PRICE_VAR])
    except (KeyError, TypeError, ValueError):
        return None


def price_per_hour(
    session: Session, settings: Settings, pool: str, node_names: list[str] | None = None
) -> float:
    """The price of one node-hour: of the given nodes, or of the pool's enabled nodes."""
    query = select(Node.vars)
    if node_names is not None:
        query = query.where(Node.name.in_(node_names))
    else:
        query = query.where(Node.pool == pool, Node.enabled.is_(True))
    prices = [p for p in map(_price_of, session.scalars(query)) if p is not None]
    if prices:
        return sum(prices) / len(prices)
    return float(settings.pool_prices.get(pool, settings.default_price_per_hour))


def saved_plan(settings: Settings, job_id: int) -> JobPlan | None:
    try:
        data = json.loads((settings.job_dir(job_id) / PLAN_FILE).read_text(encoding="utf-8"))
        return JobPlan.from_json(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def provisioning_overhead(session: Session, settings: Settings, pool: str) -> float:
    """Mean seconds the pool's last succeeded jobs ran beyond their planned bench."""
    rows = session.execute(
        select(Job.id, Job.started, Job.ended)
        .where(Job.pool == pool, Job.state == SUCCEEDED, Job.started.is_not(None))
        .where(Job.ended.is_not(None))
        .order_by(Job.ended.desc())
        .limit(OVERHEAD_SAMPLE)
    ).all()
    overheads = []
    for job_id, started, ended in rows:
        plan = saved_plan(settings, job_id)
        if plan is not None:
            # the query keeps jobs whose started and ended are set (the columns are nullable)
            overheads.append(max(0.0, ended - started - plan.bench_seconds))  # type: ignore[operator]
    return sum(overheads) / len(overheads) if overheads else DEFAULT_OVERHEAD


def estimate(session: Session, settings: Settings, plan: JobPlan) -> Estimate:
    return Estimate(
        price_per_hour=price_per_hour(session, settings, plan.pool),
        bench_seconds=plan.bench_seconds,
        overhead_seconds=provisioning_overhead(session, settings, plan.pool),
        nodes=plan.nodes,
    )


def preview_estimate(db: Database, settings: Settings, plan: dict | None) -> dict | None:
    """The estimate of a previewed project (its `plan`, see `JobPlan.as_json`)."""
    if not plan:
        return None
    with db.read() as session:
        return estimate(session, settings, JobPlan.from_json(plan)).as_json()


def plan_job(db: Database, settings: Settings, job_id: int, plan: JobPlan) -> Estimate:
    """Keep the job's plan in its folder and its estimate on the job."""
    folder = settings.job_dir(job_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PLAN_FILE).write_text(json.dumps(plan.as_json()), encoding="utf-8")
    with db.write() as session:
        result = estimate(session, settings, plan)
        job = session.get(Job, job_id)
        if job is not None:
            job.estimated_cost = result.cost
            job.price_per_hour = result.price_per_hour
    return result


def record_actual(session: Session, settings: Settings, job_id: int) -> None:
    """After a job (in the transaction that ends it): node_hours = nodes × (ended −
    started) / 3600, at its nodes' price."""
    job = session.get(Job, job_id)
    if job is None or job.started is None or job.ended is None:
        return
    names = list(session.scalars(select(JobNode.node_name).where(JobNode.job_id == job_id)))
    if not names:
        return
    price = price_per_hour(session, settings, job.pool or "marteau", names)
    job.price_per_hour = price
    job.node_hours = len(names) * max(0.0, job.ended - job.started) / 3600
    job.actual_cost = job.node_hours * price


def month_bounds(now: float | None = None) -> tuple[float, float]:
    """The current calendar month (UTC) as epoch seconds [start, end)."""
    day = time.gmtime(now if now is not None else time.time())
    start = calendar.timegm((day.tm_year, day.tm_mon, 1, 0, 0, 0))
    year, month = (day.tm_year + 1, 1) if day.tm_mon == 12 else (day.tm_year, day.tm_mon + 1)
    return float(start), float(calendar.timegm((year, month, 1, 0, 0, 0)))


def month_label(now: float | None = None) -> str:
    return time.strftime("%Y-%m", time.gmtime(month_bounds(now)[0]))


def month_spend(session: Session, user_id: int, now: float | None = None) -> tuple[float, float]:
    """(actual cost of the user's jobs ended this month, estimates of the queued/running)."""
    start, end = month_bounds(now)
    spent = session.scalar(
        select(func.coalesce(func.sum(Job.actual_cost), 0.0)).where(
            Job.owner_id == user_id, Job.ended >= start, Job.ended < end
        )
    )
    pending = session.scalar(
        select(func.coalesce(func.sum(Job.estimated_cost), 0.0)).where(
            Job.owner_id == user_id, Job.state.in_([QUEUED, RUNNING])
        )
    )
    return float(spent or 0.0), float(pending or 0.0)


def spend_report(session: Session, now: float | None = None) -> dict[str, Any]:
    """The month's spend per user and per pool (actual costs, and estimates pending)."""
    start, end = month_bounds(now)
    ended = (Job.ended >= start) & (Job.ended < end)
    pending = Job.state.in_([QUEUED, RUNNING])

    def grouped(key: Any) -> list[dict[str, Any]]:
        rows: dict[Any, dict[str, Any]] = {}
        for label, spent, hours, jobs in session.execute(
            select(
                key,
                func.coalesce(func.sum(Job.actual_cost), 0.0),
                func.coalesce(func.sum(Job.node_hours), 0.0),
                func.count(Job.id),
            )
            .outerjoin(User, User.id == Job.owner_id)
            .where(ended)
            .group_by(key)
        ):
            rows[label] = {"spent": spent, "node_hours": hours, "jobs": jobs, "pending": 0.0}
        for label, estimated in session.execute(
            select(key, func.coalesce(func.sum(Job.estimated_cost), 0.0))
            .outerjoin(User, User.id == Job.owner_id)
            .where(pending)
            .group_by(key)
        ):
            row = rows.setdefault(
                label, {"spent": 0.0, "node_hours": 0.0, "jobs": 0, "pending": 0.0}
            )
            row["pending"] = estimated
        return [{"name": label, **row} for label, row in sorted(rows.items(), key=_label_key)]

    users = grouped(User.email)
    pools = grouped(Job.pool)
    return {
        "month": month_label(now),
        "users": users,
        "pools": pools,
        "total": sum(row["spent"] for row in users),
    }


def _label_key(item: tuple[Any, Any]) -> str:
    return "" if item[0] is None else str(item[0])
