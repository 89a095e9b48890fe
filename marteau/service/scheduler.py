"""The queue: preparation and run claims, leases, finishing, the reaper.

A job goes through two claims, each one write transaction:

1. **prepare** — a worker takes the oldest unprepared queued job (a lease on the job),
   fetches its source and reads `.marteau.yml` to learn its pool and node count; the
   job stays queued, in its place.
2. **run** — a worker takes the oldest prepared queued job whose pool has enough free
   nodes, *together with those nodes*: the job goes `queued → running` and each node
   gets a lease (job id, expiry) in the same transaction. Per pool the queue is FIFO:
   once a job of a pool cannot get its nodes, later jobs of that pool wait behind it.

Both writes are compare-and-set (``WHERE state = 'queued'``, ``WHERE lease is free``)
and the row counts are checked, so even without the database's locks two workers could
not get the same job or node. On SQLite the transaction is ``BEGIN IMMEDIATE`` (one
writer at a time). On PostgreSQL a prepare claim reads ``FOR UPDATE SKIP LOCKED`` (any
unclaimed job will do), while run claims go one at a time under a transaction advisory
lock: skipping a locked row there would let a later job of a pool pass the pool's
oldest while another transaction (a cancel, an edit) holds it.

The worker renews its leases while it works. When it dies they expire: the reaper
(every worker runs it) fails its running jobs, frees their nodes, and puts jobs it was
preparing back in the queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from marteau.service.db import Database
from marteau.service.messages import cap
from marteau.service.models import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    Job,
    JobNode,
    Node,
    Worker,
)

SCAN_LIMIT = 500  # queued jobs looked at per claim
RUN_CLAIM_LOCK = 0x6D727472  # PostgreSQL advisory lock key of the run claims ("mrtr")
ISOLATED = "isolated"  # a node's status when its last check found jobs isolated


def unleased_node_clause(now: float):
    """No job holds the node's lease (never leased, or the lease expired)."""
    return or_(Node.lease_job_id.is_(None), Node.lease_expires < now)


def free_node_clause(now: float, isolated_only: bool = False):
    """Enabled, not leased, and not found unreachable by its last check; with
    `isolated_only` (public mode), found running each job as its own Unix user."""
    checked = Node.status == ISOLATED if isolated_only else Node.status != "unreachable"
    return and_(Node.enabled.is_(True), checked, unleased_node_clause(now))


class _Lost(Exception):
    """A compare-and-set found the row taken: roll the transaction back."""


@dataclass
class Claim:
    job_id: int
    nodes: list[Node]
    pool: str


