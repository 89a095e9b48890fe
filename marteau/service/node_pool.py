"""Nodes as host lists, and who holds each node's lock.

An admin adds a pool at once: several host names (one per line or separated by
commas) with the same pool and Ansible variables, all or none.

A node has two locks (DESIGN "Two locks"): the service's lease in the database
(`Node.lease_job_id`) and the lock file on the node itself, which another controller
or a hand-run playbook may hold. The on-node holder is only known from a check
(`marteau nodes check`), so the service keeps what the last check said in
`<data dir>/nodes/<name>.json`, next to the jobs' files.

Checks run on demand (the nodes page, the API) and on a schedule: an idle worker
checks an idle node whose last check is older than `node_check_minutes`, so the
pages show a dead node and the scheduler stops giving it to jobs (an unreachable
node is not free) until a check finds it again.

Also here, for the pages, the API and the workers alike: what a node and its
variables may be (`check_node`), a node as JSON, the inventory of leased nodes
and the `marteau nodes` command run on one node.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select, update

from marteau.errors import MarteauError
from marteau.service.db import Database
from marteau.service.models import Node
from marteau.service.scheduler import ISOLATED, unleased_node_clause
from marteau.service.settings import Settings

HOST_SEPARATORS = re.compile(r"[\s,]+")
MAX_HOSTS = 1000
# the lock column of `marteau nodes check` (marteau.orchestration.nodes_command._show)
HELD = re.compile(r"job (?P<job>\S+) of (?P<owner>.+?), expires in (?P<expires>-?\d+)s")
EXPIRED = re.compile(r"expired lock of job (?P<job>\S+)")
SERVICE_JOB = re.compile(r"\(marteau serve job (?P<id>\d+)\)")
# the isolation line of `marteau nodes check` (marteau.orchestration.nodes_command)
ISOLATION = re.compile(r"^(?P<node>\S+): jobs isolated: (?P<answer>yes|no)(?:: (?P<reason>.*))?")
STATES = ("locked", "free", "unreachable", "error")
POOL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")


def parse_host_list(text: str | list[str]) -> list[str]:
    """Host names from a text (one per line, or separated by commas or spaces) or a
    list; duplicates are an error, since each name is one node."""
    items = text if isinstance(text, list) else [text]
    names = [name for item in items for name in HOST_SEPARATORS.split(str(item)) if name]
    if not names:
        raise MarteauError("give at least one host name")
    if len(names) > MAX_HOSTS:
        raise MarteauError(f"{len(names)} host names: at most {MAX_HOSTS} at once")
    seen: set[str] = set()
    # seen.add returns None (false): the name is kept only if it was seen before
    twice = sorted({name for name in names if name in seen or seen.add(name)})  # type: ignore[func-returns-value]
    if twice:
        raise MarteauError(f"host names given twice: {', '.join(twice)}")
    return names


def local_connection(variables: dict[str, Any] | None) -> bool:
    """Whether a node with these host variables is this machine (a local connection)."""
    connection = str((variables or {}).get("ansible_connection", "")).strip().lower()
    return connection in ("local", "ansible.builtin.local")


def refuse_local(settings: Settings, name: str, variables: dict[str, Any] | None) -> None:
    """In public mode an enabled node may not run tests on the service's own machine."""
    if settings.public and local_connection(variables):
        raise MarteauError(
            f"node {name}: ansible_connection=local would run other people's test code on "
            "the service's own machine: public mode (--public) refuses it; give the node "
            "an SSH connection (remove the variable), or leave it disabled"
        )


def local_nodes(db: Database) -> list[str]:
    """The enabled nodes with a local connection (`marteau serve --public` refuses them)."""
    with db.read() as session:
        rows = session.execute(select(Node.name, Node.vars).where(Node.enabled.is_(True))).all()
    return sorted(name for name, variables in rows if local_connection(variables))


def add_nodes(
    db: Database,
    settings: Settings,
    names: list[str],
    pool: str,
    variables: dict[str, Any] | str | None,
) -> list[dict[str, Any]]:
    """Add every named node to `pool` with the same variables, in one transaction:
    when one name is bad or exists, none is added and the error names them."""
    checked = [check_node(name, pool, variables) for name in names]
    for name, _pool, checked_vars in checked:
        refuse_local(settings, name, checked_vars)
    with db.write() as session:
        existing = set(
            session.scalars(select(Node.name).where(Node.name.in_([c[0] for c in checked])))
        )
        if existing:
            raise MarteauError(f"nodes exist already: {', '.join(sorted(existing))}")
        now = time.time()
        nodes = [Node(name=n, pool=p, vars=v, created=now) for n, p, v in checked]
        session.add_all(nodes)
        session.flush()
        return [node_json(node, now) for node in nodes]


