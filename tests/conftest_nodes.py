"""The session's sshd test nodes (see tests/nodes.py), built once and shared, and the
views of them the `marteau run` tests take: clean nodes, an inventory of them."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.nodes import NodeSet, available
from tests.support.node_runs import POOL, lock_file


@pytest.fixture(scope="session")
def sshd_nodes() -> Iterator[NodeSet]:
    """Three real sshd nodes on 127.0.0.2-4; removed at the end of the session."""
    reason = available()
    if reason:
        pytest.skip(reason)
    nodes = NodeSet().claim().up()
    try:
        yield nodes
    finally:
        nodes.down()


@pytest.fixture
def live_nodes(sshd_nodes: NodeSet) -> NodeSet:
    """The shared nodes, with every sshd running (a test may have killed one)."""
    for node in sshd_nodes.nodes:
        node.start()
    return sshd_nodes


@pytest.fixture(scope="module")
def inventory(sshd_nodes: NodeSet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Ansible inventory of the shared nodes, in the group the runs use."""
    return sshd_nodes.write_inventory(
        tmp_path_factory.mktemp("inventory") / "nodes.ini", group=POOL
    )


@pytest.fixture
def nodes(sshd_nodes: NodeSet) -> Iterator[NodeSet]:
    """The shared nodes, every sshd up, no lock, nothing running (also after the test)."""

    def reset() -> None:
        for node in sshd_nodes.nodes:
            node.start()
            for pid, _ in node.bench_processes():
                os.kill(pid, signal.SIGKILL)
            lock_file(node).unlink(missing_ok=True)
            jobs = node.home / ".marteau" / "jobs"
            if jobs.is_dir():  # a killed node keeps its job: not for the next test
                for job in jobs.iterdir():
                    shutil.rmtree(job)

    reset()
    yield sshd_nodes
    reset()
