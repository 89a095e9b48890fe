"""Verified hosts: a user proves they own a target before the service sends load to it.

A user registers HOST or HOST:PORT and gets a secret token. Publishing the token in any
of three places proves ownership: `http(s)://HOST[:PORT]/.well-known/marteau/<token>`,
`http(s)://HOST[:PORT]/<token>` (the original Marteau's form), or the DNS TXT record
`_marteau.HOST` = `marteau-verification=<token>`. Every way is tried at once, so a check
lasts about one timeout however many fail. Rows are per user: one user's proof is
nobody else's. A proof older than `verification_days` is checked again before a job
uses the host. A row without a port covers every port of the host.

A proof holds for the addresses the name had: the name is resolved first (with
`dns_server` when set), each HTTP proof is fetched from every one of those addresses
(so a name pointing at the owner's server and at someone else's proves nothing), and
the row keeps them. When a job starts, its hosts' names are resolved again: a name
pointed elsewhere since needs a new proof, and the job fails saying so
(`check_addresses`). A DNS TXT proof shows control of the name, not of the machines it
points to.

In public mode a check is a request anyone can make the service send, so it must not
be a way into the service's network nor a port scanner: it reaches public addresses
only (the resolved addresses are checked, then connected to as they are, and each
redirect hop goes to that same address), and every failure reads the same
(`NOT_PROVEN`), the reason going to the server's log only.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, or_, select, update

from marteau.errors import MarteauError
from marteau.service.db import Database
from marteau.service.host_names import (
    DNS,
    ROOT,
    WELL_KNOWN,
    Target,
    dns_record,
    host_label,
    is_ip,
    new_token,
    normal_name,
    parse_host,
    proof_urls,
)
from marteau.service.host_proofs import (
    NOT_PROVEN,
    ProofFailed,
    check_public,
    prove,
    resolve,
)
from marteau.service.models import Job, User, VerifiedHost
from marteau.service.settings import Settings

log = logging.getLogger(__name__)

# -- rows --------------------------------------------------------------------------


def is_fresh(row: VerifiedHost, settings: Settings) -> bool:
    """Proven within `verification_days`, with the addresses it was proven on kept."""
    if row.verified is None or row.addresses is None:
        return False
    return time.time() - row.verified < settings.verification_days * 86400


def status(row: VerifiedHost, settings: Settings) -> str:
    """verified, expired (to be checked again), failed (last check) or pending."""
    if row.verified is not None:
        return "verified" if is_fresh(row, settings) else "expired"
    return "failed" if row.last_error else "pending"


def host_json(row: VerifiedHost, settings: Settings) -> dict[str, Any]:
    name, value = dns_record(row.host, row.token)
    urls = proof_urls(row.host, row.port, row.token)
    proofs: list[dict[str, Any]] = [
        {"method": WELL_KNOWN, "urls": urls[WELL_KNOWN], "body": row.token},
        {"method": ROOT, "urls": urls[ROOT], "body": row.token},
    ]
    if not is_ip(row.host):
        proofs.append({"method": DNS, "name": name, "type": "TXT", "value": value})
    lifetime = settings.verification_days * 86400
    return {
        "id": row.id,
        "host": host_label(row.host, row.port),
        "name": row.host,
        "port": row.port,
        "token": row.token,
        "status": status(row, settings),
        "created": row.created,
        "verified": row.verified,
        "expires": row.verified + lifetime if row.verified is not None else None,
        "method": row.method,
        "addresses": row.addresses,
        "last_check": row.last_check,
        "last_error": row.last_error,
        "proofs": proofs,
    }


def user_hosts(db: Database, user_id: int) -> list[VerifiedHost]:
    with db.read() as session:
        return list(
            session.scalars(
                select(VerifiedHost)
                .where(VerifiedHost.user_id == user_id)
                # a host without a port first on every backend (PostgreSQL sorts NULL last)
                .order_by(VerifiedHost.host, VerifiedHost.port.nulls_first())
            )
        )


def get_host(db: Database, user_id: int, host_id: int) -> VerifiedHost | None:
    """The user's own row, or None (another user's row is as good as absent)."""
    with db.read() as session:
        row = session.get(VerifiedHost, host_id)
    return row if row is not None and row.user_id == user_id else None


def add_host(db: Database, user_id: int, text: str, most: int = 0) -> VerifiedHost:
    """Register HOST[:PORT] for the user, who may have `most` hosts at most (0: any)."""
    host, port = parse_host(text)
    with db.write() as session:
        if most:
            count = session.scalar(
                select(func.count())
                .select_from(VerifiedHost)
                .where(VerifiedHost.user_id == user_id)
            )
            if count >= most:  # type: ignore[operator]  # COUNT gives one row: never None
                raise MarteauError(
                    f"host {host_label(host, port)}: you have {count} hosts, the most a user "
                    "may have here: remove one you no longer use first"
                )
        exists = session.scalar(
            select(VerifiedHost.id).where(
                VerifiedHost.user_id == user_id,
                VerifiedHost.host == host,
                VerifiedHost.port.is_(None) if port is None else VerifiedHost.port == port,
            )
        )
        if exists:
            raise MarteauError(f"host {host_label(host, port)}: already in your list")
        row = VerifiedHost(
            user_id=user_id, host=host, port=port, token=new_token(), created=time.time()
        )
        session.add(row)
    return row


def remove_host(db: Database, user_id: int, host_id: int) -> bool:
    with db.write() as session:
        row = session.get(VerifiedHost, host_id)
        if row is None or row.user_id != user_id:
            return False
        session.delete(row)
    return True


class CheckedRecently(MarteauError):
    """A check of this host ran less than `verify_interval` seconds ago."""

    def __init__(self, label: str, ago: float, wait: float) -> None:
        super().__init__(
            f"host {label} was checked {ago:.0f} s ago: check it again in {wait:.0f} s"
        )
        self.wait = wait


def _claim_check(db: Database, settings: Settings, row: VerifiedHost) -> float:
    """Take the host's next check, or raise CheckedRecently: a user (or many jobs)
    asking again and again would make the service a source of requests to that host.
    One statement, so two processes asking at once cannot both get it."""
    now = time.time()
    recent = now - settings.verify_interval
    with db.write() as session:
        # an UPDATE's or DELETE's Result is a CursorResult (rowcount); execute() says Result
        taken = session.execute(  # type: ignore[attr-defined]
            update(VerifiedHost)
            .where(
                VerifiedHost.id == row.id,
                or_(VerifiedHost.last_check.is_(None), VerifiedHost.last_check <= recent),
            )
            .values(last_check=now)
        ).rowcount
        if not taken:
            last = session.scalar(select(VerifiedHost.last_check).where(VerifiedHost.id == row.id))
    if not taken:
        if last is None:
            raise MarteauError(f"host {host_label(row.host, row.port)}: removed meanwhile")
        ago = max(0.0, now - last)
        raise CheckedRecently(
            host_label(row.host, row.port), ago, max(1.0, settings.verify_interval - ago)
        )
    return now


def check_host(db: Database, settings: Settings, row: VerifiedHost) -> VerifiedHost:
    """Try every method now and record the outcome; CheckedRecently if the host was
    checked less than `verify_interval` seconds ago. The network is not touched
    inside a write transaction (SQLite's write lock would be held for the whole check)."""
    checked = _claim_check(db, settings, row)
    try:
        addresses = resolve(row.host, settings)
        if settings.public:
            check_public(addresses, settings)
    except ProofFailed as exc:
        method, error, addresses = None, str(exc), []
    else:
        method, error = prove(row.host, row.port, row.token, settings, addresses)
    if not method and settings.public:  # nothing to tell a port scanner
        label = host_label(row.host, row.port)
        log.warning("host %s (user %s) not proven: %s", label, row.user_id, error)
        error = NOT_PROVEN
    with db.write() as session:
        fresh = session.get(VerifiedHost, row.id)
        if fresh is None:
            raise MarteauError(f"host {host_label(row.host, row.port)}: removed meanwhile")
        fresh.last_check = checked
        if method:
            fresh.verified, fresh.method, fresh.last_error = checked, method, None
            fresh.addresses = addresses
        else:
            fresh.last_error = error
    return fresh


def check_addresses(
    db: Database, settings: Settings, user_id: int | None, labels: list[str]
) -> None:
    """At job start: each of the job's hosts (HOST[:PORT] labels) must still resolve to
    the addresses it was proven on; MarteauError naming every host that moved."""
    rows = {host_label(row.host, row.port): row for row in user_hosts(db, user_id or 0)}
    moved = []
    for label in labels:
        row = rows.get(label)
        if row is None or row.addresses is None:
            moved.append(f"host {label}: no longer one of the owner's proven hosts")
            continue
        try:
            now = resolve(row.host, settings)
        except ProofFailed as exc:
            moved.append(f"host {label}: {exc}")
            continue
        if now != row.addresses:
            moved.append(
                f"host {label}: the name now resolves to {', '.join(now)}, not to "
                f"{', '.join(row.addresses)} where it was proven"
            )
    if moved:
        raise MarteauError(
            "; ".join(moved) + ": prove it again on the Hosts page (/hosts, Verify) "
            "and replay the job"
        )


def covers(row: VerifiedHost, target: Target) -> bool:
    return row.host == target.host and (row.port is None or row.port == target.port)


def parse_target(url: str, where: str) -> Target:
    """The host and port of a target URL; MarteauError naming `where` it came from."""
    try:
        split = urlsplit(url.strip())
        port = split.port
    except ValueError as exc:
        raise MarteauError(f"{where}: {url!r}: {exc}") from None
    if split.scheme not in ("http", "https") or not split.hostname:
        raise MarteauError(f"{where}: {url!r}: expected an http(s) URL")
    host = normal_name(split.hostname, where, url)
    return Target(host, port or (443 if split.scheme == "https" else 80))


def ensure_fresh(
    db: Database, settings: Settings, user_id: int, target: Target, email: str = ""
) -> VerifiedHost:
    """The user's row that covers `target` with a fresh proof, checking stale or
    unproven rows again; MarteauError naming the host when there is none."""
    rows = [row for row in user_hosts(db, user_id) if covers(row, target)]
    label = host_label(target.host, target.port)
    for row in rows:
        if is_fresh(row, settings):
            return row
    errors = []
    for row in rows:
        try:
            row = check_host(db, settings, row)
        except CheckedRecently as exc:
            errors.append(f"{row.last_error or 'not proven'} ({exc})")
            continue
        if is_fresh(row, settings):
            return row
        errors.append(row.last_error or "not proven")
    who = f" of {email}" if email else ""
    if not rows:
        raise MarteauError(
            f"host {label}: not a verified host{who}: add it on the Hosts page (/hosts) "
            "and prove you own it before sending load to it"
        )
    raise MarteauError(
        f"host {label}: not a verified host{who}: the proof of ownership failed "
        f"({'; '.join(errors)})"
    )


def fresh_labels(db: Database, settings: Settings, user_id: int) -> list[str]:
    """HOST[:PORT] of every host the user has a fresh proof for; proofs that went stale
    are checked again (the test may reach hosts other than its conf's url)."""
    labels = []
    for row in user_hosts(db, user_id):
        if row.verified is not None and not is_fresh(row, settings):
            row = check_host(db, settings, row)
        if is_fresh(row, settings):
            labels.append(host_label(row.host, row.port))
    return labels


def conf_url(test_dir: Path, root: Path, test: str, overrides: dict[str, Any]) -> tuple[str, str]:
    """(target URL, where it comes from): the job's `url` override or the `[main] url`
    of the test's `<Class>.conf`, as `marteau run` would use them."""
    from marteau.funkload.config import FunkLoadConfig

    if overrides.get("url"):
        return str(overrides["url"]), "the job's url"
    class_name = str(overrides.get("test") or test).split(".", 1)[0]
    path = test_dir / f"{class_name}.conf"
    shown = path.relative_to(root) if path.is_relative_to(root) else path
    url = FunkLoadConfig(str(path)).get("main", "url", default=None)
    if not url:
        raise MarteauError(
            f"{shown}: no [main] url: the target host must be known to check that you own it "
            "(set it, or give the job a url)"
        )
    return str(url), f"{shown} [main] url"


def target_status(
    db: Database, settings: Settings, user_id: int, url: str, where: str
) -> dict[str, Any]:
    """Whether a job to `url` would pass the host check, as far as the proofs on record
    tell (nothing is fetched): for the new-job preview."""
    target = parse_target(url, where)
    label = host_label(target.host, target.port)
    rows = [row for row in user_hosts(db, user_id) if covers(row, target)]
    fresh = next((row for row in rows if is_fresh(row, settings)), None)
    if fresh is not None:
        message = f"host {label}: verified ({fresh.method}): jobs may send load to it"
    elif rows:
        message = (
            f"host {label}: its proof is {status(rows[0], settings)}: it is checked again "
            "when the job is queued, and the job refused if that fails"
        )
    else:
        message = (
            f"host {label}: not one of your verified hosts: add it on the Hosts page "
            "(/hosts) and prove you own it, or the job will be refused"
        )
    return {"host": label, "verified": fresh is not None, "message": message}


def allowed_hosts_for(
    db: Database,
    settings: Settings,
    user_id: int | None,
    email: str,
    url: str,
    where: str,
) -> list[str]:
    """The hosts a job may send load to, once its target is proven to be its owner's."""
    if user_id is None:
        raise MarteauError("the job has no owner: nobody has proven they own its target")
    target = parse_target(url, where)
    try:
        ensure_fresh(db, settings, user_id, target, email)
    except MarteauError as exc:
        raise MarteauError(f"{where} {url}: {exc}") from None
    return fresh_labels(db, settings, user_id)


def job_allowed_hosts(
    db: Database,
    settings: Settings,
    user_id: int | None,
    email: str,
    project: Any,
    overrides: dict[str, Any],
) -> list[str]:
    """`allowed_hosts_for` the target of a project (`marteau.orchestration.project.Project`)."""
    url, where = conf_url(project.test_dir, project.root, project.test, overrides)
    return allowed_hosts_for(db, settings, user_id, email, url, where)


def keep_allowed_hosts(db: Database, settings: Settings, job: Job, project: Any) -> list[str]:
    """When a worker prepares a job: refuse it unless its target is its owner's proven
    host, and keep the owner's proven hosts on it for `marteau run --allow-host`."""
    with db.read() as session:
        email = session.scalar(select(User.email).where(User.id == job.owner_id)) or ""
    allowed = job_allowed_hosts(db, settings, job.owner_id, email, project, job.overrides or {})
    with db.write() as session:
        session.execute(update(Job).where(Job.id == job.id).values(allowed_hosts=allowed))
    return allowed
