"""The start barrier on a busy machine: no load lost in silence.

`marteau run` on 8 real sshd nodes of this machine (tests/nodes.py) while
`stress-ng` keeps both cores busy: every node must record every cycle. Before
the barrier, a fixed 2 s lead let the nodes start 4-10 s late and record
nothing, with exit 0. Real parts only: ansible-runner, ssh to 127.0.0.2-9, a
real HTTP target on 127.0.0.1, a real CPU hog.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from marteau.results import load
from tests.nodes import BASE, PREFIX, NodeSet, available
from tests.servers import LocalServer, ok
from tests.test_orchestration_nodes import CONF, MARTEAU, POOL, TEST, run_dir_of, summary

NODES = 8
CYCLES = "1:2"


@pytest.fixture(scope="module")
def eight_nodes() -> Iterator[NodeSet]:
    reason = available() or (None if shutil.which("stress-ng") else "stress-ng is missing")
    if reason:
        pytest.skip(reason)
    nodes = NodeSet(base=Path(f"{BASE}-busy"), prefix=f"{PREFIX}b", count=NODES).claim().up()
    try:
        yield nodes
    finally:
        nodes.down()


@pytest.fixture
def busy_cores() -> Iterator[None]:
    """Both cores kept busy by another process for the length of the test."""
    hog = subprocess.Popen(
        ["stress-ng", "--cpu", "2", "--timeout", "900", "--quiet"], start_new_session=True
    )
    try:
        time.sleep(1)  # its workers are running
        assert hog.poll() is None, "stress-ng did not start"
        yield
    finally:
        os.killpg(hog.pid, signal.SIGTERM)
        hog.wait(timeout=30)


def test_eight_nodes_on_two_busy_cores_record_every_cycle(
    eight_nodes: NodeSet, busy_cores: None, tmp_path: Path
) -> None:
    with LocalServer(routes={"/": lambda request: ok("hello")}) as target:
        project = tmp_path / "project"
        project.mkdir()
        (project / "loadtest.py").write_text(TEST)
        (project / "Tiny.conf").write_text(CONF.format(url=target.url))
        (project / ".marteau.yml").write_text(
            "name: Tiny\nscript: loadtest.py\ntest: Tiny.test_get\n"
        )
        inventory = eight_nodes.write_inventory(tmp_path / "nodes.ini", group=POOL)
        started = time.monotonic()
        run = subprocess.run(
            [MARTEAU, "run", str(project), "-i", str(inventory), "--pool", POOL, "--plain"]
            + ["--nodes", str(NODES), "-c", CYCLES, "-D", "3", "--workers", "1"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=900,
        )
        elapsed = time.monotonic() - started
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "LOAD LOST" not in out and "Load lost" not in out
    run_dir = run_dir_of(run.stdout)
    provenance = json.loads((run_dir / "run.json").read_text())
    assert provenance["completed"] == eight_nodes.names() and provenance["lost"] == {}
    firsts = []
    for name in eight_nodes.names():
        (path,) = (run_dir / "results" / name).glob("*.mrt")
        results = load(str(path))
        cycles = set(results.tests["cycle"].tolist())
        assert cycles == {0, 1}, f"{name} recorded the cycles {sorted(cycles)}"
        assert "marteau:lost" not in results.config, results.config["marteau:lost"]
        firsts.append(float(results.responses["time"].min()))
    assert not [w for w in summary(run_dir / "report")["warnings"] if "load lost" in w]
    print(
        f"8 nodes on 2 busy cores: {elapsed:.1f}s, first requests within "
        f"{(max(firsts) - min(firsts)) * 1000:.0f} ms"
    )
