"""Clones bounded in time and size (issue 13): against a server on 127.0.0.1 that accepts
and never answers, and real repositories served by `git http-backend` at a fixed pace
(tests/git_http.py says why that transport). The clone module alone, then a real
`marteau serve` whose two workers and whose preview clone from them: each clone ends
at its limit with the reason shown to the user, and no process of its group lives on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from marteau.errors import MarteauError
from marteau.orchestration.clone import LimitExceeded, Limits, Stopped, clone
from marteau.service import accounts
from marteau.service.db import Database, upgrade
from marteau.service.jobs import create_job
from marteau.service.scheduler import request_cancel
from marteau.service.settings import Settings
from marteau.service.worker import console_path
from tests.git_http import (
    GitHttpServer,
    group_alive,
    live_processes,
    make_repo,
    processes_with,
)
from tests.servers import DnsServer, HangingServer, LocalServer, Reply, Request
from tests.service_helpers import ROOT, Service, make_project, run_queue, wait_for, wait_job

MB = 2**20
PACE = 1 * MB  # bytes/s the git server sends: an 8 MB pack takes 8 s in full


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bare repositories: `big.git` (an 8 MB pack of random bytes), `zeros.git` (50 MB
    of zeros: a pack of some KB), `many.git` (12 small files), `ok.git` (a project)."""
    root = tmp_path_factory.mktemp("repos")
    project = make_project(tmp_path_factory.mktemp("project"))
    files = {p.name: p.read_bytes() for p in project.iterdir()}
    make_repo(root / "big.git", {**files, "blob.bin": os.urandom(8 * MB)})
    make_repo(root / "zeros.git", {**files, "zeros.bin": bytes(50 * MB)})
    make_repo(root / "many.git", {**files, **{f"f{i}.txt": b"x" for i in range(10)}})
    make_repo(root / "ok.git", files)
    return root


def hanging_clone(url: str, target: Path, log: Path, seconds: float) -> tuple[Exception, dict]:
    """Clone `url` (a server that never answers) in a thread; (what the clone raised,
    {pid: group} of its processes seen while it hung)."""
    outcome: list[Exception] = []

    def run() -> None:
        try:
            clone(url, target, None, Limits(seconds), log)
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    # git's helper for http, which outlives a killed `git clone`
    seen = wait_for(
        lambda: (
            (found := {p: v for p, v in live_processes().items() if url.encode() in v[1]})
            and any(b"remote-http" in command for _group, command in found.values())
            and {pid: group for pid, (group, _command) in found.items()}
        ),
        timeout=60,
        what="git remote-http",
    )
    thread.join(timeout=120)
    assert not thread.is_alive()
    return outcome[0], seen


# -- the clone module ------------------------------------------------------------------


def test_a_clone_from_a_server_that_never_answers_ends_with_its_group(tmp_path: Path) -> None:
    with HangingServer() as server:
        url = server.url + "/project.git"
        error, seen = hanging_clone(url, tmp_path / "source", tmp_path / "git.log", 4)
    assert isinstance(error, LimitExceeded)
    assert str(error) == f"{url}: git clone: not done within 4 s"
    assert len(seen) >= 3  # timeout, git clone, git remote-http ...
    assert len(set(seen.values())) == 1  # ... in one process group of their own
    group = next(iter(seen.values()))
    assert group != os.getpgrp()
    assert group_alive(group) == [] and processes_with(url) == {}
    assert not (tmp_path / "source").exists()


def test_a_clone_whose_watcher_dies_is_ended_by_its_guard(tmp_path: Path) -> None:
    """`timeout` leads each git group: a watcher killed by SIGKILL (no cleanup) still
    leaves no git behind once the limit is over."""
    script = (
        "import sys\nfrom pathlib import Path\n"
        "from marteau.orchestration.clone import Limits, clone\n"
        "clone(sys.argv[1], Path(sys.argv[2]), None, Limits(8), Path(sys.argv[3]))\n"
    )
    with HangingServer() as server:
        url = server.url + "/project.git"
        watcher = subprocess.Popen(
            [sys.executable, "-c", script, url, str(tmp_path / "s"), str(tmp_path / "log")],
            cwd=ROOT,
        )
        wait_for(lambda: len(processes_with(url)) >= 4, timeout=60, what="the clone")
        groups = set(processes_with(url).values()) - {os.getpgrp()}  # not the watcher's
        watcher.send_signal(signal.SIGKILL)
        watcher.wait(timeout=30)
        assert len(groups) == 1
        group = groups.pop()
        assert len(group_alive(group)) >= 3  # the clone outlived its watcher ...
        wait_for(lambda: group_alive(group) == [], timeout=60, what="the group to end")


