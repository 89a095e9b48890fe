"""The JSON API and the pages of `marteau serve`, against a real server (uvicorn on
127.0.0.1, worker processes; SQLite, then PostgreSQL) whose jobs run a stand-in for
`marteau run`."""

from __future__ import annotations

import http.client
import io
import json
import re
import subprocess
import tarfile
import threading
import time
import zipfile
from contextlib import closing
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from tests.service_helpers import (  # noqa: E402
    ADMIN,
    ADMIN_PASSWORD,
    MARTEAU,
    Service,
    make_project,
    service_env,
    tar_of,
    upload,
    wait_job,
)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, module_db_url: str):
    base = tmp_path_factory.mktemp("service")
    svc = Service(base / "data", base / "locks", database_url=module_db_url)
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def bob(service: Service, admin):
    admin.post("/api/users", json={"email": "bob@example.org", "password": "bob-password"})
    with closing(service.client("bob@example.org", "bob-password")) as client:
        yield client


# -- accounts ------------------------------------------------------------------


def test_login_sessions_csrf_and_api_tokens(service: Service, alice) -> None:
    with closing(service.client()) as anonymous:
        assert anonymous.get("/api/jobs").status_code == 401
        bad = anonymous.post("/api/login", json={"email": ADMIN, "password": "wrong"})
        assert bad.status_code == 401
    r = alice.get("/api/me")
    assert r.json()["email"] == "alice@example.org" and r.json()["admin"] is False
    # a cookie-authenticated unsafe request needs the CSRF header
    csrf = alice.headers.pop("X-CSRF-Token")
    try:
        assert alice.post("/api/tokens", json={"name": "ci"}).status_code == 403
    finally:
        alice.headers["X-CSRF-Token"] = csrf
    created = alice.post("/api/tokens", json={"name": "ci"})
    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith("mt_") and created.json()["prefix"] == token[:10]
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {token}"}) as api:
        assert api.get("/api/me").json()["email"] == "alice@example.org"
        # a token needs no CSRF header
        assert api.post("/api/tokens", json={"name": "other"}).status_code == 201
        listed = alice.get("/api/tokens").json()["tokens"]
        assert [t["name"] for t in listed] == ["ci", "other"] and "token" not in listed[0]
        assert alice.delete(f"/api/tokens/{created.json()['id']}").json()["revoked"]
        assert api.get("/api/me").status_code == 401
    # admin-only routes
    assert alice.get("/api/users").status_code == 403
    assert alice.post("/api/nodes", json={"name": "x1"}).status_code == 403


def test_openapi_schema_is_served(service: Service) -> None:
    schema = httpx.get(service.url + "/openapi.json").json()
    for path in (
        "/api/jobs",
        "/api/jobs/upload",
        "/api/jobs/{job_id}/cancel",
        "/api/nodes",
        "/api/tokens",
    ):
        assert path in schema["paths"], path


# -- nodes -----------------------------------------------------------------------


def test_nodes_add_disable_enable_remove(admin) -> None:
    assert [n["name"] for n in admin.get("/api/nodes").json()["nodes"]] == ["localhost"]
    r = admin.post(
        "/api/nodes", json={"name": "n1.lab", "pool": "lab", "vars": {"ansible_port": 2222}}
    )
    assert r.status_code == 201 and r.json()["status"] == "idle"
    assert admin.post("/api/nodes", json={"name": "n1.lab", "pool": "lab"}).status_code == 400
    assert admin.post("/api/nodes", json={"name": "bad name", "pool": "lab"}).status_code == 400
    assert admin.post("/api/nodes", json={"name": "n2", "pool": "no-dash"}).status_code == 400
    assert admin.post("/api/nodes/n1.lab/disable").json()["status"] == "disabled"
    assert admin.post("/api/nodes/n1.lab/enable").json()["status"] == "idle"
    assert admin.delete("/api/nodes/n1.lab").json() == {"removed": "n1.lab"}
    assert admin.delete("/api/nodes/n1.lab").status_code == 404


# -- jobs --------------------------------------------------------------------------