class Scheduler:
    def __init__(
        self, db: Database, worker_id: str, lease_ttl: float, isolated_only: bool = False
    ) -> None:
        self.db = db
        self.worker_id = worker_id
        self.lease_ttl = lease_ttl
        self.isolated_only = isolated_only  # public mode: jobs run on isolated nodes only

    def _skip_locked(self, statement):
        return statement if self.db.is_sqlite else statement.with_for_update(skip_locked=True)

    def _one_run_claim_at_a_time(self, session: Session) -> None:
        """PostgreSQL: wait for the other run claims, as BEGIN IMMEDIATE does on SQLite
        (released at commit). Each statement after it sees what they committed."""
        if not self.db.is_sqlite:
            session.execute(select(func.pg_advisory_xact_lock(RUN_CLAIM_LOCK)))

    # -- claims -----------------------------------------------------------------

    def claim_prepare(self) -> int | None:
        """Take the oldest queued job whose source is not prepared yet; its id or None."""
        with self.db.write() as session:
            now = time.time()
            query = self._skip_locked(
                select(Job.id)
                .where(
                    Job.state == QUEUED,
                    Job.prepared.is_(False),
                    Job.cancel_requested.is_(False),
                    or_(Job.worker_id.is_(None), Job.lease_expires < now),
                )
                .order_by(Job.id)
                .limit(1)
            )
            job_id = session.scalar(query)
            if job_id is None:
                return None
            # an UPDATE's or DELETE's Result is a CursorResult (rowcount); execute() says Result
            taken = session.execute(  # type: ignore[attr-defined]
                update(Job)
                .where(
                    Job.id == job_id,
                    Job.state == QUEUED,
                    or_(Job.worker_id.is_(None), Job.lease_expires < now),
                )
                .values(worker_id=self.worker_id, lease_expires=now + self.lease_ttl)
            ).rowcount
            return job_id if taken == 1 else None

    def prepared(
        self,
        job_id: int,
        pool: str,
        nodes: int,
        name: str,
        email: str | None,
        node_names: list[str] | None = None,
        project_key: str | None = None,
        tolerance: float | None = None,
    ) -> None:
        """The source is ready: the job waits for its nodes (any `nodes` free ones of
        the pool, or exactly `node_names`), in its place in the queue; `project_key`
        and `tolerance` say which runs it is compared with, and how (comparisons)."""
        with self.db.write() as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.worker_id == self.worker_id, Job.state == QUEUED)
                .values(
                    prepared=True,
                    pool=pool,
                    nodes_wanted=nodes,
                    node_names=node_names or None,
                    project_name=name or None,
                    project_key=project_key,
                    tolerance=tolerance,
                    email=email,
                    worker_id=None,
                    lease_expires=None,
                )
            )

    def claim_run(self) -> Claim | None:
        """Take the oldest runnable job and its nodes in one transaction."""
        try:
            return self._claim_run()
        except _Lost:  # a compare-and-set failed: rolled back, try again later
            return None

    def _claim_run(self) -> Claim | None:
        with self.db.write() as session:
            self._one_run_claim_at_a_time(session)
            now = time.time()
            jobs = session.execute(
                select(Job.id, Job.pool, Job.nodes_wanted, Job.node_names)
                .where(
                    Job.state == QUEUED,
                    Job.prepared.is_(True),
                    Job.cancel_requested.is_(False),
                )
                .order_by(Job.id)
                .limit(SCAN_LIMIT)
            ).all()
            blocked: set[str] = set()
            for job_id, pool, wanted, names in jobs:
                if pool in blocked:
                    continue
                free = select(Node).where(
                    Node.pool == pool, free_node_clause(now, self.isolated_only)
                )
                if names:  # those nodes and no others; the pool waits for them, in order
                    free = free.where(Node.name.in_(names))
                nodes = list(session.scalars(free.order_by(Node.name).limit(wanted)))
                if len(nodes) < wanted:
                    blocked.add(pool)
                    continue
                if not self._take(session, job_id, nodes, now):
                    raise _Lost
                return Claim(job_id=job_id, nodes=nodes, pool=pool)
            return None

    def _take(self, session: Session, job_id: int, nodes: list[Node], now: float) -> bool:
        expires = now + self.lease_ttl
        # Read after the nodes were seen free: on PostgreSQL `now` may be older than the
        # commit that freed them, and a job must not seem to start before the previous
        # job on its nodes ended.
        started = time.time()
        # an UPDATE's or DELETE's Result is a CursorResult (rowcount); execute() says Result
        got_job = session.execute(  # type: ignore[attr-defined]
            update(Job)
            .where(Job.id == job_id, Job.state == QUEUED)
            .values(state=RUNNING, worker_id=self.worker_id, lease_expires=expires, started=started)
        ).rowcount
        # an UPDATE's or DELETE's Result is a CursorResult (rowcount); execute() says Result
        got_nodes = session.execute(  # type: ignore[attr-defined]
            update(Node)
            .where(Node.id.in_([n.id for n in nodes]), free_node_clause(now, self.isolated_only))
            .values(lease_job_id=job_id, lease_expires=expires)
            .execution_options(synchronize_session=False)
        ).rowcount
        if got_job != 1 or got_nodes != len(nodes):
            return False
        session.execute(delete(JobNode).where(JobNode.job_id == job_id))
        session.add_all(JobNode(job_id=job_id, node_name=n.name) for n in nodes)
        session.execute(
            update(Worker).where(Worker.id == self.worker_id).values(job_id=job_id, heartbeat=now)
        )
        return True

    # -- while working ----------------------------------------------------------

    def renew(self, job_id: int) -> tuple[bool, bool]:
        """Extend the leases of the job and its nodes; (still ours, cancel requested)."""
        with self.db.write() as session:
            now = time.time()
            expires = now + self.lease_ttl
            # an UPDATE's or DELETE's Result is a CursorResult (rowcount); execute() says Result
            ours = session.execute(  # type: ignore[attr-defined]
                update(Job)
                .where(Job.id == job_id, Job.worker_id == self.worker_id)
                .where(Job.state.in_([QUEUED, RUNNING]))
                .values(lease_expires=expires)
            ).rowcount
            session.execute(
                update(Node)
                .where(Node.lease_job_id == job_id)
                .values(lease_expires=expires)
                .execution_options(synchronize_session=False)
            )
            session.execute(update(Worker).where(Worker.id == self.worker_id).values(heartbeat=now))
            cancel = session.scalar(select(Job.cancel_requested).where(Job.id == job_id))
            state = session.scalar(select(Job.state).where(Job.id == job_id))
        return bool(ours), bool(cancel) or state in (CANCELLED, None)

    def finish(
        self,
        job_id: int,
        state: str,
        reason: str,
        exit_code: int | None = None,
        report_path: str | None = None,
        then: Callable[[Session], None] | None = None,
    ) -> bool:
        """End the job and free its nodes, in one transaction; False if it was not ours.
        `then(session)` runs in that transaction once the job is ended (its cost)."""
        with self.db.write() as session:
            now = time.time()
            # an UPDATE's or DELETE's Result is a CursorResult (rowcount); execute() says Result
            done = session.execute(  # type: ignore[attr-defined]
                update(Job)
                .where(Job.id == job_id, Job.worker_id == self.worker_id)
                .where(Job.state.in_([QUEUED, RUNNING]))
                .values(
                    state=state,
                    ended=now,
                    exit_code=exit_code,
                    exit_reason=cap(reason),
                    report_path=report_path,
                    lease_expires=None,
                )
            ).rowcount
            session.execute(
                update(Node)
                .where(Node.lease_job_id == job_id)
                .values(lease_job_id=None, lease_expires=None)
                .execution_options(synchronize_session=False)
            )
            session.execute(
                update(Worker).where(Worker.id == self.worker_id).values(job_id=None, heartbeat=now)
            )
            if done and then is not None:
                then(session)
        return bool(done)


