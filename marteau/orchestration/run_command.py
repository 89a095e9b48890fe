"""`marteau run [PATH|GIT_URL]`: a distributed load test, start to report."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from marteau import exits
from marteau.engine.fuse import fuse_options
from marteau.engine.metrics import metrics_options
from marteau.errors import MarteauError
from marteau.funkload.bench_options import max_users_option, rates_options, strict_host_option

if TYPE_CHECKING:
    from marteau.orchestration.run import RunOutcome


@click.command("run", context_settings={"help_option_names": ["-h", "--help"]}, epilog=exits.HELP)
@click.argument("source", default=".", metavar="[PATH|GIT_URL]")
@click.option(
    "-i",
    "--inventory",
    type=click.Path(path_type=Path),
    help="Ansible inventory (default: this machine only).",
)
@click.option(
    "--pool",
    metavar="GROUP",
    help="Inventory group to take nodes from (default: .marteau.yml `pool`, else `marteau`).",
)
@click.option(
    "--nodes",
    "nodes",
    type=click.IntRange(min=1),
    help="How many nodes (default: .marteau.yml `nodes`, else 1).",
)
@click.option(
    "-c",
    "--cycles",
    metavar="5:10:20",
    help="Users per cycle (default: .marteau.yml, else the test's .conf).",
)
@rates_options("")
@click.option(
    "-D", "--duration", type=click.IntRange(min=1), metavar="S", help="Seconds per cycle."
)
@click.option(
    "--split",
    is_flag=True,
    help="Divide each cycle's users among the nodes (default: every node runs the full cycle).",
)
@click.option("-l", "--label", help="Label of the bench, shown in the report.")
@click.option("-u", "--url", help="Override the test's [main] url.")
@click.option(
    "-o",
    "--report-dir",
    type=click.Path(path_type=Path),
    help="Report directory (default: <run dir>/report).",
)
@click.option(
    "--runs-dir",
    type=click.Path(path_type=Path),
    default=Path("marteau-runs"),
    show_default=True,
    help="Where run directories go.",
)
@click.option(
    "--lock-timeout",
    type=float,
    default=60.0,
    show_default=True,
    metavar="S",
    help="Seconds to wait for free nodes.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Bench processes per node (default: one per core).",
)
@click.option(
    "--max-clock-offset",
    type=float,
    default=0.5,
    show_default=True,
    metavar="S",
    help="Refuse nodes whose clock is further off.",
)
@click.option(
    "--thresholds",
    type=click.Path(path_type=Path, exists=True),
    help="Thresholds file (default: .marteau.yml `thresholds`).",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    help="Where git URLs are cloned (default: ~/.cache/marteau/checkouts).",
)
@click.option(
    "--bench-timeout",
    type=click.IntRange(min=1),
    metavar="S",
    help="Hard limit for one node's bench.",
)
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="HOST[:PORT]",
    help="The nodes refuse requests to any other host (repeatable); HOST alone allows every port.",
)
@strict_host_option
@max_users_option
@click.option(
    "-e",
    "--extra-vars",
    "extra_vars",
    multiple=True,
    metavar="KEY=VALUE",
    help="Ansible variable for the playbooks (repeatable), e.g. marteau_node_tune=false.",
)
@fuse_options
@metrics_options
@click.option("--plain", is_flag=True, help="Plain progress lines instead of the live table.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Plain progress on stderr; on stdout one JSON object: run directory, report, "
    "totals, nodes missing or with load lost, fuse, exit status (or the error).",
)
def run_command(
    source: str,
    plain: bool,
    as_json: bool,
    extra_vars: tuple[str, ...],
    metrics_port: int | None,
    metrics_host: str,
    **options: object,
) -> None:
    """Lock nodes, provision them, deploy the test, bench on every node at one
    instant, collect, release and build one merged report.

    With no inventory this machine is the only node (ansible_connection=local).
    The test, its .conf, the URL and the pool are checked before any node is
    locked. The run's exit status combines the nodes' benches, the report and
    the nodes lost (table below).
    """
    from rich.console import Console

    from marteau.engine.figures import LiveFigures
    from marteau.engine.metrics import start_exporter
    from marteau.orchestration.live import LiveView
    from marteau.orchestration.run import LoadTestRun, RunFailed, RunOptions

    def fail(message: str, status: int) -> NoReturn:
        click.echo(message, err=True)
        if as_json:
            click.echo(json.dumps({"error": message, "exit_status": status}))
        sys.exit(status)

    variables = {}
    for item in extra_vars:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            fail(f"Error: -e {item!r}: expected KEY=VALUE", exits.BAD_INPUT)
        variables[key] = value
    run_options = RunOptions(source=source, extra_vars=variables, **options)  # type: ignore[arg-type]
    if as_json:
        view = LiveView(Console(stderr=True, highlight=False), live=False)
    else:
        view = LiveView(live=False if plain else None)
    figures = LiveFigures()
    try:
        exporter = start_exporter(figures, metrics_host, metrics_port)
        try:
            if exporter is not None:
                click.echo(f"Live metrics: {exporter.url}", err=as_json)
            with view:
                outcome = LoadTestRun(run_options, view, figures if exporter else None).run()
        finally:
            if exporter is not None:
                exporter.close()
    except MarteauError as exc:
        fail(f"Error: {exc}", exits.BAD_INPUT)
    except RunFailed as exc:
        fail(f"Error: {exc}", exits.FAILURES)
    except KeyboardInterrupt:
        fail("Interrupted.", exits.SIGNAL_BASE + signal.SIGINT)
    if as_json:
        click.echo(json.dumps(outcome_json(outcome)))
        sys.exit(outcome.exit_code)
    _print_outcome(outcome)
    sys.exit(outcome.exit_code)


def _print_outcome(outcome: RunOutcome) -> None:
    """The text output's lines: where the run and its report are, what went missing or
    was lost, the totals, the open model's rates and a tripped fuse."""
    click.echo(f"Run directory: {outcome.run_dir}")
    if outcome.missing:
        click.echo(
            "Missing nodes: " + ", ".join(f"{h} ({why})" for h, why in outcome.missing.items())
        )
    for host, said in outcome.lost.items():
        click.echo(f"Load lost on {host}: " + "; ".join(said))
    if outcome.report_dir and outcome.report_dir.exists():
        index = outcome.report_dir / "index.html"
        click.echo(f"Report: {index if index.exists() else outcome.report_dir}")
        _, found = _summary(outcome.report_dir)
        totals = found.get("totals") or {}
        if totals:
            click.echo(
                f"Totals: {totals.get('requests', 0):,} requests ({totals.get('requests_error', 0):,} errors), "
                f"{totals.get('tests', 0):,} tests ({totals.get('tests_error', 0):,} errors) "
                f"on {len(outcome.completed)} node(s)"
            )
        whole = (found.get("open") or {}).get("overall")
        if whole:
            click.echo(
                f"Open model: {whole['achieved_rate']:,.1f} tests/s achieved of "
                f"{whole['intended_rate']:,.1f} intended, {whole['dropped']:,} dropped "
                f"({whole['dropped_percent']:.2f}%), latency p99 {whole['latency']['p99']:.3f}s "
                f"from the intended start"
            )
    if outcome.fuse:
        click.echo(outcome.fuse)


def outcome_json(outcome: RunOutcome) -> dict:
    """What `--json` prints: the lines of the text output, as data."""
    index = outcome.report_dir / "index.html" if outcome.report_dir else None
    summary, found = _summary(outcome.report_dir) if outcome.report_dir else (None, {})
    return {
        "run_dir": str(outcome.run_dir) if outcome.run_dir else None,
        "report": str(index) if index and index.exists() else None,
        "summary": str(summary) if summary else None,
        "totals": found.get("totals") or {},
        "open": (found.get("open") or {}).get("overall"),
        "nodes": outcome.nodes,
        "completed": outcome.completed,
        "missing": outcome.missing,
        "lost": outcome.lost,
        "fuse": outcome.fuse,
        "exit_status": outcome.exit_code,
    }


def _summary(report_dir: Path) -> tuple[Path | None, dict]:
    """The run's summary.json (the first, in a report of several benches) and what it
    holds, {} when there is none or it cannot be read."""
    path = next(iter(sorted(report_dir.rglob("summary.json"))), None)
    try:
        return path, json.loads(path.read_text()) if path else {}
    except (OSError, ValueError):
        return path, {}
