"""`marteau nodes list|check|unlock`: see and manage a pool's nodes."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import click

from marteau.errors import MarteauError

READ_LOCK = "Read Marteau's lock on the node"
READ_VERSION = "Read the installed Marteau version"
CLOCK = "Measure the node's clock offset to the controller"
RELEASE = "Release Marteau's lock on the node"
ISOLATION = "Check whether jobs are isolated"

inventory_option = click.option(
    "-i",
    "--inventory",
    type=click.Path(path_type=Path),
    help="Ansible inventory (default: this machine only).",
)
pool_option = click.option(
    "--pool", default="marteau", show_default=True, metavar="GROUP", help="Inventory group."
)
json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON list of the nodes on stdout (lock, version, clock offset in "
    "seconds, isolation, error) instead of the table.",
)


@click.group("nodes", context_settings={"help_option_names": ["-h", "--help"]})
def nodes_command() -> None:
    """See and manage the nodes of a pool: locks, versions, clocks."""


def _state(inventory: Path | None, pool: str, limit: tuple[str, ...]) -> tuple[list[dict], bool]:
    from marteau.orchestration.driver import Ansible

    with tempfile.TemporaryDirectory(prefix="marteau-nodes-") as tmp:
        ansible = Ansible(Path(tmp), inventory)
        variables = {"marteau_pool": pool, "marteau_max_clock_offset": 1e9}
        if limit:
            variables["marteau_hosts"] = ",".join(limit)
        result = ansible.play("nodes", variables)
    locks = result.results(READ_LOCK)
    versions = result.results(READ_VERSION)
    clocks = result.results(CLOCK)
    isolation = result.results(ISOLATION)
    unreachable = result.hosts_with("dark") | set(
        result.results(READ_LOCK, "runner_on_unreachable")
    )
    unreachable |= {h for h, r in locks.items() if r.get("unreachable")}
    errors = result.failure_messages()
    hosts = sorted(set(locks) | unreachable | set(errors))
    if not hosts:
        raise MarteauError(f"pool {pool!r}: no such group (or no hosts) in {ansible.inventory}")
    rows = []
    for host in hosts:
        lock = locks.get(host, {})
        down = host in unreachable or bool(lock.get("unreachable"))
        rows.append(
            {
                "node": host,
                "reachable": not down,
                "lock": {} if down else lock.get("holder") or {},
                "version": (versions.get(host, {}).get("stdout") or "").split()[-1:] or [""],
                "clock": clocks.get(host, {}).get("offset"),
                "isolated": isolation.get(host, {}).get("isolated"),
                "not_isolated": isolation.get(host, {}).get("reason", ""),
                "error": "" if down else errors.get(host, "") or lock.get("error", ""),
            }
        )
    return rows, not unreachable and not errors


def _show(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None)
    for column in ("node", "state", "lock", "marteau", "clock offset"):
        table.add_column(column)
    now = time.time()
    for row in rows:
        lock = row["lock"]
        if not row["reachable"]:
            state, held = "[red]unreachable[/]", ""
        elif row["error"]:
            state, held = "[red]error[/]", row["error"][:80]
        elif lock and not lock.get("expired"):
            state = "[yellow]locked[/]"
            held = f"job {lock.get('job')} of {lock.get('owner')}, expires in {float(lock.get('expires', now)) - now:.0f}s"
        elif lock:
            state, held = "free", f"expired lock of job {lock.get('job')}"
        else:
            state, held = "[green]free[/]", ""
        clock = "" if row["clock"] is None else f"{row['clock'] * 1000:+.1f} ms"
        table.add_row(row["node"], state, held, row["version"][0] or "-", clock)
    console = Console()
    if not console.is_terminal:  # a pipe, a log, the service: whole rows, never wrapped
        console.width = 10_000
    console.print(table)
    for row in rows:
        if row["reachable"] and row.get("isolated") is not None:
            console.print(
                f"{row['node']}: {isolation_line(row)}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )


def isolation_line(row: dict) -> str:
    """Whether the node runs each job as its own Unix user (`marteau nodes check`; the
    service reads this line)."""
    if row["isolated"]:
        return "jobs isolated: yes (sudo)"
    return f"jobs isolated: no: {row['not_isolated']}"


def _rows(
    inventory: Path | None, pool: str, nodes: tuple[str, ...], as_json: bool
) -> tuple[list[dict], bool]:
    """The nodes' state, shown as a table or as JSON; exit 2 on bad input."""
    try:
        rows, reachable = _state(inventory, pool, nodes)
    except MarteauError as exc:
        click.echo(f"Error: {exc}", err=True)
        if as_json:
            click.echo(json.dumps({"error": str(exc)}))
        sys.exit(2)
    if as_json:
        click.echo(json.dumps([{**row, "version": row["version"][0]} for row in rows]))
    else:
        _show(rows)
    return rows, reachable


@nodes_command.command("list")
@inventory_option
@pool_option
@json_option
@click.argument("nodes", nargs=-1)
def list_command(inventory: Path | None, pool: str, as_json: bool, nodes: tuple[str, ...]) -> None:
    """Show each node: reachable, locked by which job, Marteau version, clock offset."""
    _rows(inventory, pool, nodes, as_json)


@nodes_command.command("check")
@inventory_option
@pool_option
@click.option("--max-clock-offset", type=float, default=0.5, show_default=True, metavar="S")
@json_option
@click.argument("nodes", nargs=-1)
def check_command(
    inventory: Path | None,
    pool: str,
    max_clock_offset: float,
    as_json: bool,
    nodes: tuple[str, ...],
) -> None:
    """Like list; exit 1 when a node is unreachable or its clock is off."""
    rows, reachable = _rows(inventory, pool, nodes, as_json)
    off = [r["node"] for r in rows if r["clock"] is not None and abs(r["clock"]) > max_clock_offset]
    if off:
        click.echo(f"clock off by more than {max_clock_offset}s: {', '.join(off)}", err=True)
    sys.exit(0 if reachable and not off else 1)


@nodes_command.command("unlock")
@inventory_option
@pool_option
@click.option("--job", help="Release only this job's locks.")
@click.option("--force", is_flag=True, help="Release whoever holds the lock.")
@click.argument("nodes", nargs=-1)
def unlock_command(
    inventory: Path | None, pool: str, job: str | None, force: bool, nodes: tuple[str, ...]
) -> None:
    """Release node locks: a job's (--job) or any (--force). Expired locks always go."""
    from marteau.orchestration.driver import Ansible

    if not job and not force:
        click.echo("Error: give --job JOB or --force", err=True)
        sys.exit(2)
    try:
        with tempfile.TemporaryDirectory(prefix="marteau-nodes-") as tmp:
            ansible = Ansible(Path(tmp), inventory)
            variables = {
                "marteau_pool": pool,
                "marteau_job": job or "",
                "marteau_lock_force": force,
            }
            if nodes:
                variables["marteau_hosts"] = ",".join(nodes)
            result = ansible.play("unlock", variables)
    except MarteauError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    released = result.results(RELEASE)
    for host in sorted(released):
        res = released[host]
        if res.get("unreachable"):
            click.echo(f"{host}: unreachable")
        elif res.get("released"):
            was = res.get("was") or {}
            click.echo(f"{host}: released (was job {was.get('job')} of {was.get('owner')})")
        elif res.get("holder"):
            click.echo(f"{host}: kept, held by job {res['holder'].get('job')}")
        else:
            click.echo(f"{host}: was free")
    sys.exit(0 if result.ok else 1)