def test_uploaded_archive_runs_console_sse_and_report(service: Service, alice, tmp_path) -> None:
    project = make_project(tmp_path / "project", name="demo")
    r = upload(alice, tar_of(project), cycles="1:2", duration=5, label="sleep=0.3")
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["state"] == "queued" and job["owner"] == "alice@example.org"
    assert job["source"] == {
        "kind": "archive",
        "url": None,
        "ref": None,
        "archive": "project.tar.gz",
    }
    # the live console: SSE lines, then the end event with the final state
    lines, end = [], None
    with alice.stream("GET", f"/api/jobs/{job['id']}/console/stream", timeout=30) as stream:
        event = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "line":
                lines.append(line[6:])
            elif line.startswith("data: ") and event == "end":
                end = line[6:]
                break
    assert end == "succeeded"
    assert any("fake run of" in line and "-c 1:2 -D 5" in line for line in lines), lines
    done = alice.get(f"/api/jobs/{job['id']}").json()
    assert (
        done["state"] == "succeeded"
        and done["nodes"] == ["localhost"]
        and done["project"] == "demo"
    )
    assert done["report_url"].endswith(f"/jobs/{job['id']}/report/")
    text = alice.get(f"/api/jobs/{job['id']}/console")
    assert "job succeeded" in text.text and int(text.headers["x-console-offset"]) == len(
        text.content
    )
    tail = alice.get(f"/api/jobs/{job['id']}/console", params={"offset": len(text.content) - 10})
    assert tail.text == text.text[-10:] or tail.content == text.content[-10:]
    # the report, served from the data folder, with no way out of it
    report = alice.get(f"/jobs/{job['id']}/report/")
    assert report.status_code == 200 and "fake report" in report.text
    assert alice.get(f"/jobs/{job['id']}/report/data.txt").text == "figures\n"
    for escape in ("../console.log", "..%2fconsole.log", "%2e%2e/console.log", "/etc/passwd"):
        r = alice.get(f"/jobs/{job['id']}/report/{escape}")
        assert r.status_code in (404, 405) and "marteau serve" not in r.text, escape
    # the same, sent as is (no client-side normalisation of the path)
    cookie = "; ".join(f"{k}={v}" for k, v in alice.cookies.items())
    for raw in ("../console.log", "..%2fconsole.log", "sub/../../console.log"):
        connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=5)
        connection.request("GET", f"/jobs/{job['id']}/report/{raw}", headers={"Cookie": cookie})
        answer = connection.getresponse()
        assert answer.status == 404 and b"marteau serve" not in answer.read(), raw
        connection.close()


def _tar(members) -> bytes:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _member(name: str, data: bytes = b"x", link: str | None = None) -> tuple:
    info = tarfile.TarInfo(name)
    if link is not None:
        info.type, info.linkname = tarfile.SYMTYPE, link
        return info, None
    info.size = len(data)
    return info, data


def test_archives_that_escape_are_refused(alice) -> None:
    cases = {
        "dotdot": _tar([_member("p/.marteau.yml"), _member("p/../../evil")]),
        "absolute": _tar([_member("/tmp/evil")]),
        "symlink": _tar([_member("p/.marteau.yml"), _member("p/out", link="../../../etc")]),
        "abs-symlink": _tar([_member("p/out", link="/etc/passwd")]),
    }
    for what, data in cases.items():
        r = upload(alice, data)
        assert r.status_code == 400, (what, r.text)
        assert (
            "escape" in r.json()["detail"]
            or "absolute" in r.json()["detail"]
            or "leaves" in r.json()["detail"]
        )
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("../evil.txt", "x")
    assert upload(alice, zipped.getvalue(), name="p.zip").status_code == 400
    assert upload(alice, b"not an archive", name="p.tar.gz").status_code == 400
    assert upload(alice, b"x", name="p.rar").status_code == 400


def test_sources_urls_and_overrides_are_checked(alice, admin, tmp_path) -> None:
    for body in (
        {"git_url": "file:///etc"},
        {"git_url": "/srv/tests"},
        {"path": "/srv/tests"},
        {"git_url": "--upload-pack=evil"},
        {"git_url": "ftp://example.org/x.git"},
        {"git_url": "https://example.org/x.git", "cycles": "1:x"},
        {"git_url": "https://example.org/x.git", "script": "../x.py"},
        {"git_url": "https://example.org/x.git", "pool": "a b"},
        {"git_url": "https://example.org/x.git", "ref": "--orphan"},
        {"git_url": "https://example.org/x.git", "url": "javascript:alert(1)"},
    ):
        r = alice.post("/api/jobs", json=body)
        assert r.status_code == 400, (body, r.text)
    # a git URL that does not answer: the job fails fast, the reason in its console
    r = alice.post("/api/jobs", json={"git_url": "http://127.0.0.1:9/none.git"})
    assert r.status_code == 201
    failed = wait_job(alice, r.json()["id"])
    assert failed["state"] == "failed" and "git clone failed" in failed["exit_reason"]
    assert "Error:" in alice.get(f"/api/jobs/{failed['id']}/console").text


