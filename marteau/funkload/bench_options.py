"""The options a FunkLoad command shares: with each other, with `marteau run`, with tests.

`--allow-host`, `--strict-host`, `--max-users` and the open model's
`--rates`/`--arrivals`/`--ramp` are spelled once here, so that `marteau
bench`, `marteau test` and `marteau run` say the same thing; and FunkLoad's
options object (`make_options`), the one a test reads as ``self.options``,
carries every dest FunkLoad's optparse had.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import click

from marteau.errors import MarteauError

# FunkLoad's optparse dests a test may read from its options object.
_FUNKLOAD_OPTION_DEFAULTS: dict[str, Any] = {
    "config": None,
    "label": None,
    "main_url": None,
    "bench_cycles": None,
    "bench_rates": None,
    "bench_arrivals": None,
    "bench_ramp": None,
    "bench_duration": None,
    "bench_sleep_time_min": None,
    "bench_sleep_time_max": None,
    "bench_sleep_time": None,
    "bench_startup_delay": None,
    "bench_simple_fetch": False,
    "bench_runner_class": None,
    "accept_invalid_links": False,
    "no_color": False,
    "debugserver": False,
    "debugport": 8000,
    "distribute": False,
    "is_distributed": False,
    "feedback": False,
    "failfast": False,
    "debug_level": 0,
    "marteau_sink": None,
    "marteau_guard": None,  # the --allow-host guard, installed again in each worker
    "marteau_credentials": None,  # (host, port, Unix socket) of --credentials, for each worker
}


allow_host_option = click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="HOST[:PORT]",
    help="Refuse requests to any other host (repeatable); HOST alone allows every port.",
)
"""`--allow-host`, the same on every command that runs FunkLoad tests (bench and test)."""

strict_host_option = click.option(
    "--strict-host",
    is_flag=True,
    help="With --allow-host: refuse a request whose Host header names another host than its URL.",
)
"""`--strict-host` (bench and test): shared hosting behind an allowed address stays out of reach."""


max_users_option = click.option(
    "--max-users",
    type=click.IntRange(min=1),
    metavar="N",
    help="At most N users per cycle (on each node), whatever the conf or the test's code asks; "
    "with --rates, the pool of users the arrivals take from.",
)
"""`--max-users` (bench, run): a quota the node enforces where users are built."""


def rates_options(prefix: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`-r/--rates`, `--arrivals` and `--ramp` (bench, run), their values in parameters
    named ``<prefix>rates``, ``<prefix>arrivals`` and ``<prefix>ramp``."""
    options = (
        click.option(
            "-r",
            "--rates",
            f"{prefix}rates",
            metavar="50:100:200",
            help="The open model: tests started per second in each cycle, for the whole "
            "bench (split across worker processes and nodes), instead of users per cycle.",
        ),
        click.option(
            "--arrivals",
            f"{prefix}arrivals",
            type=click.Choice(["constant", "poisson"]),
            help="With --rates: arrivals at a constant interval (default) or Poisson arrivals.",
        ),
        click.option(
            "--ramp",
            f"{prefix}ramp",
            type=click.FloatRange(min=0),
            metavar="S",
            help="With --rates: ramp linearly from the previous cycle's rate (0 before the "
            "first) over S seconds before each window opens (not recorded).",
        ),
    )

    def apply(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


def install_guard(allow_hosts: tuple[str, ...], strict_host: bool) -> Any:
    """The `--allow-host` guard, installed; None without it (`--strict-host` needs it)."""
    if strict_host and not allow_hosts:
        raise MarteauError("--strict-host needs --allow-host (the hosts it checks against)")
    if not allow_hosts:
        return None
    from marteau.engine.guard import guard_process

    return guard_process(allow_hosts, strict_host)


def make_options(**values: Any) -> SimpleNamespace:
    """FunkLoad's options object: every bench dest, CLI values as strings."""
    options = dict(_FUNKLOAD_OPTION_DEFAULTS)
    options.update({key: value for key, value in values.items() if value is not None})
    if options.pop("as_fast_as_possible", False):
        for key in ("bench_sleep_time_min", "bench_sleep_time_max", "bench_sleep_time"):
            options[key] = "0"
    return SimpleNamespace(**options)
