"""Every failure of `marteau run` carries its real reason, and the exit status tells the truth.

Real parts: sshd nodes (tests/nodes.py), one node for the benches (the first of
the pool: the others are left to other runs), and real targets on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from marteau import exits
from marteau.service.live_figures import job_figures
from tests.nodes import NodeSet
from tests.servers import LocalServer, free_port, ok
from tests.support.projects import CONF, TEST

MARTEAU = str(Path(sys.executable).with_name("marteau"))
ONE_NODE = ["--pool", "pool", "--nodes", "1", "--plain", "--lock-timeout", "300"]


def make_project(root: Path, url: str, test: str = TEST, extra: str = "") -> Path:
    root.mkdir()
    (root / "loadtest.py").write_text(test)
    (root / "Tiny.conf").write_text(CONF.format(url=url))
    (root / ".marteau.yml").write_text(f"script: loadtest.py\ntest: Tiny.test_get\n{extra}")
    return root


def marteau_run(tmp_path: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MARTEAU, "run", *args, "--runs-dir", str(tmp_path / "runs")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, HOME=os.environ.get("HOME", "/root")),
    )


def test_an_unreachable_node_is_named_with_its_whole_ssh_error_never_busy(
    live_nodes: NodeSet, tmp_path: Path
) -> None:
    victim = live_nodes.nodes[2]
    victim.kill_sshd()
    inventory = live_nodes.write_inventory(tmp_path / "nodes.ini", group="pool")
    project = make_project(tmp_path / "project", "http://127.0.0.1:9")
    try:
        result = marteau_run(
            tmp_path, str(project), "-i", str(inventory), "--pool", "pool", "--nodes", "3",
            "--plain", timeout=300,
        )  # fmt: skip
    finally:
        victim.start()
    output = result.stdout + result.stderr
    assert result.returncode == exits.FAILURES, output
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert error.startswith("Error: pool 'pool': 2 reachable node(s), 3 wanted: ")
    reason = error.split(f"{victim.name} unreachable: ", 1)[1]
    assert "Connection refused" in reason and len(reason) > 60, reason
    assert "busy" not in output and "no node free" not in output
    assert not list((tmp_path / "runs").glob("*/results/*/*.mrt")), "a node ran"


def test_a_bench_that_fails_shows_the_last_lines_of_its_log(
    live_nodes: NodeSet, tmp_path: Path
) -> None:
    # The method comes from a module of the project: the controller cannot tell
    # (it never imports test code), the node's bench finds it missing.
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "common.py").write_text(
        "from funkload.FunkLoadTestCase import FunkLoadTestCase\n\n\n"
        "class Base(FunkLoadTestCase):\n    def test_other(self):\n        pass\n"
    )
    project = tmp_path / "project"
    (project / "loadtest.py").write_text(
        "from common import Base\n\n\nclass Tiny(Base):\n    pass\n"
    )
    (project / "Tiny.conf").write_text(CONF.format(url="http://127.0.0.1:9"))
    (project / ".marteau.yml").write_text("script: loadtest.py\ntest: Tiny.test_get\ncycles: 1\n")
    inventory = live_nodes.write_inventory(tmp_path / "nodes.ini", group="pool")
    result = marteau_run(tmp_path, str(project), "-i", str(inventory), *ONE_NODE)
    node = min(live_nodes.names())
    output = result.stdout + result.stderr
    assert "cannot tell whether Tiny.test_get exists" in result.stdout
    assert "Unknown error" not in output
    assert re.search(
        rf"{node}: failed \(Wait until every bench is armed: the bench exited \d+ without results; the last lines of \S+bench.log:\)",
        result.stdout,
    ), output
    # the bench's own words, from its log on the node
    assert "test_get" in result.stdout.split(f"{node}: failed", 1)[1]
    assert result.returncode == exits.FAILURES, output  # no node gave results


def refused_url() -> str:
    """A port of 127.0.0.1 that refuses connections (nothing listens)."""
    return f"http://127.0.0.1:{free_port()}"


def test_a_target_that_refuses_everything_exits_255_with_figures_every_second(
    live_nodes: NodeSet, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "project", refused_url(), extra="cycles: 2\nduration: 4\n")
    inventory = live_nodes.write_inventory(tmp_path / "nodes.ini", group="pool")
    result = marteau_run(tmp_path, str(project), "-i", str(inventory), *ONE_NODE)
    node = min(live_nodes.names())
    output = result.stdout + result.stderr
    assert result.returncode == exits.ERRORS, output
    assert re.search(r"Totals: [\d,]+ requests \(([\d,]+) errors\)", result.stdout), output
    # One line a second from the node's bench reaches the console: a 4 s window
    # and its staging give at least 4 distinct lines for the cycle.
    progress = {
        line.split("] ", 1)[1]
        for line in result.stdout.splitlines()
        if f"{node}: cycle #0 users" in line
    }
    assert len(progress) >= 4, result.stdout


def test_a_run_that_completes_exits_0_and_its_figures_reach_every_cycle(
    live_nodes: NodeSet, tmp_path: Path
) -> None:
    inventory = live_nodes.write_inventory(tmp_path / "nodes.ini", group="pool")
    with LocalServer(routes={"/": lambda request: ok("hello")}) as target:
        project = make_project(tmp_path / "project", target.url, extra="cycles: 1:2\nduration: 3\n")
        result = marteau_run(tmp_path, str(project), "-i", str(inventory), *ONE_NODE)
    node = min(live_nodes.names())
    assert result.returncode == exits.OK, result.stdout + result.stderr
    for cycle in (0, 1):
        lines = [x for x in result.stdout.splitlines() if f"{node}: cycle #{cycle} users" in x]
        assert len(lines) >= 3, result.stdout
    # the service reads the same lines into its figures: each cycle ends with its final counts
    console = tmp_path / "console.log"
    console.write_text(result.stdout)
    rows = job_figures(console)
    assert [(r["cycle"], r["node"], r["users"], r["cycle_users"]) for r in rows] == [
        (0, node, 1, 1),
        (1, node, 2, 2),
    ]
    assert all(r["ok"] > 0 and r["errors"] == 0 for r in rows), rows
