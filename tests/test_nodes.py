"""The sshd test nodes themselves: key login, host keys, kill and restart."""

from __future__ import annotations

import subprocess

from tests.nodes import NodeSet


def test_each_node_is_its_own_user_on_its_own_address(live_nodes: NodeSet) -> None:
    for node in live_nodes.nodes:
        result = live_nodes.ssh(node, "id -un; python3 -c 'import sys; print(sys.version_info[0])'")
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [node.name, "3"]


def test_unknown_host_key_is_refused(live_nodes: NodeSet, tmp_path) -> None:
    node = live_nodes.nodes[0]
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    result = subprocess.run(
        [
            "ssh",
            "-i",
            str(live_nodes.key),
            "-p",
            str(live_nodes.port),
            "-o",
            f"UserKnownHostsFile={empty}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            f"{node.name}@{node.address}",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr


def test_killed_sshd_is_unreachable_then_restarts(live_nodes: NodeSet) -> None:
    node = live_nodes.nodes[2]
    node.kill_sshd()
    assert node.sshd_pid() is None
    assert live_nodes.ssh(node, "true").returncode == 255
    node.start()
    assert live_nodes.ssh(node, "true").returncode == 0
