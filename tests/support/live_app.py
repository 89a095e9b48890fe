"""The service's app on a real uvicorn in a thread of the test: for the tests that
need its HTTP side and their own hold on its database (no `marteau serve` process)."""

from __future__ import annotations

import threading

import httpx
import uvicorn

from marteau.service.app import create_app
from marteau.service.db import Database
from marteau.service.settings import Settings
from tests.servers import free_port
from tests.service_helpers import wait_for

# Every user the tests make has this password.
PASSWORD = "a-long-password"


class Uvicorn:
    """The service's app on a real uvicorn (127.0.0.1, free port) in a thread."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(settings, db), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Uvicorn:
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=30, what="uvicorn")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def client(self, email: str) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=30)
        r = client.post("/api/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        return client
