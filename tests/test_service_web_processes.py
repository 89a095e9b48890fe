"""`marteau serve --web-processes N`: the web app in N uvicorn processes, which get the
service's settings, share its sessions through the database and end with serve."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from marteau.service.serve import settings_environment
from marteau.service.settings import load_settings
from tests.service_helpers import ADMIN, ADMIN_PASSWORD, Service, make_project, wait_for
from tests.support.processes import alive, children

BASE_URL = "http://marteau.example.org:8443"


def web_processes(serve_pid: int) -> list[int]:
    """The uvicorn worker processes of serve (multiprocessing spawns them)."""
    return [
        pid
        for pid in children(serve_pid)
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def test_web_processes_serve_with_the_settings_and_end_with_serve(
    tmp_path: Path, db_url: str
) -> None:
    service = Service(
        tmp_path / "data",
        tmp_path / "locks",
        workers=0,
        database_url=db_url,
        options=("--web-processes", "2", "--base-url", BASE_URL),
    )
    try:
        pids = wait_for(
            lambda: len(web_processes(service.proc.pid)) == 2 and web_processes(service.proc.pid),
            what="two web processes",
        )
        admin = service.client(ADMIN, ADMIN_PASSWORD)
        project = make_project(tmp_path / "project")
        job = admin.post("/api/jobs", json={"path": str(project)})
        assert job.status_code == 201, job.text
        assert job.json()["url"] == f"{BASE_URL}/jobs/{job.json()['id']}"
        for _ in range(8):  # new connections, whichever process takes them: one session
            with httpx.Client(base_url=service.url, cookies=admin.cookies, timeout=30) as fresh:
                listed = fresh.get("/api/jobs").json()
                assert [j["url"] for j in listed["jobs"]] == [job.json()["url"]]
                assert fresh.get("/").status_code == 200
        admin.close()
        service.proc.send_signal(signal.SIGKILL)
        service.proc.wait()
        wait_for(
            lambda: not any(alive(pid) for pid in pids),
            timeout=30,
            what="the web processes to end after serve was killed",
        )
    finally:
        service.stop()
    assert not any(alive(pid) for pid in pids)


def test_web_processes_read_exactly_the_settings_of_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("MARTEAU_")]:
        monkeypatch.delenv(name)
    settings = load_settings(
        data_dir=tmp_path, port=8080, base_url=BASE_URL, pool_prices="big=2.5", workers=0
    )
    environ = {"MARTEAU_PORT": "9000", "MARTEAU_ADMIN_EMAIL": "a@example.org", "PATH": "/bin"}
    environment = settings_environment(settings, environ)
    assert "MARTEAU_PORT" not in environment  # the option set it back to the default
    assert environment["MARTEAU_ADMIN_EMAIL"] == "a@example.org"
    assert environment["PATH"] == "/bin"
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert load_settings() == settings
