"""`--metrics-port`: a bench's or a run's live figures for Prometheus, over HTTP.

`marteau bench` and `marteau run` serve `LiveFigures` (`marteau.engine.figures`)
at ``http://HOST:PORT/metrics`` while they run, in the Prometheus text format,
or OpenMetrics when the scraper asks for it (its Accept header). The server
and the format are the official `prometheus_client` library's: a thread of
the bench's parent process (or of `marteau run` on the controller), one more
thread per scrape, nothing on the users' path.

`prometheus_client` is imported only when the option is given: a node's
install stays what `install_requires` says (`marteau run` serves its nodes'
figures from the controller and never asks a node to open a port). Its
`controller` and `metrics` extras bring the library.

The metric names are in `METRICS`; docs/metrics.md describes them and
docs/grafana-marteau.json charts them (a test checks the dashboard against a
real scrape).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import click

from marteau.engine.figures import LiveFigures
from marteau.errors import MarteauError

DEFAULT_HOST = "127.0.0.1"
TEST_RESULTS = ("successful", "failure", "error")  # FunkLoad's, in NodeFigures.totals' order
# name -> (type, labels besides `node`, help)
METRICS = {
    "marteau_requests": ("counter", (), "Responses recorded in the recording windows."),
    "marteau_tests": ("counter", ("result",), "Tests ended in the recording windows, by result."),
    "marteau_requests_per_second": ("gauge", (), "Responses per second over the last second."),
    "marteau_response_time_seconds": (
        "gauge",
        ("quantile",),
        "Response time quantiles over the last 10 s (estimated from samples).",
    ),
    "marteau_users": ("gauge", (), "Virtual users started in the current cycle."),
    "marteau_cycle_users": ("gauge", (), "Virtual users the current cycle runs."),
    "marteau_cycle": ("gauge", (), "The current cycle's index, from 0."),
    "marteau_recording": ("gauge", (), "1 while the current cycle's recording window is open."),
}


class FiguresCollector:
    """A `prometheus_client` collector: the families of the figures at each scrape."""

    def __init__(self, figures: LiveFigures) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        families = {
            name: (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(
                name, text, labels=["node", *labels]
            )
            for name, (kind, labels, text) in METRICS.items()
        }
        for node, figures in sorted(self.figures.snapshot().items()):
            ok, failures, errors, responses = figures.totals()
            families["marteau_requests"].add_metric([node], responses)
            for result, count in zip(TEST_RESULTS, (ok, failures, errors), strict=True):
                families["marteau_tests"].add_metric([node, result], count)
            families["marteau_requests_per_second"].add_metric([node], figures.rps)
            for quantile, seconds in sorted(figures.quantiles.items()):
                families["marteau_response_time_seconds"].add_metric(
                    [node, f"{quantile:g}"], seconds
                )
            families["marteau_users"].add_metric([node], figures.users)
            families["marteau_cycle_users"].add_metric([node], figures.cycle_users)
            if figures.cycle is not None:
                families["marteau_cycle"].add_metric([node], figures.cycle)
            families["marteau_recording"].add_metric([node], figures.phase == "recording")
        yield from families.values()


class Exporter:
    """The HTTP server of one bench's or run's figures; `close` stops it."""

    def __init__(self, figures: LiveFigures, host: str, port: int) -> None:
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError:
            raise MarteauError(
                "--metrics-port needs the prometheus_client package: pip install 'marteau[metrics]'"
            ) from None
        registry = CollectorRegistry(auto_describe=False)
        registry.register(FiguresCollector(figures))
        try:
            self._server, self._thread = start_http_server(port, host, registry)
        except OSError as exc:
            raise MarteauError(
                f"--metrics-host {host} --metrics-port {port}: cannot listen there "
                f"({exc.strerror or exc})"
            ) from None
        bound = self._server.server_address
        self.url = f"http://{host if ':' not in host else f'[{host}]'}:{bound[1]}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)


def start_exporter(figures: LiveFigures, host: str, port: int | None) -> Exporter | None:
    """An exporter on ``host:port`` (port 0: a free one), or None without a port."""
    return None if port is None else Exporter(figures, host, port)


def metrics_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--metrics-port`` and ``--metrics-host`` (`marteau bench` and `run`)."""
    options = [
        click.option(
            "--metrics-port",
            type=click.IntRange(0, 65535),
            metavar="PORT",
            help="Serve the live figures (requests/s, response time quantiles, tests, users) "
            "for Prometheus at http://HOST:PORT/metrics while this runs (0: a free port, "
            "printed). Needs prometheus_client (marteau[metrics]).",
        ),
        click.option(
            "--metrics-host",
            default=DEFAULT_HOST,
            show_default=True,
            metavar="HOST",
            help="The address --metrics-port listens on (0.0.0.0: every interface; the "
            "figures have no access control).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command
