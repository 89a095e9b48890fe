"""A worker: prepares job sources and runs jobs, one at a time.

A job runs `marteau run` (or `settings.run_command`) in its own process group, its
output going to the job's console file. The worker renews its leases while the job
runs and checks for cancel; cancel sends SIGTERM to the group (`marteau run` then
stops the benches, collects and unlocks its nodes) and SIGKILL after `kill_grace`.
A job whose lease is lost gets SIGKILL at once (it is no longer this worker's); the
child gets SIGKILL if the worker itself dies (Linux's parent-death signal), and the
worker that reaps the job kills the rest of its process group (job_processes).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import shlex
import shutil
import signal
import smtplib
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from marteau.errors import MarteauError
from marteau.orchestration.clone import Stopped, clone
from marteau.orchestration.environment import job_environment
from marteau.orchestration.sources import check_links
from marteau.service import comparisons, cost, quotas
from marteau.service.clone_targets import clone_options
from marteau.service.db import Database
from marteau.service.job_processes import JOB_VARIABLE, job_mark, kill_job
from marteau.service.job_runs import outcome, rewrite_config, run_arguments
from marteau.service.mail import check_recipient
from marteau.service.messages import shown
from marteau.service.models import (
    ARCHIVE,
    CANCELLED,
    FAILED,
    GIT,
    Job,
    Worker,
)
from marteau.service.node_pool import (
    check_isolated_nodes,
    check_named_nodes,
    check_now,
    inventory_text,
    refuse_local,
    take_due_check,
)
from marteau.service.scheduler import Claim, Scheduler, reap
from marteau.service.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from marteau.orchestration.project import Project

try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _prctl: Callable[..., int] | None = _libc.prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None
PR_SET_PDEATHSIG = 1
REAP_EVERY = 1.0


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """In a child before exec: send it `signum` when its parent dies, even by SIGKILL."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signum)


def _die_with_worker() -> None:
    """A job's child dies at once with its worker: a graceful stop would write a report
    for a job the reaper fails; the reaper kills the rest of its group (job_processes)."""
    die_with_parent(signal.SIGKILL)


def console_path(settings: Settings, job_id: int) -> Path:
    return settings.job_dir(job_id) / "console.log"


def source_dir(settings: Settings, job: Job) -> Path:
    if job.source_kind == GIT:
        return settings.job_dir(job.id) / "source"
    if job.source_kind == ARCHIVE:
        return settings.job_dir(job.id) / job.source_url
    return Path(job.source_url)


