"""`web_threads`: at most that many requests of a web process run at once in the thread
pool of the sync routes; the others wait for a thread, then are served."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from marteau.service.db import Database, upgrade  # noqa: E402
from marteau.service.settings import Settings  # noqa: E402
from tests.service_helpers import wait_for  # noqa: E402
from tests.support.live_app import Uvicorn  # noqa: E402

THREADS = 3
REQUESTS = 7


def test_requests_beyond_web_threads_wait_for_a_thread(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", web_threads=THREADS)
    db = Database(settings.db_url)
    upgrade(db, default_node=False)
    inside, most = [0], [0]
    lock, release = threading.Lock(), threading.Event()

    def held() -> dict:
        """A sync route that holds its thread until the test releases it."""
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        release.wait(60)
        with lock:
            inside[0] -= 1
        return {"ok": True}

    with Uvicorn(settings, db) as web:
        web.server.config.app.add_api_route("/held", held)
        answers: list[int] = []

        def ask() -> None:
            answers.append(httpx.get(web.url + "/held", timeout=90).status_code)

        askers = [threading.Thread(target=ask) for _ in range(REQUESTS)]
        for asker in askers:
            asker.start()
        wait_for(lambda: inside[0] == THREADS, timeout=60, what="the pool's threads busy")
        release.set()
        for asker in askers:
            asker.join(90)
    db.dispose()
    assert answers == [200] * REQUESTS
    assert most[0] == THREADS
