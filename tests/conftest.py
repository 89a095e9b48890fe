"""Shared fixtures: a real HTTP server on 127.0.0.1 per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import LocalServer

pytest_plugins = ["tests.conftest_nodes", "tests.conftest_postgres", "tests.conftest_service"]


@pytest.fixture
def server() -> Iterator[LocalServer]:
    """An empty local server; tests add routes to `server.routes`."""
    with LocalServer() as local:
        yield local