def test_texts_longer_than_their_column_fail_naming_the_field(admin, alice, tmp_path) -> None:
    """The same answer on SQLite (which would store them) and PostgreSQL (which would
    fail the statement): the API's models refuse them (422 naming the field), a
    project's file makes a job that fails as bad input."""
    long = "x" * 300
    answers = {
        "email": admin.post(
            "/api/users", json={"email": f"{long}@example.org", "password": "long-password"}
        ),
        "ref": alice.post("/api/jobs", json={"git_url": "https://example.org/x.git", "ref": long}),
    }
    for field, r in answers.items():
        assert r.status_code == 422, (field, r.text)
        error = r.json()["detail"][0]
        assert error["loc"][-1] == field and error["type"] == "string_too_long", r.text
    project = make_project(tmp_path / "project", name=long)
    job = wait_job(alice, upload(alice, tar_of(project)).json()["id"])
    assert job["state"] == "failed" and "key 'name': at most 255 characters" in job["exit_reason"]
    assert alice.get("/api/me").status_code == 200


def test_the_same_node_added_twice_at_once_is_a_conflict(tmp_path: Path, postgres_url: str):
    """PostgreSQL: a request whose unique row another transaction is writing gets a 409
    once that one commits (both passed the existence check; SQLite orders writers)."""
    from sqlalchemy import insert

    from marteau.service.db import Database
    from marteau.service.models import Node
    from tests.postgres import wait_until_answered_or_blocked

    service = Service(tmp_path / "data", tmp_path / "locks", workers=0, database_url=postgres_url)
    db = Database(postgres_url)
    answers: list[httpx.Response] = []
    try:
        with closing(service.client(ADMIN, ADMIN_PASSWORD)) as admin:
            with db.engine.connect() as other:
                row = {"name": "n1", "pool": "lab", "vars": {}, "enabled": True}
                other.execute(insert(Node).values(**row, status="unknown", created=time.time()))
                adding = threading.Thread(
                    target=lambda: answers.append(
                        admin.post("/api/nodes", json={"name": "n1", "pool": "lab"})
                    )
                )
                adding.start()
                wait_until_answered_or_blocked(
                    db.engine, lambda: answers, "the request to end or to wait for the other insert"
                )
                other.commit()
            adding.join(timeout=60)
            assert [r.status_code for r in answers] == [409], answers[0].text
            assert "at the same time" in answers[0].json()["detail"]
            names = [n["name"] for n in admin.get("/api/nodes").json()["nodes"]]
            assert names.count("n1") == 1
    finally:
        db.dispose()
        service.stop()


def test_admin_runs_a_file_git_url_at_a_ref(admin, tmp_path) -> None:
    repo = make_project(tmp_path / "repo", name="v1")
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "v1"], check=True)
    subprocess.run([*git, "tag", "v1"], check=True)
    (repo / ".marteau.yml").write_text("script: loadtest.py\ntest: Simple.test_simple\nname: v2\n")
    subprocess.run([*git, "commit", "-q", "-am", "v2"], check=True)
    r = admin.post("/api/jobs", json={"git_url": f"file://{repo}", "ref": "v1"})
    assert r.status_code == 201, r.text
    job = wait_job(admin, r.json()["id"])
    assert job["state"] == "succeeded" and job["project"] == "v1"
    assert job["source"] == {"kind": "git", "url": f"file://{repo}", "ref": "v1", "archive": None}
    r = admin.post("/api/jobs", json={"path": str(repo), "label": "exit=1"})
    job = wait_job(admin, r.json()["id"])
    assert job["state"] == "failed" and "the fake run failed with exit 1" in job["exit_reason"]
    assert job["exit_code"] == 1 and job["project"] == "v2"


