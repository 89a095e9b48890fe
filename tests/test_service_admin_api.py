"""Nodes as host lists, who holds each node's lock, live per-cycle figures and user
administration, through the JSON API and the pages of a real `marteau serve`
(uvicorn on 127.0.0.1, worker processes running the stand-in for `marteau run`)."""

from __future__ import annotations

import json
import re
from contextlib import closing
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from tests.service_helpers import (  # noqa: E402
    ADMIN,
    ADMIN_PASSWORD,
    Service,
    make_project,
    tar_of,
    wait_for,
)

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, module_db_url: str):
    base = tmp_path_factory.mktemp("service")
    svc = Service(base / "data", base / "locks", workers=1, database_url=module_db_url)
    yield svc
    svc.stop()


def page_login(service: Service, email: str, password: str) -> tuple[httpx.Client, str]:
    """A cookie session through the login form, and the CSRF token of its forms."""
    browser = httpx.Client(base_url=service.url, timeout=30)
    token = CSRF.search(browser.get("/login").text).group(1)
    r = browser.post("/login", data={"email": email, "password": password, "csrf_token": token})
    assert r.status_code == 303, r.text
    return browser, CSRF.search(browser.get("/account").text).group(1)


def sse_events(service: Service, client: httpx.Client, path: str) -> list[tuple[str, str]]:
    """Every (event, data) of a server-sent event stream, until its `end` event."""
    events: list[tuple[str, str]] = []
    kind = ""
    with client.stream("GET", path, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((kind, line[6:]))
                if kind == "end":
                    break
    return events


# -- nodes -----------------------------------------------------------------------------


def test_nodes_added_as_a_host_list_all_or_none(service: Service, admin) -> None:
    r = admin.post(
        "/api/nodes/batch",
        json={"names": "h1.lab\nh2.lab, h3.lab", "pool": "lab", "vars": {"ansible_user": "b"}},
    )
    assert r.status_code == 201, r.text
    added = r.json()["nodes"]
    assert [n["name"] for n in added] == ["h1.lab", "h2.lab", "h3.lab"]
    assert {n["pool"] for n in added} == {"lab"}
    assert all(n["vars"] == {"ansible_user": "b"} for n in added)
    # one existing name: none added, and the error names it
    r = admin.post("/api/nodes/batch", json={"names": ["h4.lab", "h2.lab"], "pool": "lab"})
    assert r.status_code == 400 and "h2.lab" in r.json()["detail"]
    r = admin.post("/api/nodes/batch", json={"names": ["h5.lab", "h5.lab"], "pool": "lab"})
    assert r.status_code == 400 and "given twice: h5.lab" in r.json()["detail"]
    r = admin.post("/api/nodes/batch", json={"names": "h6.lab bad/name", "pool": "lab"})
    assert r.status_code == 400 and "bad/name" in r.json()["detail"]
    names = {n["name"] for n in admin.get("/api/nodes").json()["nodes"]}
    assert names.isdisjoint({"h4.lab", "h5.lab", "h6.lab"})

    browser, csrf = page_login(service, ADMIN, ADMIN_PASSWORD)
    with closing(browser):
        form = {"name": "w1.lab\nw2.lab,w3.lab", "pool": "web", "vars": "ansible_port=2222"}
        assert browser.post("/nodes", data=form).status_code == 403  # no CSRF token
        r = browser.post("/nodes", data={**form, "csrf_token": csrf})
        assert r.status_code == 303
        page = browser.get("/nodes").text
        for name in ("w1.lab", "w2.lab", "w3.lab"):
            assert re.search(rf"<td>{re.escape(name)}</td>\s*<td>web</td>", page), name
        r = browser.post("/nodes", data={**form, "csrf_token": csrf})
        assert r.status_code == 400 and "nodes exist already: w1.lab, w2.lab, w3.lab" in r.text
    for name in ("h1.lab", "h2.lab", "h3.lab", "w1.lab", "w2.lab", "w3.lab"):
        assert admin.delete(f"/api/nodes/{name}").status_code == 200


def test_lock_holder_on_the_node_and_unreachable_status(service: Service, admin) -> None:
    admin.post("/api/nodes/batch", json={"names": ["locked1", "down2"], "pool": "lab"})
    try:
        check = admin.post("/api/nodes/locked1/check").json()
        assert check["lock"]["state"] == "locked" and check["lock"]["service_job"] == 7
        assert admin.post("/api/nodes/down2/check").json()["check"] == "unreachable"
        nodes = {n["name"]: n for n in admin.get("/api/nodes").json()["nodes"]}
        on_node = nodes["locked1"]["lock"]["on_node"]
        assert (on_node["job"], on_node["owner"], on_node["service_job"]) == (
            "run-7",
            "ops@lab",
            7,
        )
        assert on_node["expires"] > on_node["checked"]
        assert nodes["locked1"]["status"] == "idle"  # no lease in the database
        assert (
            nodes["down2"]["status"] == "unreachable" and nodes["down2"]["lock"]["on_node"] is None
        )
        assert admin.post("/api/nodes/down2/disable").json()["status"] == "disabled"
        browser, _csrf = page_login(service, ADMIN, ADMIN_PASSWORD)
        with closing(browser):
            page = browser.get("/nodes").text
        row = re.search(r"<tr>\s*<td>locked1</td>.*?</tr>", page, re.S).group(0)
        assert 'href="/jobs/7"' in row and "of ops@lab" in row
        assert "Lock holder" in page
    finally:
        admin.delete("/api/nodes/locked1")
        admin.delete("/api/nodes/down2")


# -- live figures ----------------------------------------------------------------------


def test_live_figures_of_a_running_job_on_two_nodes(
    service: Service, admin, tmp_path: Path
) -> None:
    admin.post("/api/nodes/batch", json={"names": "duo1, duo2", "pool": "duo"})
    project = make_project(tmp_path / "shop", name="shop")
    # logged in before the job starts: a login's hash on a busy machine can outlast it
    browser, _csrf = page_login(service, ADMIN, ADMIN_PASSWORD)
    r = admin.post(
        "/api/jobs/upload",
        files={"archive": ("shop.tar.gz", tar_of(project), "application/gzip")},
        data={"label": "sleep=4", "pool": "duo", "nodes": "2"},
    )
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]

    def leased():  # type: ignore[no-untyped-def]
        nodes = {n["name"]: n for n in admin.get("/api/nodes").json()["nodes"]}
        return all(nodes[name]["lock"]["job"] == job_id for name in ("duo1", "duo2"))

    try:
        wait_for(leased, timeout=60, what="the job's leases on duo1 and duo2")
        with closing(browser):
            page = browser.get("/nodes").text
            row = re.search(r"<tr>\s*<td>duo1</td>.*?</tr>", page, re.S).group(0)
            assert f'href="/jobs/{job_id}">job #{job_id}</a> <small class="muted">(lease)' in row

            events = sse_events(service, admin, f"/api/jobs/{job_id}/figures/stream")
            assert events[-1] == ("end", "succeeded")
            tables = [json.loads(data) for kind, data in events if kind == "figures"]
            assert len(tables) >= 2  # the first at once, more as cycles come
            rows, totals = tables[-1]["rows"], tables[-1]["totals"]
            cycles = len(rows) // 2
            assert cycles >= 2
            assert [(row["cycle"], row["node"]) for row in rows] == [
                (cycle, node) for cycle in range(cycles) for node in ("duo1", "duo2")
            ]
            assert rows[1] == {
                "cycle": 0,
                "node": "duo2",
                "users": 1,
                "cycle_users": 1,
                "rps": 101.0,
                "ok": 10,
                "failures": 0,
                "errors": 1,
                "elapsed": rows[1]["elapsed"],
                "p50": 10.0,
                "p95": 21.0,
                "p99": 40.0,
            }
            assert totals[1] == {
                "cycle": 1,
                "nodes": 2,
                "users": 4,
                "cycle_users": 4,
                "rps": 401.0,
                "ok": 40,
                "failures": 0,
                "errors": 0,
            }
            # the live charts of the same event: cycle 0's P95 is its slower node's (duo2:
            # 21 ms, duo1 20 ms)
            charts = tables[-1]["charts"]
            assert sorted(charts) == ["live_percentiles", "live_rps", "live_users"]
            percentiles = {s["label"]: s["y"] for s in charts["live_percentiles"]["series"]}
            assert 21.0 in percentiles["P95"]
            assert [band[2] for band in charts["live_percentiles"]["bands"]][:2] == [
                "2 CUs",
                "4 CUs",
            ]
            job = admin.get(f"/api/jobs/{job_id}").json()
            assert job["state"] == "succeeded" and job["figures"] == rows
            snapshot = admin.get(f"/api/jobs/{job_id}/figures").json()
            assert (snapshot["figures"], snapshot["totals"]) == (rows, totals)
            assert admin.get("/api/jobs/999999/figures").status_code == 404
            page = browser.get(f"/jobs/{job_id}").text  # without JavaScript: the table itself
            assert "Figures per cycle" in page and "EventSource" not in page
            figures = re.search(r'<table id="figures".*?</table>', page, re.S).group(0)
            assert figures.count("<tr><td>") == len(rows)
            assert figures.count('<tr class="total">') == cycles
            assert "<td>all 2 nodes</td>" in figures
            assert '<td class="num bad">1</td>' in figures  # cycle 0 had an error per node
    finally:
        for name in ("duo1", "duo2"):
            admin.delete(f"/api/nodes/{name}")


