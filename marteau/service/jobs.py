"""Creating, replaying and deleting jobs, and what they look like in the API.

Shared by the JSON API and the web pages."""

from __future__ import annotations

import re
import secrets
import shutil
import time
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from marteau.errors import MarteauError
from marteau.orchestration.clone import clone
from marteau.orchestration.project import SCRIPT
from marteau.orchestration.sources import check_links
from marteau.orchestration.values import MAX_LABEL, check_text
from marteau.service import archive, quotas
from marteau.service.clone_targets import SCP_LIKE, clone_options
from marteau.service.comparisons import comparison_json, flagged_changes, key_figures_json
from marteau.service.db import Database
from marteau.service.job_fields import check_no_credentials, redacted
from marteau.service.mail import check_recipient
from marteau.service.messages import shown
from marteau.service.models import ARCHIVE, FINISHED, GIT, PATH, Job, JobNode, User
from marteau.service.node_pool import POOL
from marteau.service.settings import Settings

CYCLES = re.compile(r"^\d+(:\d+)*$")
TEST = re.compile(r"^[A-Za-z_]\w*\.[A-Za-z_]\w*$")
MAX_VALUE = 2000  # the longest override (a URL); a label is shorter
OVERRIDES = (
    "cycles",
    "duration",
    "nodes",
    "pool",
    "script",
    "test",
    "label",
    "url",
    "thresholds",
    "split",
)


def check_source(url: str, admin: bool) -> tuple[str, str]:
    """(kind, url) for a git URL or, for admins, a local path or file:// URL."""
    url = url.strip()
    if not url:
        raise MarteauError("give a git URL or an archive")
    if url.startswith("-") or any(c in url for c in "\n\r\0"):
        raise MarteauError(f"{url!r}: not a git URL")
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https", "ssh", "git") and urlsplit(url).netloc:
        check_no_credentials(url)
        return GIT, url
    if SCP_LIKE.match(url):
        return GIT, url
    if scheme == "file" or url.startswith(("/", "~", ".")):
        if not admin:
            raise MarteauError(
                f"{url}: only http(s), ssh and git URLs are accepted (local sources are for admins)"
            )
        if scheme == "file":
            return GIT, url
        path = Path(url).expanduser().resolve()
        return PATH, str(path)
    raise MarteauError(f"{url!r}: expected an http(s), ssh or git URL")


def _relative(key: str, value: str) -> str:
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts or "\\" in value:
        raise MarteauError(f"{key} {value!r}: expected a path inside the project")
    return value


def check_overrides(values: dict[str, Any]) -> dict[str, Any]:
    """Validated overrides; empty values are dropped."""
    out: dict[str, Any] = {}
    for key in OVERRIDES:
        value = values.get(key)
        if value is None or value == "" or value is False:
            continue
        if isinstance(value, str):  # data everywhere after, but one bounded line
            value = check_text(key, value.strip(), MAX_LABEL if key == "label" else MAX_VALUE)
        if key == "cycles":
            value = str(value).strip()
            if not CYCLES.match(value) or "0" in value.split(":"):
                raise MarteauError(f"cycles {value!r}: expected users per cycle such as 10:20:30")
        elif key in ("duration", "nodes"):
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise MarteauError(f"{key} {value!r}: expected a whole number") from None
            if not 1 <= value <= (86400 if key == "duration" else 1000):
                raise MarteauError(f"{key} {value}: out of range")
        elif key == "pool":
            value = str(value).strip()
            if not POOL.match(value):
                raise MarteauError(
                    f"pool {value!r}: expected an inventory group name (letters, digits, _)"
                )
        elif key == "test":
            value = str(value).strip()
            if not TEST.match(value):
                raise MarteauError(f"test {value!r}: expected Class.method")
        elif key in ("script", "thresholds"):
            value = _relative(key, str(value).strip())
            if key == "script" and not SCRIPT.match(value):
                raise MarteauError(
                    f"script {value!r}: expected a file name (letters, digits, _.-/)"
                )
        elif key == "url":
            value = str(value).strip()
            if urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc:
                raise MarteauError(f"url {value!r}: expected an http(s) URL")
        elif key == "split":
            value = value in (True, "1", "true", "on", "yes")
        out[key] = value
    return out