def test_cancel_replay_delete_owner_or_admin(service: Service, alice, bob, admin, tmp_path) -> None:
    project = make_project(tmp_path / "project")
    job = upload(alice, tar_of(project), label="sleep=30").json()
    wait_job(alice, job["id"], states=("running",))
    assert bob.post(f"/api/jobs/{job['id']}/cancel").status_code == 403
    assert alice.delete(f"/api/jobs/{job['id']}").status_code == 409  # running: cancel first
    t0 = time.monotonic()
    assert alice.post(f"/api/jobs/{job['id']}/cancel").status_code == 200
    cancelled = wait_job(alice, job["id"], timeout=30)
    assert cancelled["state"] == "cancelled" and time.monotonic() - t0 < 30
    nodes = {n["name"]: n for n in alice.get("/api/nodes").json()["nodes"]}
    assert nodes["localhost"]["status"] == "idle"
    assert alice.post(f"/api/jobs/{job['id']}/cancel").status_code == 409
    # replay: a new job with the same source and parameters, owned by who replays it
    assert bob.post(f"/api/jobs/{job['id']}/replay").status_code == 403
    r = admin.post(f"/api/jobs/{job['id']}/replay")
    assert r.status_code == 201
    replay = r.json()
    assert replay["replay_of"] == job["id"] and replay["overrides"] == {"label": "sleep=30"}
    assert replay["owner"] == ADMIN and replay["source"]["archive"] == "project.tar.gz"
    wait_job(admin, replay["id"], states=("running",))
    assert admin.post(f"/api/jobs/{replay['id']}/cancel").status_code == 200
    wait_job(admin, replay["id"])
    # delete: the row and the files
    assert bob.delete(f"/api/jobs/{job['id']}").status_code == 403
    assert alice.delete(f"/api/jobs/{job['id']}").json() == {"deleted": job["id"]}
    assert alice.get(f"/api/jobs/{job['id']}").status_code == 404
    assert not (service.data_dir / "jobs" / str(job["id"])).exists()
    assert admin.delete(f"/api/jobs/{replay['id']}").status_code == 200
    listed = alice.get("/api/jobs", params={"state": "cancelled"}).json()
    assert job["id"] not in [j["id"] for j in listed["jobs"]]


# -- pages -------------------------------------------------------------------------


def test_pages_login_dashboard_new_job_and_csrf(service: Service, alice, tmp_path) -> None:
    with httpx.Client(base_url=service.url, timeout=10) as browser:
        r = browser.get("/")
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        page = browser.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        assert (
            browser.post(
                "/login", data={"email": "alice@example.org", "password": "alice-password"}
            ).status_code
            == 403
        )  # no CSRF token
        r = browser.post(
            "/login",
            data={"email": "alice@example.org", "password": "nope", "csrf_token": token},
        )
        assert r.status_code == 401 and "Wrong email or password" in r.text
        token = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)
        r = browser.post(
            "/login",
            data={"email": "alice@example.org", "password": "alice-password", "csrf_token": token},
        )
        assert r.status_code == 303 and r.headers["location"] == "/"
        home = browser.get("/")
        assert home.status_code == 200 and "Dashboard" in home.text and "localhost" in home.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', home.text).group(1)
        form = browser.get("/jobs/new")
        assert 'enctype="multipart/form-data"' in form.text
        project = make_project(tmp_path / "project")
        fields = {"csrf_token": csrf, "label": "sleep=0.05", "cycles": "2"}
        files = {"archive": ("p.tar.gz", tar_of(project), "application/gzip")}
        assert (
            browser.post("/jobs", data={**fields, "csrf_token": "forged"}, files=files).status_code
            == 403
        )
        r = browser.post("/jobs", data=fields, files=files)
        assert r.status_code == 303
        job_id = int(r.headers["location"].rsplit("/", 1)[1])
        page = browser.get(r.headers["location"])
        assert f"Job #{job_id}" in page.text and 'id="console"' in page.text
        wait_job(alice, job_id)
        page = browser.get(f"/jobs/{job_id}")
        assert "succeeded" in page.text and f'href="/jobs/{job_id}/report/"' in page.text
        assert "EventSource" not in page.text  # finished: no live script
        bad = browser.post("/jobs", data={"csrf_token": csrf, "git_url": "file:///etc"})
        assert bad.status_code == 400 and "only http(s), ssh and git URLs" in bad.text
        assert browser.post(f"/jobs/{job_id}/delete", data={}).status_code == 403
        r = browser.post(f"/jobs/{job_id}/delete", data={"csrf_token": csrf})
        assert r.status_code == 303 and browser.get(f"/jobs/{job_id}").status_code == 404
        # nodes: admins only
        assert browser.post("/nodes", data={"csrf_token": csrf, "name": "x"}).status_code == 403
        assert "Add nodes" not in browser.get("/nodes").text
        r = browser.post("/logout", data={"csrf_token": csrf})
        assert r.status_code == 303 and browser.get("/").status_code == 303