def check_named_nodes(db: Database, pool: str, names: list[str]) -> None:
    """The nodes a project names must be nodes of its pool, each once: else the job
    would wait for them for ever. MarteauError naming the ones at fault."""
    parse_host_list(names)  # each name once
    with db.read() as session:
        found = dict(
            session.execute(select(Node.name, Node.pool).where(Node.name.in_(names))).all()
        )
    unknown = [name for name in names if name not in found]
    if unknown:
        raise MarteauError(
            f".marteau.yml: nodes: not nodes of this service: {', '.join(unknown)} "
            "(see the Nodes page)"
        )
    elsewhere = [f"{name} (pool {found[name]})" for name in names if found[name] != pool]
    if elsewhere:
        raise MarteauError(
            f".marteau.yml: nodes: not in pool {pool!r}: {', '.join(elsewhere)} "
            "(set `pool` to theirs)"
        )


def check_isolated_nodes(db: Database, pool: str, names: list[str] | None, wanted: int) -> None:
    """Public mode runs a job only on nodes whose last check found each job run as its
    own Unix user: MarteauError when the pool (or the named nodes) has too few."""
    with db.read() as session:
        query = select(Node.name).where(
            Node.pool == pool, Node.enabled.is_(True), Node.status == ISOLATED
        )
        if names:
            query = query.where(Node.name.in_(names))
        isolated = len(session.scalars(query).all())
    if isolated < wanted:
        raise MarteauError(
            f"pool {pool!r} has {isolated} node(s) whose jobs are isolated, the job wants "
            f"{wanted}: in public mode a job runs only on nodes where `marteau nodes check` "
            "says 'jobs isolated: yes' (the node user needs passwordless sudo; see the "
            "docs, 'Job isolation on the nodes')"
        )


def parse_check(name: str, output: str, now: float | None = None) -> dict[str, Any]:
    """What `marteau nodes check` said about node `name`: its state (locked, free,
    unreachable or error), whether its jobs are isolated (and why not) and, when
    locked, the holder's job, owner and expiry time (with the service job when the
    owner names one)."""
    now = time.time() if now is None else now
    record: dict[str, Any] = {"checked": now, "state": "unknown"}
    for line in output.splitlines():
        isolation = ISOLATION.match(line.strip())
        if isolation and isolation["node"] == name:
            record["isolated"] = isolation["answer"] == "yes"
            if isolation["reason"]:
                record["not_isolated"] = isolation["reason"]
    for line in output.splitlines():
        words = line.split()
        if len(words) < 2 or words[0] != name or words[1] not in STATES:
            continue
        record["state"] = words[1]
        held = HELD.search(line)
        expired = EXPIRED.search(line)
        if held:
            record["job"] = held["job"]
            record["owner"] = SERVICE_JOB.sub("", held["owner"]).strip()
            record["expires"] = now + int(held["expires"])
            service_job = SERVICE_JOB.search(held["owner"])
            if service_job:
                record["service_job"] = int(service_job["id"])
        elif expired:
            record["expired_job"] = expired["job"]
        break
    return record


def _record_path(settings: Settings, name: str) -> Path:
    return settings.data_dir / "nodes" / f"{name}.json"


def record_check(settings: Settings, name: str, output: str) -> dict[str, Any]:
    """Keep what a check found on the node, for the nodes page and API."""
    record = parse_check(name, output)
    path = _record_path(settings, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record))
    temporary.replace(path)
    return record


def forget_check(settings: Settings, name: str) -> None:
    _record_path(settings, name).unlink(missing_ok=True)


def node_locks(settings: Settings) -> dict[str, dict[str, Any]]:
    """The on-node locks the last checks found, by node name (a node never checked,
    or free, is absent): one listing of the records' folder, then only the records
    there, for a page of nodes (an `open` that fails costs as much as one that reads)."""
    try:
        entries = list(os.scandir(settings.data_dir / "nodes"))
    except OSError:
        return {}
    locks = {}
    for entry in entries:
        if not entry.name.endswith(".json"):
            continue
        try:
            with open(entry.path, encoding="utf-8") as file:
                record = json.load(file)
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("state") == "locked":
            locks[entry.name.removesuffix(".json")] = record
    return locks


