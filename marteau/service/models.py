"""The service's tables (SQLAlchemy 2). Times are UNIX epoch seconds (floats): portable
across SQLite and PostgreSQL and easy to compare for leases."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from marteau.service.job_fields import redacted

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
FINISHED = (SUCCEEDED, FAILED, CANCELLED)

# Job sources
GIT, ARCHIVE, PATH = "git", "archive", "path"


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[float] = mapped_column(Float)
    # an admin's per-user overrides of the quota defaults in the settings (name -> limit)
    quotas: Mapped[dict] = mapped_column(JSON, default=dict)


class ApiToken(Base):
    """A per-user API token; only its SHA-256 is stored (tokens are 256 random bits)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created: Mapped[float] = mapped_column(Float)
    last_used: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked: Mapped[float | None] = mapped_column(Float, nullable=True)
    # what it may do: read (GET), submit (all but admin routes), admin (an admin's all)
    scope: Mapped[str] = mapped_column(String(16), default="submit", server_default="submit")
    expires: Mapped[float | None] = mapped_column(Float, nullable=True)  # None: never

    user: Mapped[User] = relationship()


class LoginSession(Base):
    """A browser login: the cookie holds the token, the table its SHA-256 and CSRF token."""

    __tablename__ = "login_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created: Mapped[float] = mapped_column(Float)
    expires: Mapped[float] = mapped_column(Float)

    user: Mapped[User] = relationship()


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_state_id", "state", "id"),
        Index("ix_jobs_project_key_id", "project_key", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True, index=True
    )
    # source: git (url + optional ref), archive (extracted into the job's folder) or path (admin)
    source_kind: Mapped[str] = mapped_column(String(16))
    source_url: Mapped[str] = mapped_column(Text, default="")
    source_ref: Mapped[str | None] = mapped_column(String(255), nullable=True)
    archive_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # overrides: cycles, duration, nodes, pool, script, test, label, url, thresholds
    overrides: Mapped[dict] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default=QUEUED)
    # filled when the source is prepared (the project's `.marteau.yml` read)
    prepared: Mapped[bool] = mapped_column(Boolean, default=False)
    project_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    pool: Mapped[str | None] = mapped_column(String(100), nullable=True)
    nodes_wanted: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # the nodes `.marteau.yml` names (`nodes: [h1, h2]`), or None: any free nodes of the pool
    node_names: Mapped[list | None] = mapped_column(JSON, nullable=True)
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    # who works on it now (preparing or running), until when
    worker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires: Mapped[float | None] = mapped_column(Float, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[float] = mapped_column(Float)
    started: Mapped[float | None] = mapped_column(Float, nullable=True)
    ended: Mapped[float | None] = mapped_column(Float, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    exit_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    report_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    replay_of: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # public mode: the hosts the bench may send requests to (the owner's verified hosts)
    allowed_hosts: Mapped[list | None] = mapped_column(JSON, nullable=True)
    # cost: the estimate at submission, the price used, and the real node-hours after the job
    estimated_cost: Mapped[float | None] = mapped_column(Float, nullable=True)
    price_per_hour: Mapped[float | None] = mapped_column(Float, nullable=True)
    node_hours: Mapped[float | None] = mapped_column(Float, nullable=True)
    actual_cost: Mapped[float | None] = mapped_column(Float, nullable=True)
    # bytes the job's folder (reports, results, console) takes on disk, for the disk quota
    disk_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # the project its runs are compared within (comparisons.project_key), and the
    # tolerance its `.marteau.yml` sets (`compare: {tolerance: N%}`)
    project_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tolerance: Mapped[float | None] = mapped_column(Float, nullable=True)
    # the report's key figures once the job ends (run_figures); None: no report
    peak_rps: Mapped[float | None] = mapped_column(Float, nullable=True)
    p95: Mapped[float | None] = mapped_column(Float, nullable=True)
    error_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    apdex: Mapped[float | None] = mapped_column(Float, nullable=True)
    # against the project's previous successful run `compared_to`: the figures that
    # moved past the tolerance ("p95:+35%:worse ..."), what the job lists show, and the
    # whole comparison {job, tolerance, changes, runs, diff, trend}, which they do not
    # read (comparisons.record)
    compared_to: Mapped[int | None] = mapped_column(Integer, nullable=True)
    flagged: Mapped[str | None] = mapped_column(String(200), nullable=True)
    comparison: Mapped[dict | None] = mapped_column(JSON, nullable=True)

    owner: Mapped[User | None] = relationship()
    nodes: Mapped[list[JobNode]] = relationship(
        back_populates="job", cascade="all, delete-orphan", order_by="JobNode.node_name"
    )

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def source(self) -> str:
        if self.source_kind == ARCHIVE:
            return f"archive {self.archive_name or ''}".strip()
        return redacted(self.source_url) + (f" @ {self.source_ref}" if self.source_ref else "")


class JobNode(Base):
    """The nodes a job was given (kept after the job ends)."""

    __tablename__ = "job_nodes"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    node_name: Mapped[str] = mapped_column(String(255), primary_key=True)

    job: Mapped[Job] = relationship(back_populates="nodes")


class Node(Base):
    """A load-generating node. `vars` are its Ansible host variables.

    The node is leased to a job while `lease_job_id` is set and `lease_expires` is in
    the future; a lease nobody renews expires, and the node is free again.
    """

    __tablename__ = "nodes"
    __table_args__ = (Index("ix_nodes_pool_name", "pool", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    pool: Mapped[str] = mapped_column(String(100), default="marteau")
    vars: Mapped[dict] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(32), default="unknown")  # last check result
    last_check: Mapped[float | None] = mapped_column(Float, nullable=True)
    lease_job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lease_expires: Mapped[float | None] = mapped_column(Float, nullable=True)
    created: Mapped[float] = mapped_column(Float)


class Worker(Base):
    """A worker process (this machine or another), with its heartbeat."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started: Mapped[float] = mapped_column(Float)
    heartbeat: Mapped[float] = mapped_column(Float)
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    stopped: Mapped[float | None] = mapped_column(Float, nullable=True)


class VerifiedHost(Base):
    """A host a user claims (optionally with a port) and the proof they own it.

    `token` is the secret to publish; `verified` is when the last check succeeded (None
    until then), `method` how (well-known, root or dns) and `addresses` where the name
    pointed then. A verification older than
    the configured lifetime is re-checked before a job uses the host.
    """

    __tablename__ = "verified_hosts"
    __table_args__ = (UniqueConstraint("user_id", "host", "port"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    token: Mapped[str] = mapped_column(String(64))
    created: Mapped[float] = mapped_column(Float)
    verified: Mapped[float | None] = mapped_column(Float, nullable=True)
    method: Mapped[str | None] = mapped_column(String(16), nullable=True)
    last_check: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # the addresses the name resolved to when it was proven (sorted); a job starts only
    # while it still resolves to these (None: proven before they were kept)
    addresses: Mapped[list | None] = mapped_column(JSON, nullable=True)

    user: Mapped[User] = relationship()