def test_the_size_cap_holds_while_the_pack_arrives(repos: Path, tmp_path: Path) -> None:
    limits = Limits(120, 1 * MB, 100)
    with GitHttpServer(repos, rate=PACE) as server:
        with pytest.raises(LimitExceeded) as caught:
            clone(server.url("big.git"), tmp_path / "big", None, limits, tmp_path / "log")
        assert str(caught.value) == f"{server.url('big.git')}: git clone: repository over 1 MB"
        # stopped with a fraction of the pack received, not checked once it was all here
        assert server.sent < 4 * MB  # of a pack over 8 MB (random bytes do not compress)
    assert not (tmp_path / "big").exists()


def test_a_small_pack_that_expands_is_refused_before_its_checkout(
    repos: Path, tmp_path: Path
) -> None:
    with GitHttpServer(repos) as server:
        url = server.url("zeros.git")
        with pytest.raises(LimitExceeded, match="git clone: repository over 1 MB"):
            clone(url, tmp_path / "zeros", None, Limits(120, 1 * MB, 100), tmp_path / "log")
        assert server.sent < 1 * MB  # the whole pack came: its tree is what is too big
        many = server.url("many.git")
        with pytest.raises(LimitExceeded, match="more than 5 files to check out"):
            clone(many, tmp_path / "many", None, Limits(120, 1 * MB, 5), tmp_path / "log")
        clone(many, tmp_path / "many", "main", Limits(120, 1 * MB, 100), tmp_path / "log")
        assert (tmp_path / "many" / "f9.txt").read_bytes() == b"x"
        head = subprocess.run(
            ["git", "-C", str(repos / "many.git"), "rev-parse", "main"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        # a commit is no branch: a full clone, then its checkout, under the same limits
        clone(many, tmp_path / "at", head, Limits(120, 1 * MB, 100), tmp_path / "log")
        assert (tmp_path / "at" / "f0.txt").is_file()
    assert not (tmp_path / "zeros").exists()


def test_a_clone_stops_when_asked(tmp_path: Path) -> None:
    asked = []

    def stop() -> str | None:
        asked.append(1)
        return "cancel" if len(asked) > 3 else None

    with HangingServer() as server:
        url = server.url + "/project.git"
        with pytest.raises(Stopped) as caught:
            clone(url, tmp_path / "s", None, Limits(120), tmp_path / "log", stop=stop)
        assert caught.value.why == "cancel" and processes_with(url) == {}


def test_a_worker_stops_a_clone_when_its_job_is_cancelled(tmp_path: Path) -> None:
    """Cancel reaches a job still cloning (prepared by a worker in this process): the
    job is cancelled, not failed at its time limit, and its git group is gone."""
    settings = Settings(data_dir=tmp_path / "data", poll_interval=0.05, clone_timeout=120)
    db = Database(settings.db_url)
    upgrade(db)
    with db.write() as session:
        owner = accounts.create_user(session, "owner@example.org", "owner-password")
    with HangingServer() as server:
        url = server.url + "/project.git"
        job = create_job(db, settings, owner, {"git_url": url})
        ended: list = []
        worker = threading.Thread(target=lambda: ended.append(run_queue(settings, db, job.id)))
        worker.start()
        groups = wait_for(lambda: set(processes_with(url).values()), timeout=60, what="git")
        assert request_cancel(db, job.id) == "cancelled"
        worker.join(timeout=120)
    assert (ended[0].state, ended[0].exit_reason) == ("cancelled", "cancelled before it started")
    assert "git clone: not done" not in console_path(settings, job.id).read_text()
    assert [group_alive(group) for group in groups] == [[]]
    db.dispose()


# -- the service: its workers and its preview -------------------------------------------

# 10 s: the two clones of the test below must be seen alive together, however late a
# busy machine's second worker takes its job
CONFIG = """\
[marteau]
clone_timeout = 10
clone_max_mb = 1
"""


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    base = tmp_path_factory.mktemp("clones")
    (base / "config.toml").write_text(CONFIG)
    running = Service(
        base / "data", base / "locks", workers=2, options=("--config", str(base / "config.toml"))
    )
    yield running
    running.stop()


def test_two_hanging_clones_do_not_hold_both_workers(
    service: Service, admin, alice, tmp_path: Path
) -> None:
    with HangingServer() as server:
        url = server.url + "/project.git"
        ids = [alice.post("/api/jobs", json={"git_url": url}).json()["id"] for _ in range(2)]
        # both workers clone at once: two groups, each with git's http helper
        seen = wait_for(
            lambda: (found := processes_with(url)) and len(set(found.values())) == 2 and found,
            timeout=60,
            what="two clones",
        )
        jobs = [wait_job(alice, job_id) for job_id in ids]
        for job in jobs:
            assert job["state"] == "failed"
            assert job["exit_reason"] == f"bad input: {url}: git clone: not done within 10 s"
            console = alice.get(f"/api/jobs/{job['id']}/console").text
            assert f"Error: {url}: git clone: not done within 10 s" in console
        assert all(group_alive(group) == [] for group in set(seen.values()))
        preview = alice.post("/api/jobs/preview", json={"git_url": url})
        assert preview.status_code == 400
        assert preview.json()["detail"] == f"{url}: git clone: not done within 10 s"
        assert processes_with(url) == {}
    # the workers are free: the next job runs
    project = make_project(tmp_path / "project")
    job = admin.post("/api/jobs", json={"path": str(project)}).json()
    assert wait_job(admin, job["id"])["state"] == "succeeded"


def test_a_repository_over_the_size_cap_fails_its_job_and_preview(
    service: Service, alice, repos: Path
) -> None:
    with GitHttpServer(repos, rate=PACE) as server:
        url = server.url("big.git")
        job = alice.post("/api/jobs", json={"git_url": url}).json()
        ended = wait_job(alice, job["id"])
        assert (ended["state"], ended["exit_code"]) == ("failed", 2)
        assert ended["exit_reason"] == f"bad input: {url}: git clone: repository over 1 MB"
        assert server.sent < 4 * MB
        assert not (service.data_dir / "jobs" / str(job["id"]) / "source").exists()
        server.sent = 0
        preview = alice.post("/api/jobs/preview", json={"git_url": url})
        assert preview.status_code == 400
        assert preview.json()["detail"] == f"{url}: git clone: repository over 1 MB"
        assert server.sent < 4 * MB
        ok = alice.post("/api/jobs/preview", json={"git_url": server.url("ok.git")})
        assert ok.status_code == 200, ok.text
        assert ok.json()["project"]["test"] == "Simple.test_simple"


# -- public mode: a clone reaches public addresses only, pinned, without redirects --------


def public_settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", public=True, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/ok.git",
        "http://localhost:{port}/ok.git",
        "https://[::1]:{port}/ok.git",
        "ssh://git@10.1.2.3/ok.git",
        "git://169.254.169.254/latest",
        "git@192.168.1.1:team/ok.git",
        "http://no-such-host.invalid/ok.git",
    ],
)
def test_a_public_clone_of_a_private_or_unknown_host_is_refused_before_git_runs(
    repos: Path, tmp_path: Path, url: str
) -> None:
    from marteau.service.clone_targets import clone_options

    with GitHttpServer(repos) as server:
        url = url.format(port=server.port)
        with pytest.raises(MarteauError) as refused:
            clone_options(url, public_settings(tmp_path))
        assert server.sent == 0
    # one text whatever the reason: no map of the service's network
    host = str(refused.value).split(": git clone: ")[1].split(" is not a public host")[0]
    assert str(refused.value) == (
        f"{url}: git clone: {host} is not a public host (a public service reaches "
        "public addresses only)"
    )
    assert clone_options(url, Settings(data_dir=tmp_path / "team")) == []  # a team server