def node_view(node: dict[str, Any], locks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A node's JSON as the pages and API show it: an idle node whose last check
    found it unreachable is `unreachable`, and `lock` says who holds it: the job of
    its lease (database) and the on-node lock holder of the last check (`locks`,
    from `node_locks`)."""
    if node["status"] == "idle" and node.get("check") == "unreachable":
        node["status"] = "unreachable"
    node["lock"] = {"job": node.get("job"), "on_node": locks.get(node["name"])}
    return node


def check_now(db: Database, settings: Settings, node: Node) -> dict[str, Any]:
    """`marteau nodes check` on the node; its status (isolated: reachable and each job
    runs as its own Unix user; reachable; unreachable or error) and its lock holder
    kept for the pages and the scheduler."""
    code, output = node_command(settings, node, "check")
    status = "reachable" if code == 0 else ("unreachable" if "unreachable" in output else "error")
    lock = record_check(settings, node.name, output)
    if status == "reachable" and lock.get("isolated"):
        status = ISOLATED
    with db.write() as session:
        session.execute(
            update(Node).where(Node.name == node.name).values(status=status, last_check=time.time())
        )
    return {"exit_code": code, "output": output, "check": status, "lock": lock}


def take_due_check(db: Database, settings: Settings) -> Node | None:
    """An enabled, unleased node whose last check (or creation) is older than
    `node_check_minutes`, taken for a check: its `last_check` is set now by a
    compare-and-set, so two workers never check it at once."""
    if settings.node_check_minutes <= 0:
        return None
    now = time.time()
    due = now - settings.node_check_minutes * 60
    not_checked_since = or_(Node.last_check < due, Node.last_check.is_(None) & (Node.created < due))
    with db.read() as session:  # most looks find nothing: no write lock for them
        node = session.scalar(
            select(Node)
            .where(Node.enabled.is_(True), unleased_node_clause(now), not_checked_since)
            .order_by(Node.last_check.is_not(None), Node.last_check, Node.name)
            .limit(1)
        )
    if node is None:
        return None
    with db.write() as session:
        # an UPDATE's or DELETE's Result is a CursorResult (rowcount); execute() says Result
        taken = session.execute(  # type: ignore[attr-defined]
            update(Node)
            .where(Node.id == node.id, not_checked_since)
            .values(last_check=now)
            .execution_options(synchronize_session=False)
        ).rowcount
    return node if taken == 1 else None


def node_json(node: Node, now: float) -> dict[str, Any]:
    leased = node.lease_job_id is not None and (node.lease_expires or 0) >= now
    status = "disabled" if not node.enabled else ("busy" if leased else "idle")
    return {
        "name": node.name,
        "pool": node.pool,
        "vars": node.vars or {},
        "enabled": node.enabled,
        "status": status,
        "job": node.lease_job_id if leased else None,
        "lease_expires": node.lease_expires if leased else None,
        "last_check": node.last_check,
        "check": node.status,
    }


NODE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,253}$")
VAR_NAME = re.compile(r"^[A-Za-z_]\w{0,99}$")


def check_node(
    name: str, pool: str, variables: dict[str, Any] | str | None
) -> tuple[str, str, dict]:
    name = name.strip()
    pool = (pool or "marteau").strip()
    if not NODE_NAME.match(name):
        raise MarteauError(f"node {name!r}: expected a host name")
    if not POOL.match(pool):
        raise MarteauError(f"pool {pool!r}: expected an inventory group name (letters, digits, _)")
    if isinstance(variables, str):  # "key=value key=value", as in an inventory line
        parsed: dict[str, Any] = {}
        for item in variables.split():
            key, sep, value = item.partition("=")
            if not sep:
                raise MarteauError(f"node variable {item!r}: expected key=value")
            parsed[key] = value
        variables = parsed
    variables = dict(variables or {})
    for key, value in variables.items():
        if not VAR_NAME.match(str(key)) or not isinstance(value, str | int | float | bool):
            raise MarteauError(f"node variable {key!r}: expected a name and a plain value")
        if isinstance(value, str) and any(c in value for c in "\n\r\0"):
            raise MarteauError(f"node variable {key!r}: the value holds a line break")
    return name, pool, variables


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def node_command(settings: Settings, node: Node, action: str) -> tuple[int, str]:
    """`marteau nodes check` or `marteau nodes unlock --force` on one node, through an
    inventory holding just that node: (exit code, output without colours)."""
    with tempfile.TemporaryDirectory(prefix="marteau-node-") as tmp:
        inventory = Path(tmp) / "inventory.ini"
        inventory.write_text(inventory_text(node.pool, [node]))
        args = ["check"] if action == "check" else ["unlock", "--force"]
        command = (
            settings.nodes_command + args + ["-i", str(inventory), "--pool", node.pool, node.name]
        )
        env = dict(os.environ, COLUMNS="160", NO_COLOR="1")
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=300,
                env=env,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return -1, str(exc)
    return result.returncode, ANSI.sub("", result.stdout + result.stderr).strip()


def inventory_text(pool: str, nodes: list[Node]) -> str:
    """An Ansible inventory of `nodes` in group `pool`, each with its variables quoted."""
    lines = [f"# written by marteau serve: the nodes leased to this job\n[{pool}]"]
    for node in nodes:
        variables = " ".join(
            f"{key}={shlex.quote(str(value))}" for key, value in sorted((node.vars or {}).items())
        )
        lines.append(f"{node.name} {variables}".rstrip())
    return "\n".join(lines) + "\n"