def test_admin_manages_nodes_from_the_page(service: Service) -> None:
    with httpx.Client(base_url=service.url, timeout=10) as browser:
        page = browser.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        browser.post(
            "/login", data={"email": ADMIN, "password": ADMIN_PASSWORD, "csrf_token": token}
        )
        page = browser.get("/nodes")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        r = browser.post(
            "/nodes",
            data={
                "csrf_token": csrf,
                "name": "web1",
                "pool": "web",
                "vars": "ansible_host=127.0.0.9",
            },
        )
        assert r.status_code == 303
        page = browser.get("/nodes").text
        assert "web1" in page and "ansible_host=127.0.0.9" in page
        assert browser.post("/nodes/web1/disable", data={"csrf_token": csrf}).status_code == 303
        assert "node-disabled" in browser.get("/nodes").text
        assert browser.post("/nodes/web1/remove", data={"csrf_token": csrf}).status_code == 303
        assert "web1" not in browser.get("/nodes").text


# -- restart -------------------------------------------------------------------------


def test_restart_keeps_queued_jobs(tmp_path: Path, db_url: str) -> None:
    project = make_project(tmp_path / "project")
    first = Service(tmp_path / "data", tmp_path / "locks", workers=0, database_url=db_url)
    try:
        with closing(first.client(ADMIN, ADMIN_PASSWORD)) as admin:
            ids = [upload(admin, tar_of(project)).json()["id"] for _ in range(3)]
            assert {admin.get(f"/api/jobs/{i}").json()["state"] for i in ids} == {"queued"}
    finally:
        first.stop()
    second = Service(tmp_path / "data", tmp_path / "locks", workers=2, database_url=db_url)
    try:
        with closing(second.client(ADMIN, ADMIN_PASSWORD)) as admin:
            for job_id in ids:
                assert wait_job(admin, job_id)["state"] == "succeeded"
    finally:
        second.stop()
    log = second.log.read_text()
    assert "schema" not in log  # the second start found the schema up to date


# -- marteau submit --------------------------------------------------------------------


