"""`marteau serve` and its worker processes: they never outlive it."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.service_helpers import Service, wait_for
from tests.support.processes import alive, children


def test_workers_end_when_serve_is_killed(tmp_path: Path, db_url: str) -> None:
    service = Service(tmp_path / "data", tmp_path / "locks", workers=2, database_url=db_url)
    try:
        workers = wait_for(
            lambda: len(children(service.proc.pid)) == 2 and children(service.proc.pid),
            what="two worker processes",
        )
        service.proc.send_signal(signal.SIGKILL)
        service.proc.wait()
        wait_for(
            lambda: not any(alive(pid) for pid in workers),
            timeout=30,
            what="the workers to end after serve was killed",
        )
    finally:
        service.stop()
    assert not any(alive(pid) for pid in workers)