class JobWorker:
    def __init__(self, settings: Settings, db: Database | None = None) -> None:
        self.settings = settings
        self.db = db or Database(settings.db_url)
        # at most 64 characters (the column): a host name alone may take 64
        self.id = f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.scheduler = Scheduler(self.db, self.id, settings.lease_ttl, settings.public)
        self.stopping = False
        self._last_reap = 0.0

    # -- life -------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True

    def register(self) -> None:
        now = time.time()
        with self.db.write() as session:
            session.add(
                Worker(
                    id=self.id,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    started=now,
                    heartbeat=now,
                )
            )

    def run_forever(self, once: bool = False) -> None:
        """Work until SIGTERM/SIGINT (or, with `once`, until the queue has nothing to do)."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        self.register()
        try:
            while not self.stopping:
                if self.step():
                    continue
                if once:
                    break
                time.sleep(self.settings.poll_interval)
        finally:
            with self.db.write() as session:
                session.execute(
                    update(Worker)
                    .where(Worker.id == self.id)
                    .values(stopped=time.time(), job_id=None)
                )

    def step(self) -> bool:
        """One look at the queue: reap, prepare one job or run one, else check a node
        that is due; True if it did work."""
        now = time.time()
        if now - self._last_reap >= REAP_EVERY:
            self._last_reap = now
            for reaped in reap(self.db):
                killed = kill_job(self.settings.db_url, reaped)
                self._log(
                    reaped,
                    "job failed: its worker was lost (lease expired)"
                    + (f"; killed its process groups {sorted(killed)}" if killed else ""),
                )
            with self.db.write() as session:
                session.execute(update(Worker).where(Worker.id == self.id).values(heartbeat=now))
        job_id = self.scheduler.claim_prepare()
        if job_id is not None:
            self._guarded(job_id, self.prepare, job_id)
            return True
        claim = self.scheduler.claim_run()
        if claim is not None:
            self._guarded(claim.job_id, self.run_job, claim)
            return True
        node = take_due_check(self.db, self.settings)  # nothing else to do: a node's check
        if node is not None:
            check_now(self.db, self.settings, node)
            return True
        return False

    def _guarded(self, job_id: int, work, *args) -> None:
        """Run `work`; an unexpected error fails this job instead of killing the worker."""
        try:
            work(*args)
        except Exception as exc:  # noqa: BLE001 - reported on the job, the worker goes on
            import traceback

            self._log(job_id, "internal error:\n" + traceback.format_exc())
            self.scheduler.finish(job_id, FAILED, f"internal error: {exc!r}")

    # -- console ----------------------------------------------------------------

    def _log(self, job_id: int, message: str) -> None:
        path = console_path(self.settings, job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%H:%M:%S")
        with open(path, "a", encoding="utf-8") as console:
            console.write(f"[marteau serve {stamp}] {message}\n")

    # -- supervision --------------------------------------------------------------

    def _supervise(
        self, job_id: int, command: list[str], cwd: Path, deadline: float | None = None
    ) -> tuple[int, str | None]:
        """Run `command` in its own process group, output to the console; renew the
        leases, honour cancel and the `deadline` (epoch: the job duration quota).
        Returns (exit code, why it was stopped or None)."""
        settings = self.settings
        with open(console_path(settings, job_id), "ab") as console:
            proc = subprocess.Popen(
                command,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_worker,
                env=self._job_env(job_id),
            )
        watch = _Watch(self, job_id, deadline)
        stopped: str | None = None
        terminated_at: float | None = None
        killed = False
        while True:
            try:
                code = proc.wait(timeout=min(settings.poll_interval, 0.5))
                break
            except subprocess.TimeoutExpired:
                pass
            why = watch()  # every time: the leases are renewed during the grace too
            stopped = stopped or why
            now = time.monotonic()
            if stopped == "lost" and not killed:  # not ours: no report, no more load
                self._log(job_id, "the job's lease was lost: SIGKILL to its process group")
                _killpg(proc.pid, signal.SIGKILL)
                killed = True
            elif stopped and terminated_at is None:
                self._log(job_id, f"stopping the job ({stopped}): SIGTERM to its process group")
                _killpg(proc.pid, signal.SIGTERM)
                terminated_at = now
            elif (
                terminated_at is not None
                and not killed
                and now - terminated_at > settings.kill_grace
            ):
                self._log(job_id, f"still running after {settings.kill_grace:g}s: SIGKILL")
                _killpg(proc.pid, signal.SIGKILL)
                killed = True
        _killpg(proc.pid, signal.SIGKILL)  # whatever the job left in its group
        return code, stopped

    def _job_env(self, job_id: int) -> dict[str, str]:
        """A job's processes' environment: an allow-list, so the worker's secrets (admin
        password, settings) stay here."""
        return job_environment(
            os.environ,
            self.settings.job_env,
            PYTHONUNBUFFERED="1",
            **{JOB_VARIABLE: job_mark(self.settings.db_url, job_id)},
        )

    def _cancel_requested(self, job_id: int) -> bool:
        with self.db.read() as session:
            row = session.execute(
                select(Job.cancel_requested, Job.state).where(Job.id == job_id)
            ).first()
        return row is None or bool(row[0]) or row[1] == CANCELLED

    # -- preparing ----------------------------------------------------------------

    def prepare(self, job_id: int) -> None:
        with self.db.read() as session:
            job = session.get(Job, job_id)
            owner = job.owner.email if job is not None and job.owner else None
        if job is None:
            return
        settings = self.settings
        job_dir = settings.job_dir(job.id)
        job_dir.mkdir(parents=True, exist_ok=True)
        try:
            src = source_dir(settings, job)
            if job.source_kind == GIT:
                self._fetch(job, src)
            self._log(job.id, f"reading the project in {src}")
            from marteau.orchestration.project import CONFIG_NAME, load_config

            overrides = job.overrides or {}
            if job.source_kind != "path" and (overrides.get("script") or overrides.get("test")):
                rewrite_config(src / CONFIG_NAME, overrides)
            project = load_config(src / CONFIG_NAME, job.source)
            check_recipient(settings, owner, project.email)
            pool = str(overrides.get("pool") or project.pool or "marteau")
            # a count given with the job overrides the names of `.marteau.yml`
            names = None if overrides.get("nodes") else (project.hosts or None)
            if names:
                check_named_nodes(self.db, pool, names)
            if settings.public:
                if project.monitor is not None:
                    raise MarteauError(
                        f"{CONFIG_NAME}: monitor: not on a public service (the monitor agent "
                        "would run on hosts outside the job's nodes, and a Prometheus URL "
                        "would be fetched from the service's own machine)"
                    )
                wanted = len(names) if names else int(overrides.get("nodes") or project.nodes or 1)
                check_isolated_nodes(self.db, pool, names, wanted)
            if settings.hosts_enforced:
                from marteau.service.hosts import keep_allowed_hosts

                allowed = keep_allowed_hosts(self.db, settings, job, project)
                self._log(job.id, f"target verified; the bench may reach: {', '.join(allowed)}")
        except MarteauError as exc:
            self._log(job.id, f"Error: {exc}")
            reason = shown(f"bad input: {exc}", settings.data_dir)
            if self.scheduler.finish(job.id, FAILED, reason, exit_code=2):
                self.mail(job.id, FAILED, reason)
            return
        except _Stopped as exc:
            self.scheduler.finish(job.id, CANCELLED if exc.why == "cancel" else FAILED, exc.reason)
            return
        nodes = len(names) if names else int(overrides.get("nodes") or project.nodes or 1)
        try:
            self._admit(job, project, pool, nodes)
        except quotas.QuotaExceeded as exc:
            self._log(job.id, f"Error: {exc}")
            if self.scheduler.finish(job.id, FAILED, str(exc), exit_code=2):
                self.mail(job.id, FAILED, str(exc))
            return
        self._log(
            job.id,
            f"project {project.name or project.test}: {project.script} {project.test}; "
            f"waiting for {', '.join(names) if names else f'{nodes} node(s)'} of pool {pool!r}",
        )
        key = comparisons.project_key(job.owner_id, project.name, job)
        self.scheduler.prepared(
            job.id, pool, nodes, project.name, project.email, names, key, project.tolerance
        )

    def _admit(self, job: Job, project: Project, pool: str, nodes: int) -> None:
        """Keep the job's plan and estimate, then check the quotas that needed them."""
        plan = cost.read_plan(project, job.overrides or {}, pool, nodes)
        estimate = cost.plan_job(self.db, self.settings, job.id, plan) if plan else None
        if estimate is not None:
            self._log(
                job.id,
                f"estimate: {estimate.nodes} node(s) x ({estimate.bench_seconds:g} s of bench + "
                f"{estimate.overhead_seconds:.0f} s of provisioning) x "
                f"{estimate.price_per_hour:g}/node-hour = {estimate.cost:.4f}",
            )
        with self.db.read() as session:
            quotas.check_prepared(session, self.settings, job, nodes, plan, estimate)

    def _fetch(self, job: Job, src: Path) -> None:
        """Clone the job's git URL under the clone limits, git's output in the console;
        cancel, a lost lease or the worker stopping end it at once."""
        if src.exists():
            shutil.rmtree(src)
        url, settings = job.source_url, self.settings
        self._log(
            job.id, f"git clone {url}" + (f" (ref {job.source_ref})" if job.source_ref else "")
        )
        try:
            clone(
                url,
                src,
                job.source_ref,
                settings.clone_limits,
                console_path(settings, job.id),
                env=self._job_env(job.id),
                stop=_Watch(self, job.id),
                preexec=die_with_parent,  # SIGTERM: the group's `timeout` passes it on
                options=clone_options(url, settings),
            )
        except Stopped as exc:
            raise _Stopped(exc.why) from None
        except OSError as exc:
            raise MarteauError(f"cannot run git: {exc}") from None
        check_links(src, url)

    # -- running ------------------------------------------------------------------

    def run_job(self, claim: Claim) -> None:
        settings = self.settings
        with self.db.read() as session:
            job = session.get(Job, claim.job_id)
            owner = job.owner.email if job and job.owner else "anonymous"
            assert job is not None
            limit = quotas.job_seconds_limit(session, settings, job)
            max_users = quotas.users_per_node_limit(session, settings, job)
        deadline = (job.started or time.time()) + limit if limit else None
        job_dir = settings.job_dir(job.id)
        job_dir.mkdir(parents=True, exist_ok=True)
        try:
            # a node enabled before --public, or by a non-public service on this database
            for node in claim.nodes:
                refuse_local(settings, node.name, node.vars)
            if settings.hosts_enforced:  # a name pointed elsewhere since its proof
                from marteau.service.hosts import check_addresses

                check_addresses(self.db, settings, job.owner_id, job.allowed_hosts or [])
        except MarteauError as exc:
            self._log(job.id, f"Error: {exc}")
            if self.scheduler.finish(job.id, FAILED, str(exc), exit_code=2):
                self.mail(job.id, FAILED, str(exc))
            return
        names = ", ".join(n.name for n in claim.nodes)
        self._log(job.id, f"running on {len(claim.nodes)} node(s) of pool {claim.pool!r}: {names}")
        inventory = job_dir / "inventory.ini"
        inventory.write_text(inventory_text(claim.pool, claim.nodes))
        src = source_dir(settings, job)
        try:
            command = (
                settings.run_command
                + [str(src)]
                + run_arguments(job, claim, job_dir, src, settings, max_users)
            )
            command += ["-e", f"marteau_owner={owner} (marteau serve job {job.id})"]
        except MarteauError as exc:
            self._log(job.id, f"Error: {exc}")
            self.scheduler.finish(job.id, FAILED, f"bad input: {exc}", exit_code=2)
            return
        self._log(job.id, "$ " + shlex.join(command))
        try:
            code, stopped = self._supervise(job.id, command, job_dir, deadline)
        except OSError as exc:
            self._log(job.id, f"Error: cannot start {command[0]}: {exc}")
            self.scheduler.finish(job.id, FAILED, f"cannot start {command[0]}: {exc}")
            return
        state, reason = outcome(code, stopped, console_path(settings, job.id))
        if stopped == "quota" and limit:
            state, reason = FAILED, quotas.duration_message(limit)
        report = job_dir / "report" / "index.html"
        report_path = "report/index.html" if report.is_file() else None
        log = functools.partial(self._log, job.id)
        figures = comparisons.keep_rows(settings, job.id, log) if report_path else None
        self._log(job.id, f"job {state}: {reason}")
        finished = self.scheduler.finish(
            job.id,
            state,
            reason,
            exit_code=code,
            report_path=report_path,
            then=lambda session: self._account(session, job.id, figures),
        )
        if finished and figures is not None:  # the nodes are free: the reports now
            comparisons.build_reports(self.db, settings, job.id, log)
        quotas.prune_owner(self.db, settings, job.owner_id)
        if finished:
            self.mail(job.id, state, reason, report_path is not None)

    def _account(
        self, session: Session, job_id: int, figures: comparisons.KeyFigures | None = None
    ) -> None:
        """The job's actual cost, disk size and key figures, in the transaction that
        ends it."""
        cost.record_actual(session, self.settings, job_id)
        quotas.record_disk(session, self.settings, job_id)
        if figures is not None:
            comparisons.record(session, job_id, figures)

    def mail(self, job_id: int, state: str, reason: str, has_report: bool = False) -> None:
        """Mail the owner and the project's `email`; a failure is logged on the job only."""
        from marteau.service.mail import build_message, send

        settings = self.settings
        if not settings.smtp_host:
            return
        with self.db.read() as session:
            job = session.get(Job, job_id)
            owner = job.owner.email if job and job.owner else None
        if job is None:
            return
        recipients = sorted({e for e in (owner, job.email) if e})
        if not settings.smtp_host or not recipients:
            return
        message = build_message(
            settings,
            recipients,
            job.id,
            job.project_name,
            state,
            reason,
            settings.job_dir(job.id),
            has_report,
            figures=comparisons.figures_of(job),
            comparison=job.comparison,
        )
        try:
            send(settings, message)
        except (OSError, smtplib.SMTPException) as exc:
            self._log(job.id, f"mail not sent to {', '.join(recipients)}: {exc}")
            return
        self._log(job.id, f"mail sent to {', '.join(recipients)}")