def reap(db: Database) -> list[int]:
    """Fail the running jobs whose lease expired (their worker died) and free their
    nodes; put jobs whose preparation was abandoned back in the queue. Returns the
    ids of the jobs failed."""
    with db.write() as session:
        now = time.time()
        # the ids the UPDATE itself changed: on PostgreSQL a lease renewed since a
        # separate SELECT would be skipped by the UPDATE but still be reported
        lost = sorted(
            session.scalars(
                update(Job)
                .where(Job.state == RUNNING, Job.lease_expires < now)
                .values(
                    state=FAILED,
                    ended=now,
                    exit_reason="worker lost: its lease expired (the worker died or hung)",
                    lease_expires=None,
                )
                .returning(Job.id)
            )
        )
        if lost:
            session.execute(
                update(Node)
                .where(Node.lease_job_id.in_(lost), Node.lease_expires < now)
                .values(lease_job_id=None, lease_expires=None)
                .execution_options(synchronize_session=False)
            )
        session.execute(
            update(Job)
            .where(Job.state == QUEUED, Job.worker_id.is_not(None), Job.lease_expires < now)
            .values(worker_id=None, lease_expires=None)
        )
    return lost


def request_cancel(db: Database, job_id: int) -> str | None:
    """Cancel: a queued job ends at once; a running one is flagged for its worker.
    Returns the job's state afterwards, or None when there is no such job."""
    with db.write() as session:
        now = time.time()
        # locked as read (PostgreSQL; SQLite's write lock already is): a claim taking
        # the job is waited for, and its `running` is not overwritten by `cancelled`
        job = session.get(Job, job_id, with_for_update=True)
        if job is None:
            return None
        if job.state == QUEUED:
            job.state = CANCELLED
            job.cancel_requested = True
            job.ended = now
            job.exit_reason = "cancelled before it started"
            # a worker preparing it sees the state change at its next renewal
        elif job.state == RUNNING:
            job.cancel_requested = True
        return job.state