# -- users -----------------------------------------------------------------------------


def test_user_admin_through_the_api(service: Service, admin) -> None:
    carol = admin.post("/api/users", json={"email": "carol@example.org", "password": "carol-pw-1"})
    assert carol.status_code == 201, carol.text
    carol_id = carol.json()["id"]
    me = next(u for u in admin.get("/api/users").json()["users"] if u["email"] == ADMIN)
    with closing(service.client("carol@example.org", "carol-pw-1")) as client:
        assert client.patch(f"/api/users/{me['id']}", json={"admin": False}).status_code == 403
        assert client.delete(f"/api/users/{me['id']}").status_code == 403
        r = admin.patch(f"/api/users/{carol_id}", json={"admin": True})
        assert r.status_code == 200 and r.json()["admin"] is True
        assert client.get("/api/users").status_code == 200  # an admin now
        r = admin.patch(f"/api/users/{carol_id}", json={"admin": False, "password": "carol-pw-2"})
        assert r.json()["admin"] is False
        assert client.get("/api/me").status_code == 401  # a reset ends the sessions
    with pytest.raises(AssertionError):
        service.client("carol@example.org", "carol-pw-1")
    with closing(service.client("carol@example.org", "carol-pw-2")) as client:
        assert client.get("/api/me").json()["admin"] is False
    r = admin.patch(f"/api/users/{carol_id}", json={"password": "short"})
    assert r.status_code == 400 and "8 characters" in r.json()["detail"]
    r = admin.patch(f"/api/users/{me['id']}", json={"admin": False})
    assert r.status_code == 400 and "yourself" in r.json()["detail"]
    assert admin.delete(f"/api/users/{me['id']}").status_code == 400
    with httpx.Client(base_url=service.url, timeout=10) as stranger:
        csrf = stranger.post("/api/login", json={"email": ADMIN, "password": ADMIN_PASSWORD})
        assert csrf.status_code == 200
        assert stranger.delete(f"/api/users/{carol_id}").status_code == 403  # no CSRF header
    assert admin.delete(f"/api/users/{carol_id}").json() == {"deleted": "carol@example.org"}
    assert admin.delete(f"/api/users/{carol_id}").status_code == 400
    emails = [u["email"] for u in admin.get("/api/users").json()["users"]]
    assert "carol@example.org" not in emails


