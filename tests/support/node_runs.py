"""`marteau run` on the sshd test nodes (tests/nodes.py): the command, where its run
went, and what a node must look like after a job (no lock, no process, no user)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from marteau.orchestration import content_dir
from tests.nodes import NodeSet
from tests.support.commands import MARTEAU

POOL = "pool"


def lock_file(node) -> Path:
    return node.home / ".marteau" / "lock.json"


def plant_lock(node, **lock: object) -> None:
    """Write a lock on `node` as another job would have (owned by the node's user)."""
    path = lock_file(node)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_text(json.dumps(lock))
    for item in (path.parent, path):
        os.chown(item, node.uid(), node.uid())


# Bounds, not expectations: a cold run with its report takes 90-120 s on two cores
# kept busy by another process (stress-ng --cpu 2), a warm one 30-60 s.
RUN_TIMEOUT = 300


def marteau_run(
    project: Path,
    inventory: Path,
    cwd: Path,
    *args: str,
    timeout: float = RUN_TIMEOUT,
    env: dict[str, str] | None = None,
):
    command = [MARTEAU, "run", str(project), "-i", str(inventory), "--pool", POOL, "--plain", *args]
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def run_dir_of(output: str) -> Path:
    line = next(line for line in output.splitlines() if line.startswith("Run directory: "))
    return Path(line.split(": ", 1)[1])


def summary(report_dir: Path) -> dict:
    (path,) = report_dir.rglob("summary.json")
    return json.loads(path.read_text())


def assert_nodes_clean(nodes: NodeSet) -> None:
    for node in nodes.nodes:
        assert not lock_file(node).exists(), f"{node.name} still locked"
        assert node.bench_processes() == [], f"{node.name} still runs {node.bench_processes()}"
        jobs = node.home / ".marteau" / "jobs"
        assert not jobs.exists() or list(jobs.iterdir()) == [], f"{node.name} kept a job directory"
        assert node.job_users() == [], f"{node.name} kept job users {node.job_users()}"


def ansible_env() -> dict[str, str]:
    """The environment of a plain `ansible-playbook` run of Marteau's playbooks."""
    return dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        ANSIBLE_CONFIG=str(content_dir() / "ansible.cfg"),
        ANSIBLE_HOST_KEY_CHECKING="True",
        LC_ALL="C.UTF-8",
    )
