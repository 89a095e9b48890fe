"""`--metrics-port`: a real bench (and a real `marteau run` on this machine) against a
real local server, scraped over HTTP while it runs; the Grafana dashboard in docs/
charts only metric names such a scrape shows.

No timing assertions: each test waits (bounded) for the figures to move, and checks
what the scrapes said against what the bench recorded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from marteau.service.live_figures import parse_line
from tests.servers import LocalServer, ok
from tests.support.metrics import (
    OPENMETRICS,
    Samples,
    dashboard_expressions,
    dashboard_metrics,
    exported_names,
    samples,
    value,
)
from tests.support.projects import CONF, TEST

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DATA = REPO / "tests" / "data" / "bench"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"  # Debian's prometheus package


def scrape(url: str, *, openmetrics: bool = False) -> Samples:
    headers = {"Accept": OPENMETRICS} if openmetrics else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
        content_type = r.headers["Content-Type"]
        text = r.read().decode()
    assert content_type.startswith(
        "application/openmetrics-text" if openmetrics else "text/plain"
    ), content_type
    return samples(text, openmetrics=openmetrics)


def wait_for(predicate: Callable[[], object], what: str, timeout: float = 90.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def announced(log: Path, prefix: str, process: subprocess.Popen) -> str:
    """The URL the command printed after ``prefix`` (it picked a free port)."""

    def url() -> str | None:
        assert process.poll() is None, log.read_text()
        for line in log.read_text().splitlines():
            if line.strip().startswith(prefix):
                return line.split(prefix, 1)[1].strip()
        return None

    return str(wait_for(url, f"{prefix!r} in {log}"))


def promtool_check(expressions: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """Prometheus's own parser (`promtool check rules`) over each expression, as a
    recording rule, Grafana's variables and `label_values()` turned into PromQL."""
    rules = []
    for i, expression in enumerate(expressions):
        promql = re.sub(r"label_values\(([^,)]*),[^)]*\)", r"\1", expression)
        promql = re.sub(r"\$\{?\w+\}?", ".*", promql)
        rules.append({"record": f"dashboard:expression_{i}", "expr": promql})
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    return subprocess.run(
        [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )


def test_every_dashboard_expression_parses_in_promtool(tmp_path: Path) -> None:
    """Beyond the names a real scrape has (the tests below): each panel's query is
    PromQL that Prometheus itself accepts, and a broken one would be caught."""
    if not Path(PROMTOOL).is_file():
        pytest.skip("no promtool (make system-deps installs Debian's prometheus)")
    expressions = dashboard_expressions()
    checked = promtool_check(expressions, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(expressions)} rules found" in checked.stdout
    assert promtool_check(["sum by (node) (marteau_users"], tmp_path).returncode != 0


# -- marteau bench --------------------------------------------------------------


def test_a_bench_serves_its_live_figures_while_it_runs(workdir: Path) -> None:  # noqa: F811
    log = workdir / "console.txt"
    node = os.uname().nodename
    with LocalServer(routes={"/ok": lambda request: ok("OK")}) as site:
        with open(log, "w") as out:
            bench = subprocess.Popen(
                [str(BIN / "marteau"), "bench", "benchtests.py", "Bench.test_get"]
                + ["-u", site.url, "-c", "2:3", "-D", "5", "--workers", "2"]
                + ["--metrics-port", "0"],
                cwd=workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1"),
            )
        try:
            url = announced(log, "* Live metrics:", bench)
            assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")

            def requests() -> float:
                return value(scrape(url), "marteau_requests_total", node=node) or 0.0

            first = wait_for(requests, "requests counted")
            moved = wait_for(lambda: (n := requests()) > first and n, "the counter to move")
            during = scrape(url)
            also = scrape(url, openmetrics=True)
            assert bench.wait(timeout=120) == 0, log.read_text()
        finally:
            if bench.poll() is None:
                bench.kill()
                bench.wait()
    text = log.read_text()
    from marteau.results import load

    recorded = len(load(workdir / "bench.mrt").responses)
    assert 0 < first < moved <= recorded, (first, moved, recorded)
    assert value(also, "marteau_requests_total", node=node) >= moved  # same figures, OpenMetrics
    # quantiles in order, users within their cycle, every test result named
    p50, p95, p99 = (
        value(during, "marteau_response_time_seconds", node=node, quantile=q)
        for q in ("0.5", "0.95", "0.99")
    )
    assert p50 is not None and 0 < p50 <= p95 <= p99 < 10, (p50, p95, p99)
    assert (
        0
        < value(during, "marteau_users", node=node)
        <= value(during, "marteau_cycle_users", node=node)
    )
    assert value(during, "marteau_cycle", node=node) in (0, 1)
    assert value(during, "marteau_requests_per_second", node=node) >= 0
    for result in ("successful", "failure", "error"):
        assert value(during, "marteau_tests_total", node=node, result=result) is not None
    assert value(during, "marteau_tests_total", node=node, result="error") == 0
    # the progress line says the same things
    line = [x for x in text.splitlines() if x.strip().startswith("cycle #1")][-1]
    assert re.search(r"req/s  \d+ responses  p50 [\d.]+ ms  p95 [\d.]+ ms  p99 [\d.]+ ms$", line)
    # the dashboard in docs/ charts only what a bench exports (the service's part: in
    # tests/test_service_metrics.py)
    wanted = {name for name in dashboard_metrics() if not name.startswith("marteau_service_")}
    assert len(wanted) >= 5, wanted
    assert wanted <= exported_names(during), wanted - exported_names(during)


def refused(folder: Path, command: list[str], port: int) -> tuple[str, int]:
    """A bench that must stop before any load with exit 2: its stderr, and the number of
    requests its target got."""
    with LocalServer(routes={}) as site:
        result = subprocess.run(
            [*command, "benchtests.py", "Bench.test_get", "-u", site.url]
            + ["--metrics-port", str(port)],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=120,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
        )
        sent = len(site.requests)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Benching\n" not in result.stdout
    return result.stderr, sent


def test_a_port_in_use_is_bad_input_before_any_load(workdir: Path) -> None:  # noqa: F811
    with closing(socket.socket()) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        said, sent = refused(workdir, [str(BIN / "marteau"), "bench"], port)
    assert f"--metrics-port {port}: cannot listen there" in said and sent == 0


def test_without_the_library_the_option_says_what_to_install(workdir: Path) -> None:  # noqa: F811
    """A node's install (`pip install marteau`) has no prometheus_client: the option is
    bad input there, naming the package, and no request is sent."""
    hide = "import sys; sys.modules['prometheus_client'] = None; "
    command = [sys.executable, "-c", hide + "from marteau.cli import main; main()", "bench"]
    said, sent = refused(workdir, command, 0)
    assert "--metrics-port needs the prometheus_client package" in said
    assert "marteau[metrics]" in said and sent == 0


def test_the_dashboard_reader_finds_names_and_skips_promql(tmp_path: Path) -> None:
    """The check above is only as good as its name extraction: try it on a known panel."""
    path = tmp_path / "dashboard.json"
    panel = {
        "targets": [
            {"expr": 'sum by (node) (rate(marteau_requests_total{node=~"$node"}[1m]))'},
            {"expr": "histogram_quantile(0.95, sum by (le) (rate(other_bucket[5m])))"},
        ],
        "templating": {"list": [{"query": "label_values(marteau_users, node)"}]},
    }
    path.write_text(json.dumps({"panels": [panel]}))
    assert dashboard_metrics(path) == {"marteau_requests_total", "other_bucket", "marteau_users"}


# -- marteau run ----------------------------------------------------------------


def test_a_run_serves_each_nodes_figures_from_the_controller(tmp_path: Path) -> None:
    """`marteau run` on this machine (the embedded default): the controller serves the
    figures of the node's progress lines, under the node's inventory name."""

    project = tmp_path / "project"
    project.mkdir()
    (project / "loadtest.py").write_text(TEST)
    log = tmp_path / "run.txt"
    with LocalServer(routes={"/": lambda request: ok("hello")}) as target:
        (project / "Tiny.conf").write_text(CONF.format(url=target.url))
        (project / ".marteau.yml").write_text(
            "script: loadtest.py\ntest: Tiny.test_get\ncycles: 1:2\nduration: 6\n"
        )
        with open(log, "w") as out:
            run = subprocess.Popen(
                [str(BIN / "marteau"), "run", str(project), "--plain", "--metrics-port", "0"]
                + ["-e", "marteau_node_tune=false"],
                cwd=tmp_path,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(os.environ, HOME=os.environ.get("HOME", "/root")),
            )
        try:
            url = announced(log, "Live metrics:", run)
            seen: list[Samples] = []

            def requests() -> float:
                seen.append(scrape(url))
                return value(seen[-1], "marteau_requests_total", node="localhost") or 0.0

            first = wait_for(requests, "the node's requests", timeout=180)
            moved = wait_for(lambda: (n := requests()) > first and n, "the counter to move")
            assert run.wait(timeout=240) == 0, log.read_text()
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
    run_dir = Path(
        next(x for x in log.read_text().splitlines() if x.startswith("Run directory: ")).split(
            ": ", 1
        )[1]
    )
    (summary,) = (run_dir / "report").rglob("summary.json")
    recorded = json.loads(summary.read_text())["totals"]["requests"]
    assert 0 < first < moved <= recorded, (first, moved, recorded)
    # the plain view's progress lines (a service job's console) carry the node's
    # quantiles too: the job page's live percentiles chart reads them
    progress = [f for f in map(parse_line, log.read_text().splitlines()) if f is not None]
    assert any(f.p50 is not None and f.p50 <= f.p95 <= f.p99 for f in progress), progress
    assert any(
        value(found, "marteau_response_time_seconds", node="localhost", quantile="0.95")
        for found in seen
    )
    assert any(value(found, "marteau_requests_per_second", node="localhost") for found in seen)
    assert {value(found, "marteau_cycle_users", node="localhost") for found in seen} <= {
        None,
        1,
        2,
    }
