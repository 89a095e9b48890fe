"""`marteau serve` used as a hostile user would (issue 13), against a real server
(uvicorn on 127.0.0.1, real workers running the stand-in `marteau run`): bodies
refused before they are read, archive bombs stopped at the first excess, YAML alias
bombs, credentials in git URLs, throttled logins, scoped tokens, private files, a lost
worker's job killed; then the OpenAPI schema fuzzed (schemathesis): no 5xx, no answer
over 1 MB to a small request, nothing written outside the data folder."""

from __future__ import annotations

import gzip
import io
import os
import signal
import socket
import stat
import subprocess
import tarfile
import time
from contextlib import closing
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from marteau.errors import MarteauError  # noqa: E402
from tests.service_helpers import (  # noqa: E402
    MARTEAU,
    ROOT,
    Service,
    make_project,
    service_env,
    tar_of,
    wait_for,
)

CONFIG = """\
[marteau]
max_upload_mb = 4
max_extracted_mb = 64
max_archive_members = 300
enforce_quotas = true
login_window = 8
login_account_failures = 3
login_address_failures = 6
"""


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("abuse")


@pytest.fixture(scope="module")
def service(base: Path):
    """The service, its temporary files in a folder of their own (checked empty)."""
    (base / "tmp").mkdir()
    (base / "config.toml").write_text(CONFIG)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TMPDIR", str(base / "tmp"))
        env.setenv("GIT_ALLOW_PROTOCOL", "file")  # no clone may reach the network
        svc = Service(
            base / "data",
            base / "locks",
            workers=1,
            options=("--config", str(base / "config.toml")),
        )
    yield svc
    svc.stop()


def token_client(service: Service, client, scope: str, **extra) -> httpx.Client:  # type: ignore[no-untyped-def]
    r = client.post("/api/tokens", json={"name": scope, "scope": scope, **extra})
    assert r.status_code == 201, r.text
    return httpx.Client(
        base_url=service.url, headers={"Authorization": f"Bearer {r.json()['token']}"}, timeout=30
    )


def upload(client, data: bytes, name: str = "project.tar.gz") -> httpx.Response:  # type: ignore[no-untyped-def]
    return client.post("/api/jobs/upload", files={"archive": (name, data, "application/gzip")})


def wait_job(client, job_id: int) -> dict:  # type: ignore[no-untyped-def]
    def done() -> dict | None:
        job = client.get(f"/api/jobs/{job_id}").json()
        return job if job["state"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(done, timeout=90, what=f"job {job_id} to end")


def raw_request(service: Service, head: str, body: bytes = b"") -> tuple[int, dict[str, str]]:
    """Send a request's head (and the start of its body, if any) on a socket and read
    the answer's status and headers without sending the rest."""
    with socket.create_connection(("127.0.0.1", service.port), timeout=30) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    lines = answer.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}


def leftovers(service: Service, base: Path) -> list[str]:
    """What the service left in its temporary folder and in the data folder's staging."""
    staged = [p.name for p in (service.data_dir / "jobs").glob(".upload-*")]
    return sorted(os.listdir(base / "tmp")) + staged


# -- limits before work ---------------------------------------------------------------


def test_an_anonymous_upload_is_refused_before_its_body(service: Service, base: Path) -> None:
    head = (
        "POST /api/jobs/upload HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {}\r\n"
    )
    # 600 MiB declared: 413 from the headers alone
    status, headers = raw_request(service, head.format(600 * 2**20), b"--b\r\n" + b"x" * 65536)
    assert status == 413 and headers.get("connection") == "close"
    # within the cap but anonymous: 401 though not one byte of the body was sent
    status, _ = raw_request(service, head.format(3 * 2**20))
    assert status == 401
    status, headers = raw_request(
        service, "POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
    )
    assert status == 303 and headers["location"].startswith("/login")
    assert leftovers(service, base) == []