def test_submit_a_directory_and_wait(service: Service, alice, tmp_path) -> None:
    token = alice.post("/api/tokens", json={"name": "ci"}).json()["token"]
    project = make_project(tmp_path / "shop")
    (project / ".git").mkdir()
    (project / ".git" / "big").write_bytes(b"x" * 1000)
    env = service_env(tmp_path / "unused", MARTEAU_TOKEN=token)
    submit = [*MARTEAU, "submit", "--server", service.url]

    def wait(*options: str) -> subprocess.CompletedProcess[str]:
        command = [*submit, str(project), "--wait", *options]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    ok = wait("-l", "sleep=0.05", "-c", "3")
    assert ok.returncode == 0, ok.stderr
    lines = ok.stdout.splitlines()
    assert re.fullmatch(rf"{service.url}/jobs/\d+", lines[0])
    assert any("fake run of" in line and "-c 3" in line for line in lines)
    assert re.search(r"job \d+ succeeded", ok.stdout) and "Report: " in ok.stdout
    job_id = int(lines[0].rsplit("/", 1)[1])
    source = service.data_dir / "jobs" / str(job_id) / "source" / "shop"
    assert (source / ".marteau.yml").is_file() and not (source / ".git").exists()
    failed = wait("-l", "exit=1")
    assert failed.returncode == 1 and "the fake run failed with exit 1" in failed.stdout
    errors = wait("-l", "exit=255")  # the job's own status, as `marteau run` gave it
    assert errors.returncode == 255, errors.stdout + errors.stderr
    assert re.search(r"job \d+ failed: finished with errors", errors.stdout)
    refused = subprocess.run(
        [*submit, "file:///srv/project"], env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2 and "only http(s), ssh and git URLs" in refused.stderr
    no_wait = subprocess.run(
        [*submit, "https://127.0.0.1:9/none.git"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert no_wait.returncode == 0 and no_wait.stdout.startswith(service.url + "/jobs/")
    # --json: the console on stderr, one object on stdout, in success and in refusal
    as_json = wait("-l", "exit=1", "--json")
    assert as_json.returncode == 1, as_json.stderr
    ended = json.loads(as_json.stdout)
    assert ended["state"] == "failed" and ended["exit_status"] == 1, ended
    assert "the fake run failed with exit 1" in ended["exit_reason"]
    assert "fake run of" in as_json.stderr
    refused = subprocess.run(
        [*submit, "file:///srv/project", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and json.loads(refused.stdout)["exit_status"] == 2
    assert "only http(s), ssh and git URLs" in json.loads(refused.stdout)["error"]


def test_preview_marteau_yml_from_git_archive_and_form(
    service: Service, admin, alice, tmp_path
) -> None:
    repo = make_project(tmp_path / "repo", name="v1", cycles="'2:4'", duration=7)
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "v1"], check=True)
    first = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    (repo / ".marteau.yml").write_text("script: loadtest.py\ntest: Simple.test_simple\nname: v2\n")
    subprocess.run([*git, "commit", "-q", "-am", "v2"], check=True)
    r = admin.post("/api/jobs/preview", json={"git_url": f"file://{repo}"})
    assert r.status_code == 200, r.text
    assert r.json()["project"]["name"] == "v2"
    # no Simple.conf, hosts not enforced: no target to show, and no error for it
    assert (r.json()["project"]["target"], r.json()["target"]) == (None, None)
    r = admin.post("/api/jobs/preview", json={"git_url": f"file://{repo}", "ref": first})
    project = r.json()["project"]
    assert (project["name"], project["cycles"], project["duration"]) == ("v1", "2:4", 7)
    assert project["commit"] == first
    bad = admin.post("/api/jobs/preview", json={"git_url": f"file://{repo}", "ref": "nope"})
    assert bad.status_code == 400 and "git clone failed" in bad.json()["detail"]
    assert alice.post("/api/jobs/preview", json={"git_url": f"file://{repo}"}).status_code == 400
    broken = make_project(tmp_path / "broken")
    (broken / ".marteau.yml").write_text(
        "script: loadtest.py\ntest: Simple.test_simple\ncycles: x\n"
    )
    r = alice.post(
        "/api/jobs/preview",
        files={"archive": ("b.tar.gz", tar_of(broken), "application/gzip")},
        data={},
    )
    assert r.status_code == 422  # the JSON route does not take uploads
    # the form: preview an archive without queuing it
    with httpx.Client(base_url=service.url, timeout=30) as browser:
        page = browser.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        browser.post(
            "/login", data={"email": ADMIN, "password": ADMIN_PASSWORD, "csrf_token": token}
        )
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/jobs/new").text).group(
            1
        )
        before = admin.get("/api/jobs").json()["total"]
        shown = browser.post(
            "/jobs/preview",
            data={"csrf_token": csrf},
            files={"archive": ("r.tar.gz", tar_of(repo), "application/gzip")},
        )
        assert shown.status_code == 200 and "Choose the archive again" in shown.text
        assert "<dt>name</dt><dd><code>v2</code>" in shown.text
        failed = browser.post(
            "/jobs/preview",
            data={"csrf_token": csrf},
            files={"archive": ("b.tar.gz", tar_of(broken), "application/gzip")},
        )
        assert failed.status_code == 400 and "cycles" in failed.text
        assert admin.get("/api/jobs").json()["total"] == before


def test_node_check_and_force_unlock(service: Service, admin, alice) -> None:
    admin.post("/api/nodes", json={"name": "down1", "pool": "lab", "vars": {"ansible_port": 22}})
    try:
        r = admin.post("/api/nodes/localhost/check")
        assert r.status_code == 200, r.text
        assert r.json()["check"] == "reachable" and "ansible_connection=local" in r.json()["output"]
        down = admin.post("/api/nodes/down1/check").json()
        assert down["check"] == "unreachable" and down["exit_code"] == 1
        nodes = {n["name"]: n for n in admin.get("/api/nodes").json()["nodes"]}
        assert nodes["down1"]["check"] == "unreachable" and nodes["down1"]["last_check"]
        unlocked = admin.post("/api/nodes/localhost/unlock").json()
        assert unlocked["exit_code"] == 0 and "unlock --force" in unlocked["output"]
        assert alice.post("/api/nodes/localhost/check").status_code == 403
        assert admin.post("/api/nodes/nothere/check").status_code == 404
        with httpx.Client(base_url=service.url, timeout=30) as browser:
            page = browser.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            browser.post(
                "/login", data={"email": ADMIN, "password": ADMIN_PASSWORD, "csrf_token": token}
            )
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/nodes").text)
            shown = browser.post("/nodes/down1/check", data={"csrf_token": csrf.group(1)})
            assert shown.status_code == 200 and "check down1: exit 1" in shown.text
            assert "down1  unreachable" in shown.text
    finally:
        admin.delete("/api/nodes/down1")