class _Watch:
    """What stops a job's process, asked every fraction of a second: a lost lease
    ("lost"), cancel, the worker stopping, the `deadline` (epoch: "quota"). It renews
    the leases every third of their life on the way."""

    def __init__(self, worker: JobWorker, job_id: int, deadline: float | None = None) -> None:
        self.worker, self.job_id, self.deadline = worker, job_id, deadline
        ttl = worker.settings.lease_ttl
        self.renew_every = max(min(ttl / 3, 10.0), 0.05)
        self.next_renew = time.monotonic() + self.renew_every

    def __call__(self) -> str | None:
        worker = self.worker
        now = time.monotonic()
        if now >= self.next_renew:
            self.next_renew = now + self.renew_every
            ours, cancel = worker.scheduler.renew(self.job_id)
            if not ours:
                return "lost"
        else:
            cancel = worker._cancel_requested(self.job_id)
        if cancel:
            return "cancel"
        if worker.stopping:
            return "stopping"
        if self.deadline is not None and time.time() >= self.deadline:
            return "quota"
        return None


class _Stopped(Exception):
    def __init__(self, why: str) -> None:
        self.why = why
        self.reason = {
            "cancel": "cancelled",
            "stopping": "interrupted: the worker was stopped",
        }.get(why, "worker lost its lease")


def _killpg(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