def create_job(
    db: Database,
    settings: Settings,
    user: User,
    fields: dict[str, Any],
    upload: tuple[str, bytes] | None = None,
) -> Job:
    """Queue a job from a git URL (+ ref), a local path (admins) or an uploaded archive."""
    overrides = check_overrides(fields)
    quotas.make_room(db, settings, user)
    ref = (fields.get("ref") or "").strip() or None
    if ref and (ref.startswith("-") or not re.match(r"^[\w./@^~{}-]+$", ref)):
        raise MarteauError(f"ref {ref!r}: not a branch, tag or commit")
    if upload is not None:
        name, data = upload
        if len(data) > settings.max_upload_mb * 2**20:
            raise MarteauError(f"{name}: larger than {settings.max_upload_mb} MB")
        settings.jobs_dir.mkdir(parents=True, exist_ok=True)
        staging = settings.jobs_dir / f".upload-{secrets.token_hex(8)}"
        try:
            root = _extract_within_quota(db, settings, user, name, data, staging / "source")
            relative = str(root.relative_to(staging))
            check_target(db, settings, user, overrides, root)
            adding = quotas.folder_bytes(staging)
            with db.write() as session:
                quotas.check_submission(session, settings, user, overrides, adding)
                job = Job(
                    owner_id=user.id,
                    source_kind=ARCHIVE,
                    source_url=relative,
                    archive_name=Path(name).name[:255],
                    overrides=overrides,
                    created=time.time(),
                )
                session.add(job)
                session.flush()
                target = settings.job_dir(job.id)
                if target.exists():
                    shutil.rmtree(target)
                staging.rename(target)
            return job
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    kind, url = check_source(str(fields.get("git_url") or fields.get("path") or ""), user.is_admin)
    if kind == PATH and ref:
        raise MarteauError("a ref goes with a git URL, not a local path")
    check_target(db, settings, user, overrides, Path(url) if kind == PATH else None)
    with db.write() as session:
        quotas.check_submission(session, settings, user, overrides)
        job = Job(
            owner_id=user.id,
            source_kind=kind,
            source_url=url,
            source_ref=ref,
            overrides=overrides,
            created=time.time(),
        )
        session.add(job)
    return job


def _extract_within_quota(
    db: Database, settings: Settings, user: User, name: str, data: bytes, dest: Path
) -> Path:
    """Unpack an upload, stopping at the expanded-size cap or the room the owner's disk
    quota leaves, whichever is smaller."""
    cap = settings.max_extracted_mb * 2**20
    room = quotas.disk_room(db, settings, user)
    try:
        limit = cap if room is None else min(cap, room)
        return archive.extract(data, name, dest, limit, settings.max_archive_members)
    except archive.TooLarge:
        if room is not None and room < cap:
            raise quotas.disk_refusal(db, settings, user, room) from None
        raise


def check_target(
    db: Database, settings: Settings, user: User, overrides: dict[str, Any], root: Path | None
) -> None:
    """When hosts are enforced, refuse a job whose target is not a proven host of its
    owner, as soon as the target is known: the `url` override, or the conf of a project
    at hand (`root`). A git project's conf is checked when a worker prepares the job."""
    if not settings.hosts_enforced:
        return
    from marteau.orchestration.project import CONFIG_NAME, load_config
    from marteau.service.hosts import allowed_hosts_for, job_allowed_hosts

    if root is not None:
        project = load_config(root / CONFIG_NAME)
        job_allowed_hosts(db, settings, user.id, user.email, project, overrides)
    elif overrides.get("url"):
        allowed_hosts_for(db, settings, user.id, user.email, overrides["url"], "the job's url")


def _preview_clone(settings: Settings, url: str, ref: str | None, root: Path) -> None:
    """The preview's clone: a job's limits, git's output in a file beside `root`."""
    try:
        options = clone_options(url, settings)
        clone(url, root, ref, settings.clone_limits, root.parent / "git.log", options=options)
    except OSError as exc:
        raise MarteauError(f"{url}: cannot run git: {exc}") from None
    check_links(root, url)