def test_user_admin_pages(service: Service, admin, tmp_path: Path) -> None:
    browser, csrf = page_login(service, ADMIN, ADMIN_PASSWORD)
    with closing(browser):
        page = browser.get("/users")
        assert page.status_code == 200 and "<h1>Users</h1>" in page.text
        # a crafted link shows none of its own words, and the email escaped
        assert 'role="status"' not in browser.get("/users?done=Send+your+password").text
        crafted = browser.get("/users", params={"done": "added", "who": "<b>x</b>"}).text
        assert "Added &lt;b&gt;x&lt;/b&gt;." in crafted
        assert 'href="/users"' in page.text  # in the navigation, for admins
        new = {"email": "dan@example.org", "password": "dan-password", "admin": "1"}
        assert browser.post("/users", data=new).status_code == 403  # no CSRF token
        r = browser.post("/users", data={**new, "csrf_token": csrf}, follow_redirects=True)
        assert r.status_code == 200 and "Added dan@example.org." in r.text
        r = browser.post("/users", data={**new, "csrf_token": csrf})
        assert r.status_code == 400 and "a user with this email exists" in r.text
        users = {u["email"]: u for u in admin.get("/api/users").json()["users"]}
        dan = users["dan@example.org"]
        assert dan["admin"] is True
        row = re.search(rf'<tr id="user-{dan["id"]}">.*?</tr>', r.text, re.S).group(0)
        assert "Make a user" in row
        # dan queues a job, then loses his admin role, his password, and his account
        dan_client = service.client("dan@example.org", "dan-password")
        project = make_project(tmp_path / "p", name="p")
        job = dan_client.post(
            "/api/jobs/upload",
            files={"archive": ("p.tar.gz", tar_of(project), "application/gzip")},
        ).json()
        r = browser.post(
            f"/users/{dan['id']}/unadmin", data={"csrf_token": csrf}, follow_redirects=True
        )
        assert "dan@example.org is a user now." in r.text
        r = browser.post(
            f"/users/{dan['id']}/password",
            data={"csrf_token": csrf, "password": "dan-new-password"},
            follow_redirects=True,
        )
        assert "New password set for dan@example.org" in r.text
        assert dan_client.get("/api/me").status_code == 401
        dan_client.close()
        dan_browser, dan_csrf = page_login(service, "dan@example.org", "dan-new-password")
        with closing(dan_browser):
            assert dan_browser.get("/users").status_code == 403
            assert 'href="/users"' not in dan_browser.get("/").text
            r = dan_browser.post(f"/users/{dan['id']}/admin", data={"csrf_token": dan_csrf})
            assert r.status_code == 403
        me = users[ADMIN]
        r = browser.post(f"/users/{me['id']}/delete", data={"csrf_token": csrf})
        assert r.status_code == 400 and "cannot delete yourself" in r.text
        r = browser.post(
            f"/users/{dan['id']}/delete", data={"csrf_token": csrf}, follow_redirects=True
        )
        assert "Deleted dan@example.org." in r.text and "dan@example.org</td>" not in r.text
    kept = admin.get(f"/api/jobs/{job['id']}").json()
    assert kept["id"] == job["id"] and kept["owner"] is None  # the job stays, ownerless