def test_a_streamed_body_stops_at_the_cap(service: Service, alice, base: Path) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b"--b\r\nContent-Disposition: form-data; name=archive; filename=a.tgz\r\n\r\n"
        for _ in range(80):  # 10 MiB, without a Content-Length (chunked)
            yield b"\0" * 2**17

    headers = {"Content-Type": "multipart/form-data; boundary=b"}
    r = alice.post("/api/jobs/upload", content=chunks(), headers=headers)
    assert r.status_code == 413, r.text
    small = alice.post(
        "/api/users",
        content=b"{" + b" " * 2**21 + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert small.status_code == 413
    assert leftovers(service, base) == []


def _bomb(declared: int, zeros: int) -> bytes:
    """A tar.gz whose one member declares `declared` bytes; `zeros` of them are there."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=1) as gz:
        info = tarfile.TarInfo("project/zeros")
        info.size = declared
        gz.write(info.tobuf(format=tarfile.GNU_FORMAT))
        block = b"\0" * 2**20
        for _ in range(zeros // 2**20):
            gz.write(block)
    return buffer.getvalue()


def test_archive_bombs_stop_at_the_first_excess(service: Service, alice, base: Path) -> None:
    # a member declaring 8 GiB: refused at its header
    r = upload(alice, _bomb(8 * 2**30, 32 * 2**20))
    assert r.status_code == 400 and "expands past" in r.json()["detail"], r.text
    # 60 MiB of zeros (within the 64 MB cap): refused by its ratio once 16 MiB came out
    r = upload(alice, _bomb(60 * 2**20, 60 * 2**20))
    assert r.status_code == 400 and "times its size" in r.json()["detail"], r.text
    # many members
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for i in range(1000):
            tar.addfile(tarfile.TarInfo(f"p/{i}"), io.BytesIO(b""))
    r = upload(alice, buffer.getvalue())
    assert r.status_code == 400 and "more than 300 members" in r.json()["detail"]
    for answer in (r,):
        assert str(service.data_dir) not in answer.text
    assert leftovers(service, base) == []


def test_the_disk_quota_counts_the_expanded_size(service: Service, admin, tmp_path) -> None:
    r = admin.post("/api/users", json={"email": "dave@example.org", "password": "dave-password"})
    r = admin.put(f"/api/users/{r.json()['id']}/quotas", json={"disk_mb": 5})
    assert r.status_code == 200, r.text
    project = make_project(tmp_path / "project")
    (project / "data.txt").write_text(os.urandom(3 * 2**20).hex())  # 6 MiB, ~3 MiB gzipped
    data = tar_of(project)
    assert len(data) < 4 * 2**20
    with closing(service.client("dave@example.org", "dave-password")) as dave:
        r = upload(dave, data)
    assert r.status_code == 400 and r.json()["detail"].startswith("quota disk: limit 5 MB")


# -- bounded inputs ----------------------------------------------------------------------


def test_yaml_aliases_and_long_messages(service: Service, alice, tmp_path) -> None:
    laughs = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in "bcdef":
        previous = chr(ord(level) - 1)
        laughs.append(f"{level}: &{level} [{', '.join([f'*{previous}'] * 9)}]")
    project = make_project(tmp_path / "aliases")
    config = project / ".marteau.yml"
    config.write_text("script: loadtest.py\ntest: Simple.test_simple\n" + "\n".join(laughs) + "\n")
    job = wait_job(alice, upload(alice, tar_of(project)).json()["id"])
    assert job["state"] == "failed", job
    assert ".marteau.yml:4: invalid YAML: aliases (*a) are not accepted" in job["exit_reason"]
    assert str(service.data_dir) not in job["exit_reason"]
    # an error quoting a 100 kB value is stored and shown capped
    project = make_project(tmp_path / "long")
    with open(project / ".marteau.yml", "a") as config:
        config.write("? " + "x" * 100_000 + "\n: 1\n")  # an unknown key, quoted in the error
    job = wait_job(alice, upload(alice, tar_of(project)).json()["id"])
    assert job["state"] == "failed" and len(job["exit_reason"]) <= 4096
    assert job["exit_reason"].endswith("characters in all]")
    assert len(alice.get("/api/jobs").content) < 2**20


def test_bad_email_in_the_project_fails_the_job(service: Service, alice, tmp_path) -> None:
    project = make_project(tmp_path / "mail", email="'not an address'")
    job = wait_job(alice, upload(alice, tar_of(project)).json()["id"])
    assert job["state"] == "failed"
    assert ".marteau.yml: email 'not an address': not an email address" in job["exit_reason"]


def test_a_public_service_mails_only_the_owner_or_allowed_domains() -> None:
    from marteau.service.mail import check_recipient
    from marteau.service.settings import Settings

    public = Settings(public=True, mail_domains="example.org, @ops.example.net")
    check_recipient(public, "alice@example.com", "Alice@example.com")
    check_recipient(public, "alice@example.com", "team@example.org")
    check_recipient(public, "alice@example.com", "pager@ops.example.net")
    with pytest.raises(MarteauError, match="mails only the job's owner"):
        check_recipient(public, "alice@example.com", "victim@elsewhere.org")
    check_recipient(Settings(), "alice@example.com", "victim@elsewhere.org")  # a team server
    with pytest.raises(MarteauError, match="not an email address"):
        check_recipient(Settings(), None, "a@b@c")


def test_credentials_in_a_git_url_are_refused(service: Service, alice) -> None:
    secret = "https://alice:s3cret-token@127.0.0.1:9/x.git"
    for path in ("/api/jobs", "/api/jobs/preview"):
        r = alice.post(path, json={"git_url": secret})
        assert r.status_code == 400, r.text
        assert "s3cret" not in r.text and "deploy key" in r.json()["detail"]
    page = alice.post(
        "/jobs", data={"git_url": secret, "csrf_token": alice.headers["X-CSRF-Token"]}
    )
    assert page.status_code == 400 and "credentials" in page.text
    assert all(
        "s3cret" not in (j["source"]["url"] or "") for j in alice.get("/api/jobs").json()["jobs"]
    )
    r = alice.post("/api/jobs", json={"git_url": "x" * 3000})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "git_url"


# -- logins ------------------------------------------------------------------------------


def test_logins_are_throttled_per_account_and_address(service: Service, admin) -> None:
    admin.post("/api/users", json={"email": "carol@example.org", "password": "carol-password"})

    def login(email: str, password: str) -> httpx.Response:
        return httpx.post(service.url + "/api/login", json={"email": email, "password": password})

    assert [login("carol@example.org", "wrong").status_code for _ in range(3)] == [401] * 3
    refused = login("carol@example.org", "carol-password")  # right, but too late
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    time.sleep(int(refused.headers["retry-after"]) + 0.5)
    assert login("carol@example.org", "carol-password").status_code == 200
    # the address: failures over many accounts, then even a right password is refused
    answers = [login(f"nobody{i}@example.org", "x").status_code for i in range(7)]
    assert answers[-1] == 429 and answers.count(401) <= 6, answers
    refused = login("carol@example.org", "carol-password")
    assert refused.status_code == 429
    time.sleep(int(refused.headers["retry-after"]) + 0.5)  # the other tests log in again
    assert login("carol@example.org", "carol-password").status_code == 200


# -- least privilege -------------------------------------------------------------------


def test_files_are_private_and_node_vars_for_admins(service: Service, admin, alice) -> None:
    assert stat.S_IMODE(service.data_dir.stat().st_mode) == 0o700
    for name in ("marteau.db", "marteau.db-wal"):
        if (service.data_dir / name).exists():
            assert stat.S_IMODE((service.data_dir / name).stat().st_mode) == 0o600, name
    r = admin.post("/api/nodes", json={"name": "n1", "vars": {"ansible_password": "hunter22"}})
    assert r.status_code == 201, r.text
    try:
        seen = {n["name"]: n["vars"] for n in admin.get("/api/nodes").json()["nodes"]}
        assert seen["n1"] == {"ansible_password": "hunter22"}
        assert all(n["vars"] == {} for n in alice.get("/api/nodes").json()["nodes"])
        assert "hunter22" not in alice.get("/nodes").text + alice.get("/").text
        assert "hunter22" in admin.get("/nodes").text
    finally:
        admin.delete("/api/nodes/n1")


def test_token_scopes_and_expiry(service: Service, admin, alice, tmp_path) -> None:
    assert alice.post("/api/tokens", json={"scope": "admin"}).status_code == 403
    with token_client(service, alice, "read") as reader:
        assert reader.get("/api/jobs").status_code == 200
        assert (
            reader.post("/api/jobs", json={"git_url": "https://127.0.0.1:9/x.git"}).status_code
            == 403
        )
        assert reader.post("/api/tokens", json={"scope": "read"}).status_code == 403
        job = wait_job(alice, upload(alice, tar_of(make_project(tmp_path / "p"))).json()["id"])
        assert job["state"] == "succeeded", job
        report = reader.get(f"/jobs/{job['id']}/report/index.html")
        assert report.status_code == 200 and "fake report" in report.text
    with token_client(service, alice, "submit") as submitter:
        assert submitter.post("/api/tokens", json={"scope": "read"}).status_code == 201
        assert submitter.post("/api/tokens", json={"scope": "admin"}).status_code == 403
    with token_client(service, admin, "submit") as admin_submitter:
        assert admin_submitter.get("/api/users").status_code == 403
        assert admin_submitter.post("/api/tokens", json={"scope": "admin"}).status_code == 403
    with token_client(service, admin, "admin") as admin_token:
        assert admin_token.get("/api/users").status_code == 200
    with token_client(service, alice, "read", expires_days=1 / 86400) as brief:
        wait_for(lambda: brief.get("/api/me").status_code == 401, timeout=30, what="expiry")
    assert (
        httpx.get(
            f"{service.url}/jobs/1/report/", headers={"Authorization": "Bearer mt_x"}
        ).status_code
        == 401
    )


# -- a lost worker -------------------------------------------------------------------------


def test_a_lost_workers_job_is_killed_with_its_process_group(base: Path, tmp_path: Path) -> None:
    """`marteau worker` is killed mid-job: its job's child dies with it, and the worker
    that reaps the job kills what was left in the group (here a `sleep` the job started)."""
    from marteau.service.db import Database, upgrade
    from marteau.service.models import Job
    from marteau.service.settings import Settings
    from marteau.service.worker import JobWorker

    data = tmp_path / "data"
    settings = Settings(data_dir=data, lease_ttl=1.0, poll_interval=0.05)
    db = Database(settings.db_url)
    upgrade(db)
    with db.write() as session:
        session.add(
            Job(
                source_kind="path",
                source_url=str(make_project(tmp_path / "p")),
                created=time.time(),
            )
        )
    script = "sleep 300 & echo $! > child.pid; wait"
    command = [*MARTEAU, "worker", "--data-dir", str(data), "--lease-ttl", "1"]
    command += ["--poll-interval", "0.05", "--run-command", f"sh -c '{script}' job"]
    worker = subprocess.Popen(command, env=service_env(tmp_path / "locks"), cwd=ROOT)
    child_pid = data / "jobs" / "1" / "child.pid"
    try:
        wait_for(lambda: child_pid.is_file() and child_pid.read_text().strip(), what="the job")
        child = int(child_pid.read_text())
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        os.kill(child, 0)  # the job's own process left in its group still runs
        reaper = JobWorker(settings, db)
        reaper.register()

        def reaped() -> bool:
            reaper.step()
            with db.read() as session:
                return session.get(Job, 1).state == "failed"

        wait_for(reaped, timeout=60, what="the job reaped")
        with db.read() as session:
            assert session.get(Job, 1).exit_reason.startswith("worker lost")

        def gone() -> bool:
            try:
                with open(f"/proc/{child}/stat") as f:
                    return f.read().rpartition(")")[2].split()[0] == "Z"
            except FileNotFoundError:
                return True

        wait_for(gone, timeout=30, what="the job's sleep killed")
        assert not (data / "jobs" / "1" / "report").exists()
    finally:
        if worker.poll() is None:
            worker.kill()
        db.dispose()


# -- the schema fuzzed --------------------------------------------------------------------


def test_the_openapi_schema_fuzzed(service: Service, admin, alice, base: Path) -> None:
    """Every operation of the schema with generated input, as alice (a submit token)
    and anonymously: no 5xx, no answer over 1 MB, nothing written outside the data
    folder. Operations that reach out (a preview's clone, host checks) are left out."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(service.url + "/openapi.json")
    before = sorted(os.listdir(base))
    token = alice.post("/api/tokens", json={"name": "fuzz"}).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    checked = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in ("/api/jobs/preview",) or "/hosts" in operation.path:
            continue

        @settings(
            max_examples=6,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def call(case) -> None:  # type: ignore[no-untyped-def]
            for headers in (auth, {}):
                response = case.call(base_url=service.url, headers=headers, timeout=30)
                assert response.status_code < 500, (case.method, case.path, response.text[:500])
                assert len(response.content) <= 2**20, (case.method, case.path)

        call()
        checked += 1
    assert checked >= 20
    assert sorted(os.listdir(base)) == before
    assert leftovers(service, base) == []