def preview_project(
    settings: Settings, user: User, fields: dict[str, Any], upload: tuple[str, bytes] | None = None
) -> dict[str, Any]:
    """The project's `.marteau.yml` as a job would read it (a shallow clone or the
    archive, in a temporary folder); MarteauError for any bad input."""
    import tempfile

    from marteau.orchestration.project import CONFIG_NAME, load_config
    from marteau.service.cost import read_plan
    from marteau.service.hosts import conf_url

    ref = (fields.get("ref") or "").strip() or None
    with tempfile.TemporaryDirectory(prefix="marteau-preview-") as tmp:
        if upload is not None:
            name, data = upload
            if len(data) > settings.max_upload_mb * 2**20:
                raise MarteauError(f"{name}: larger than {settings.max_upload_mb} MB")
            root = archive.extract(
                data,
                name,
                Path(tmp) / "source",
                settings.max_extracted_mb * 2**20,
                settings.max_archive_members,
            )
            source = Path(name).name
        else:
            kind, url = check_source(
                str(fields.get("git_url") or fields.get("path") or ""), user.is_admin
            )
            if kind == PATH:
                root = Path(url)
            else:
                root = Path(tmp) / "source"
                _preview_clone(settings, url, ref, root)
            source = url
        project = load_config(root / CONFIG_NAME, source)
        check_recipient(settings, user.email, project.email)
        overrides = check_overrides(fields)
        pool = str(overrides.get("pool") or project.pool or "marteau")
        plan = read_plan(
            project, overrides, pool, int(overrides.get("nodes") or project.nodes or 1)
        )
        target: str | None
        target_from: str | None
        try:
            target, target_from = conf_url(project.test_dir, root, project.test, overrides)
        except MarteauError:
            if settings.hosts_enforced:
                raise
            target = target_from = None
        return {
            "name": project.name or None,
            "script": project.script,
            "test": project.test,
            "cycles": project.cycles,
            "duration": project.duration,
            "nodes": project.nodes,
            "hosts": project.hosts or None,
            "pool": project.pool,
            "email": project.email,
            "deps": project.deps or None,
            "thresholds": str(project.thresholds.relative_to(root)) if project.thresholds else None,
            "wdir": project.wdir or None,
            "commit": project.commit,
            "target": target,
            "target_from": target_from,
            "plan": plan.as_json() if plan else None,
        }


def replay_job(db: Database, settings: Settings, user: User, job: Job) -> Job:
    """A new queued job with the same source and overrides."""
    quotas.make_room(db, settings, user)
    with db.write() as session:
        quotas.check_submission(session, settings, user, dict(job.overrides or {}))
        new = Job(
            owner_id=user.id,
            source_kind=job.source_kind,
            source_url=job.source_url,
            source_ref=job.source_ref,
            archive_name=job.archive_name,
            overrides=dict(job.overrides or {}),
            created=time.time(),
            replay_of=job.id,
        )
        session.add(new)
        session.flush()
        if job.source_kind == ARCHIVE:
            source = settings.job_dir(job.id) / "source"
            if not source.is_dir():
                raise MarteauError(f"job {job.id}: its uploaded source is gone")
            shutil.copytree(source, settings.job_dir(new.id) / "source", symlinks=True)
    return new


def delete_job(db: Database, settings: Settings, job_id: int) -> None:
    with db.write() as session:
        job = session.get(Job, job_id)
        if job is None:
            return
        if job.state not in FINISHED:
            raise MarteauError(f"job {job_id} is {job.state}: cancel it first")
        session.delete(job)
    shutil.rmtree(settings.job_dir(job_id), ignore_errors=True)


def job_nodes(db: Database, job_id: int) -> list[str]:
    with db.read() as session:
        return list(session.scalars(select(JobNode.node_name).where(JobNode.job_id == job_id)))


def job_json(
    job: Job, settings: Settings, nodes: list[str] | None = None, listed: bool = False
) -> dict[str, Any]:
    """The job in the API; `listed`: a row of a page of jobs (job_lists), without the
    whole comparison and its report links."""
    base = settings.public_url
    out = {
        "id": job.id,
        "state": job.state,
        "source": {
            "kind": job.source_kind,
            "url": redacted(job.source_url) if job.source_kind != ARCHIVE else None,
            "ref": job.source_ref,
            "archive": job.archive_name,
        },
        "overrides": job.overrides or {},
        "owner": job.owner.email if job.owner else None,
        "project": job.project_name,
        "pool": job.pool,
        "nodes_wanted": job.nodes_wanted,
        "node_names": job.node_names,
        "nodes": nodes if nodes is not None else [n.node_name for n in job.nodes],
        "allowed_hosts": job.allowed_hosts,
        "created": job.created,
        "started": job.started,
        "ended": job.ended,
        "exit_code": job.exit_code,
        "exit_reason": shown(job.exit_reason, settings.data_dir) if job.exit_reason else None,
        "cancel_requested": job.cancel_requested,
        "replay_of": job.replay_of,
        "cost": {
            "estimated": job.estimated_cost,
            "price_per_hour": job.price_per_hour,
            "node_hours": job.node_hours,
            "actual": job.actual_cost,
        },
        "disk_bytes": job.disk_bytes,
        "url": f"{base}/jobs/{job.id}",
        "console_url": f"{base}/api/jobs/{job.id}/console",
        "report_url": f"{base}/jobs/{job.id}/report/" if job.report_path else None,
        "project_key": job.project_key,
        "key_figures": key_figures_json(job),
        "compared_to": job.compared_to,
        "flagged": flagged_changes(job.flagged) if job.flagged else None,
    }
    if not listed:
        out.update(comparison_json(job, f"{base}/jobs/{job.id}/"))
    return out
