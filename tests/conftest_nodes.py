"""The session's sshd test nodes (see tests/nodes.py), built once and shared."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.nodes import NodeSet, available


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