def test_a_public_clone_goes_to_the_address_checked_and_follows_no_redirect(
    repos: Path, tmp_path: Path
) -> None:
    from marteau.service.clone_targets import clone_options

    with DnsServer() as dns_server, GitHttpServer(repos) as server:
        dns_server.addresses["repo.marteau.test"] = ["127.0.0.1"]
        settings = public_settings(
            tmp_path,
            dns_server=f"127.0.0.1:{dns_server.port}",
            verify_allow_networks="127.0.0.0/8",
        )
        url = f"http://repo.marteau.test:{server.port}/ok.git"
        options = clone_options(url, settings)
        assert options == [
            "-c",
            f"http.curloptResolve=repo.marteau.test:{server.port}:127.0.0.1",
            "-c",
            "http.followRedirects=false",
        ]
        # git itself cannot resolve the name: only the pinned address reaches the server
        with pytest.raises(MarteauError, match="git clone failed"):
            clone(url, tmp_path / "unpinned", None, Limits(60), tmp_path / "git.log")
        clone(url, tmp_path / "pinned", None, Limits(60), tmp_path / "git.log", options=options)
        assert (tmp_path / "pinned" / ".marteau.yml").is_file()

        def moved(request: Request) -> Reply:
            return 302, [("Location", server.url("ok.git") + request.path[len("/moved") :])], b""

        with LocalServer(routes={}) as mover:
            mover.routes.update(
                {
                    "/moved/info/refs": moved,
                    "/moved/git-upload-pack": moved,
                }
            )
            dns_server.addresses["moved.marteau.test"] = ["127.0.0.1"]
            url = f"http://moved.marteau.test:{mover.port}/moved"
            options = clone_options(url, settings)
            server.sent = 0
            with pytest.raises(MarteauError, match="git clone failed"):
                clone(
                    url, tmp_path / "moved", None, Limits(60), tmp_path / "git.log", options=options
                )
            assert mover.requests and server.sent == 0  # asked, redirected, not followed
