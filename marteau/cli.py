"""The `marteau` command and the FunkLoad-compatible aliases.

Subcommands are imported only when invoked, so that `marteau bench` on a
node never imports the controller's libraries (numpy, Ansible, the web app).
"""

from __future__ import annotations

import importlib

import click

from marteau import __version__

# name -> "module:attribute" of a click command
SUBCOMMANDS = {
    "test": "marteau.funkload.test_command:test_command",
    "bench": "marteau.funkload.bench_command:bench_command",
    "report": "marteau.report.command:report_command",
    "run": "marteau.orchestration.run_command:run_command",
    "nodes": "marteau.orchestration.nodes_command:nodes_command",
    "serve": "marteau.service.serve:serve_command",
    "worker": "marteau.service.serve:worker_command",
    "submit": "marteau.service.submit:submit_command",
    "credentials": "marteau.funkload.credential_server:credentials_command",
    "record": "marteau.record.command:record_command",
    "monitor": "marteau.monitor.server:monitor_command",
}


def _load(target: str) -> click.Command:
    module_name, attribute = target.split(":")
    return getattr(importlib.import_module(module_name), attribute)


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        return _load(target) if target else None


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="marteau")
def main() -> None:
    """Marteau: distributed HTTP load tests for FunkLoad-style test cases."""


def fl_run_test() -> None:
    """`fl-run-test`: FunkLoad's functional test runner."""
    _load(SUBCOMMANDS["test"]).main(prog_name="fl-run-test")


def fl_run_bench() -> None:
    """`fl-run-bench`: FunkLoad's bench runner."""
    _load(SUBCOMMANDS["bench"]).main(prog_name="fl-run-bench")


def fl_build_report() -> None:
    """`fl-build-report`: FunkLoad's report builder."""
    _load(SUBCOMMANDS["report"]).main(prog_name="fl-build-report")


def fl_credential_ctl() -> None:
    """`fl-credential-ctl`: FunkLoad's credential server control."""
    _load(SUBCOMMANDS["credentials"]).main(prog_name="fl-credential-ctl")


def fl_record() -> None:
    """`fl-record`: FunkLoad's recorder (a recording proxy, or --har FILE)."""
    _load(SUBCOMMANDS["record"]).main(prog_name="fl-record")


def fl_monitor_ctl() -> None:
    """`fl-monitor-ctl`: FunkLoad's monitor server control."""
    _load(SUBCOMMANDS["monitor"]).main(prog_name="fl-monitor-ctl")
