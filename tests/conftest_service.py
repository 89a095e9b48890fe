"""Clients of a module's `service` fixture (a real `marteau serve`): the admin, and
alice, a user the admin makes. A module that needs other clients defines its own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest


@pytest.fixture(scope="module")
def admin(service: Any) -> Iterator[Any]:
    from tests.service_helpers import ADMIN, ADMIN_PASSWORD

    with closing(service.client(ADMIN, ADMIN_PASSWORD)) as client:
        yield client


@pytest.fixture(scope="module")
def alice(service: Any, admin: Any) -> Iterator[Any]:
    with closing(service.new_user(admin, "alice@example.org", "alice-password")) as client:
        yield client
