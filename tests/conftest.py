"""Shared fixtures (a real HTTP server on 127.0.0.1 per test) and how the suite
splits across pytest-xdist workers.

`make test` runs the suite on several workers (`-n`, `--dist loadgroup`). Each
worker is a controller of its own: its own `HOME`, so the embedded localhost node's
lock (`~/.marteau/lock.json`), node folder and `~/.ansible` are its own, while the
download caches (`XDG_CACHE_HOME`: pip's and the wheelhouse's, written atomically)
stay shared. What only one process on the machine may use at a time, the sshd test
nodes on 127.0.0.2-4 and this machine's nftables, goes to one worker: the tests
that use them form the xdist group `machine` (a test whose run gets a firewall
from the embedded node says so with the group's marker itself).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import LocalServer

pytest_plugins = [
    "tests.conftest_browser",
    "tests.conftest_files",
    "tests.conftest_nodes",
    "tests.conftest_postgres",
    "tests.conftest_service",
]

# Tests of these modules change this machine's firewall or users without sshd nodes.
MACHINE_MODULES = {"test_firewall.py"}
MACHINE_FIXTURES = {"sshd_nodes"}


def pytest_configure(config: pytest.Config) -> None:
    """On an xdist worker: a home of its own, the caches of the real one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return
    real_home = Path(os.path.expanduser("~"))
    os.environ.setdefault("XDG_CACHE_HOME", str(real_home / ".cache"))
    home = Path(config.rootpath) / ".pytest-homes" / worker
    home.mkdir(parents=True, exist_ok=True)
    os.environ["HOME"] = str(home)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests of the sshd nodes and of this machine's firewall share one worker."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & MACHINE_FIXTURES or item.path.name in MACHINE_MODULES:
            item.add_marker(pytest.mark.xdist_group("machine"))


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """On the controller of `--dist loadgroup`: stop unless pytest-xdist grouped the
    machine's tests (their ids end in `@machine`). A pytest that this pytest-xdist does
    not know can stop it from doing so, and those tests would share the nodes and
    nftables in silence."""
    if node.config.getvalue("dist") != "loadgroup":
        return
    ungrouped = [i for i in ids if i.split("::")[0].rsplit("/")[-1] in MACHINE_MODULES]
    ungrouped = [i for i in ungrouped if "@" not in i]
    if ungrouped:
        raise pytest.UsageError(
            f"pytest-xdist did not put {ungrouped[0]} in its group: this pytest-xdist and "
            "this pytest do not work together (setup.cfg's dev extra says which pytest)"
        )


@pytest.fixture
def server() -> Iterator[LocalServer]:
    """An empty local server; tests add routes to `server.routes`."""
    with LocalServer() as local:
        yield local
