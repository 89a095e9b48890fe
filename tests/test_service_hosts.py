"""Verified hosts: every way of proving ownership against real servers on 127.0.0.1 (HTTP
servers serving or not serving the token, a DNS server answering TXT queries), expiry
and re-check, hosts kept per user, the API and the page on a real uvicorn, and public
mode refusing a job whose target is not its owner's proven host."""

from __future__ import annotations

import re
import shlex
import socket
import struct
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("dns.message")

from sqlalchemy import select, update  # noqa: E402

from marteau.errors import MarteauError  # noqa: E402
from marteau.service import accounts, host_proofs, hosts  # noqa: E402
from marteau.service.db import Database, upgrade  # noqa: E402
from marteau.service.job_runs import run_arguments  # noqa: E402
from marteau.service.models import Job, Node, User, VerifiedHost  # noqa: E402
from marteau.service.scheduler import ISOLATED  # noqa: E402
from marteau.service.settings import Settings, load_settings  # noqa: E402
from marteau.service.worker import console_path  # noqa: E402
from tests.servers import (  # noqa: E402
    CountingListener,
    DnsServer,
    HangingServer,
    LocalServer,
    free_port,
    ok,
)
from tests.service_helpers import (  # noqa: E402
    FAKE_RUN,
    make_project,
    run_queue,
    tar_of,
)
from tests.support.live_app import PASSWORD, Uvicorn  # noqa: E402


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A team server verifying hosts (it tells why a check failed); a test of public mode
    sets `public`, where this machine's 127.0.0.0/8 counts as public."""
    return Settings(
        data_dir=tmp_path / "data",
        verify_hosts=True,
        verify_allow_networks="127.0.0.0/8",
        run_command=shlex.split(FAKE_RUN),
        poll_interval=0.05,
        lease_ttl=10,
        kill_grace=2,
        verify_interval=0,  # the tests check a host again at once (its own test below)
    )


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.db_url)
    upgrade(database, default_node=False)  # public mode: no local node
    with database.write() as session:
        # public mode gives jobs only to nodes whose last check found jobs isolated
        session.add(Node(name="n1", pool="marteau", vars={}, created=time.time(), status=ISOLATED))
    yield database
    database.dispose()


def make_user(db: Database, email: str, admin: bool = False) -> User:
    with db.write() as session:
        return accounts.create_user(session, email, PASSWORD, admin)


@pytest.fixture
def alice(db: Database) -> User:
    return make_user(db, "alice@example.org")


@pytest.fixture
def bob(db: Database) -> User:
    return make_user(db, "bob@example.org")


def serve_token(server: LocalServer, path: str, body: str) -> None:
    server.routes[path] = lambda request: ok(body)


# -- host names --------------------------------------------------------------------


def test_host_names_are_checked_and_normalised() -> None:
    assert hosts.parse_host(" App.Example.ORG. ") == ("app.example.org", None)
    assert hosts.parse_host("app.example.org:8080") == ("app.example.org", 8080)
    assert hosts.parse_host("127.0.0.1:81") == ("127.0.0.1", 81)
    assert hosts.parse_host("[::1]:8080") == ("::1", 8080)
    assert hosts.parse_host("0:0::1") == ("::1", None)
    assert hosts.parse_host("bücher.example") == ("xn--bcher-kva.example", None)
    assert hosts.host_label("::1", 8080) == "[::1]:8080"
    for bad, why in (
        ("http://app.example.org", "without a scheme"),
        ("app.example.org/path", "without a scheme, a path"),
        ("app.example.org:0", "port must be a number"),
        ("app.example.org:http", "port must be a number"),
        ("-bad-.example", "expected a DNS name"),
        ("1.2.3", "not a valid IP address"),
        ("", "give a host name"),
    ):
        with pytest.raises(MarteauError, match=why) as caught:
            hosts.parse_host(bad)
        assert str(caught.value).startswith("host"), caught.value
    with pytest.raises(MarteauError, match="dns_server"):
        hosts.parse_host("ns1:99999", "dns_server")


# -- each way of proving -----------------------------------------------------------


def test_token_at_well_known_path_proves_the_host(
    db: Database, settings: Settings, alice: User, server: LocalServer
) -> None:
    row = hosts.add_host(db, alice.id, f"127.0.0.1:{server.port}")
    assert len(row.token) >= 32  # 24 random bytes, URL-safe: 192 bits
    serve_token(server, f"/.well-known/marteau/{row.token}", row.token + "\n")
    checked = hosts.check_host(db, settings, row)
    assert (checked.method, checked.last_error) == ("well-known", None)
    assert hosts.status(checked, settings) == "verified"
    assert checked.verified is not None and checked.last_check == checked.verified
    paths = {request.path for request in server.requests}
    assert f"/.well-known/marteau/{row.token}" in paths
    agent = server.requests[0].header("User-Agent") or ""
    assert agent.startswith("Marteau/")


def test_token_at_root_path_proves_the_host(
    db: Database, settings: Settings, alice: User, server: LocalServer
) -> None:
    row = hosts.add_host(db, alice.id, f"127.0.0.1:{server.port}")
    serve_token(server, f"/{row.token}", row.token)
    checked = hosts.check_host(db, settings, row)
    assert (checked.method, checked.last_error) == ("root", None)


def test_a_server_without_the_token_proves_nothing(
    db: Database, settings: Settings, alice: User, server: LocalServer
) -> None:
    row = hosts.add_host(db, alice.id, f"127.0.0.1:{server.port}")
    checked = hosts.check_host(db, settings, row)  # nothing served: 404 everywhere
    assert checked.verified is None and checked.method is None
    assert hosts.status(checked, settings) == "failed"
    assert f"http://127.0.0.1:{server.port}/{row.token}: HTTP 404" in checked.last_error
    serve_token(server, f"/.well-known/marteau/{row.token}", "not the token")
    serve_token(server, f"/{row.token}", row.token + "x" * 10000)  # over the read cap
    checked = hosts.check_host(db, settings, row)
    assert checked.verified is None
    assert "the body is not the token" in checked.last_error
    assert "DNS: an IP address has no TXT record" in checked.last_error


def test_a_host_is_checked_at_most_once_per_verify_interval(
    db: Database, settings: Settings, alice: User, server: LocalServer
) -> None:
    settings.verify_interval = 3600
    row = hosts.add_host(db, alice.id, f"127.0.0.1:{server.port}")
    target = hosts.Target(row.host, row.port)
    with Uvicorn(settings, db) as web, closing(web.client(alice.email)) as api:
        failed = api.post(f"/api/hosts/{row.id}/verify")
        assert failed.status_code == 200 and failed.json()["status"] == "failed"
        asked = len(server.requests)
        assert asked >= 2  # the well-known and root paths, over http
        serve_token(server, f"/.well-known/marteau/{row.token}", row.token)

        again = api.post(f"/api/hosts/{row.id}/verify")
        assert again.status_code == 429
        assert re.fullmatch(
            rf"host 127\.0\.0\.1:{server.port} was checked \d+ s ago: check it again in \d+ s",
            again.json()["detail"],
        )
        assert 3500 <= int(again.headers["Retry-After"]) <= 3600
        csrf = api.headers["X-CSRF-Token"]  # a form's token is the login session's
        page = api.post(f"/hosts/{row.id}/verify", data={"csrf_token": csrf})
        assert page.status_code == 429 and "check it again in" in page.text
        with pytest.raises(MarteauError, match=r"HTTP 404.*\(host .* was checked \d+ s ago"):
            hosts.ensure_fresh(db, settings, alice.id, target)  # a job: the last outcome
        assert len(server.requests) == asked  # none of these reached the host

        with db.write() as session:  # the interval is over
            session.execute(update(VerifiedHost).values(last_check=time.time() - 3601))
        assert hosts.ensure_fresh(db, settings, alice.id, target).method == hosts.WELL_KNOWN


def test_redirects_are_followed_on_the_same_host_only(
    db: Database, settings: Settings, alice: User, server: LocalServer
) -> None:
    row = hosts.add_host(db, alice.id, f"127.0.0.1:{server.port}")
    with LocalServer() as elsewhere:
        serve_token(elsewhere, f"/{row.token}", row.token)
        # to another host name (the same machine, so a followed redirect would show)
        away = f"http://localhost:{elsewhere.port}/{row.token}"
        server.routes[f"/{row.token}"] = lambda request: (302, [("Location", away)], b"")
        checked = hosts.check_host(db, settings, row)
        assert checked.verified is None and "redirected to another host" in checked.last_error
        assert elsewhere.requests == []
    server.routes[f"/.well-known/marteau/{row.token}"] = lambda request: (
        301,
        [("Location", "/proof")],
        b"",
    )
    serve_token(server, "/proof", row.token)
    checked = hosts.check_host(db, settings, row)
    assert checked.method == "well-known"


def test_dns_txt_record_proves_the_host(db: Database, settings: Settings, alice: User) -> None:
    # a closed port: the HTTP ways fail at once, only DNS can prove it
    row = hosts.add_host(db, alice.id, f"localhost:{free_port()}")
    record, value = hosts.dns_record("localhost", row.token)
    assert (record, value) == ("_marteau.localhost", f"marteau-verification={row.token}")
    with DnsServer() as dns_server:
        settings.dns_server = f"127.0.0.1:{dns_server.port}"
        checked = hosts.check_host(db, settings, row)
        assert checked.last_error == "localhost: the name has no address"
        dns_server.addresses["localhost"] = ["127.0.0.1"]
        checked = hosts.check_host(db, settings, row)
        assert "DNS: no TXT record _marteau.localhost" in checked.last_error
        assert checked.verified is None
        dns_server.records[record] = ['"v=spf1 -all"', '"marteau-verification=wrong"']
        checked = hosts.check_host(db, settings, row)
        assert "do not hold marteau-verification=<token>" in checked.last_error
        dns_server.records[record] = ['"v=spf1 -all"', f'"{value}"']
        checked = hosts.check_host(db, settings, row)
        assert (checked.method, checked.last_error) == ("dns", None)
        assert checked.addresses == ["127.0.0.1"]
        assert dns_server.queries.count("_marteau.localhost") == 3
    proofs = {p["method"]: p for p in hosts.host_json(checked, settings)["proofs"]}
    assert proofs["dns"] == {"method": "dns", "name": record, "type": "TXT", "value": value}
    ip_row = hosts.add_host(db, alice.id, "127.0.0.1")
    assert "dns" not in {p["method"] for p in hosts.host_json(ip_row, settings)["proofs"]}


# -- expiry, per user ----------------------------------------------------------------


def age(db: Database, row: VerifiedHost, days: float) -> None:
    with db.write() as session:
        session.execute(
            update(VerifiedHost)
            .where(VerifiedHost.id == row.id)
            .values(verified=time.time() - days * 86400)
        )


def test_a_stale_proof_is_checked_again_before_use(
    db: Database, settings: Settings, alice: User, server: LocalServer
) -> None:
    settings.verification_days = 30
    row = hosts.add_host(db, alice.id, f"127.0.0.1:{server.port}")
    serve_token(server, f"/{row.token}", row.token)
    target = hosts.parse_target(f"http://127.0.0.1:{server.port}/app", "url")
    assert hosts.ensure_fresh(db, settings, alice.id, target).method == "root"
    seen = len(server.requests)
    age(db, row, 29)  # still fresh: no request
    hosts.ensure_fresh(db, settings, alice.id, target)
    assert len(server.requests) == seen
    age(db, row, 31)  # stale, still served: proven again
    assert hosts.status(hosts.get_host(db, alice.id, row.id), settings) == "expired"
    renewed = hosts.ensure_fresh(db, settings, alice.id, target)
    assert len(server.requests) > seen
    assert time.time() - renewed.verified < 60 and hosts.status(renewed, settings) == "verified"
    age(db, row, 31)  # stale, and the token is gone: refused, with the reason
    del server.routes[f"/{row.token}"]
    with pytest.raises(MarteauError) as caught:
        hosts.ensure_fresh(db, settings, alice.id, target, alice.email)
    message = str(caught.value)
    assert message.startswith(f"host 127.0.0.1:{server.port}: not a verified host of alice@")
    assert "HTTP 404" in message
    assert hosts.fresh_labels(db, settings, alice.id) == []
    # a host registered without a port covers every port; one with a port only that one
    other = hosts.parse_target(f"http://127.0.0.1:{free_port()}/", "url")
    with pytest.raises(MarteauError, match="not a verified host"):
        hosts.ensure_fresh(db, settings, alice.id, other)


def test_one_users_proof_is_not_anothers(
    db: Database, settings: Settings, alice: User, bob: User, server: LocalServer
) -> None:
    row = hosts.add_host(db, alice.id, f"127.0.0.1:{server.port}")
    serve_token(server, f"/{row.token}", row.token)
    hosts.check_host(db, settings, row)
    target = hosts.parse_target(f"http://127.0.0.1:{server.port}/", "url")
    assert hosts.ensure_fresh(db, settings, alice.id, target).user_id == alice.id
    with pytest.raises(MarteauError, match="not a verified host of bob@example.org"):
        hosts.ensure_fresh(db, settings, bob.id, target, bob.email)
    assert hosts.get_host(db, bob.id, row.id) is None
    assert not hosts.remove_host(db, bob.id, row.id)
    bobs = hosts.add_host(db, bob.id, f"127.0.0.1:{server.port}")
    assert bobs.token != row.token
    with pytest.raises(MarteauError, match="the proof of ownership failed"):
        hosts.ensure_fresh(db, settings, bob.id, target, bob.email)  # alice's token is served
    serve_token(server, f"/.well-known/marteau/{bobs.token}", bobs.token)
    assert hosts.ensure_fresh(db, settings, bob.id, target).user_id == bob.id
    with pytest.raises(MarteauError, match="already in your list"):
        hosts.add_host(db, bob.id, f"127.0.0.1:{server.port}")


def test_allowed_networks_are_checked_when_the_settings_load(tmp_path: Path) -> None:
    loaded = load_settings(data_dir=tmp_path, verify_allow_networks=" 10.9.0.0/16, fd00::/8 ")
    assert [str(net) for net in loaded.allowed_networks] == ["10.9.0.0/16", "fd00::/8"]
    assert host_proofs.not_public("10.9.1.2", loaded) is None
    assert host_proofs.not_public("10.8.1.2", loaded) == "10.8.1.2: a private address"
    with pytest.raises(MarteauError, match="setting verify_allow_networks: .*10.0.0.0/33"):
        load_settings(data_dir=tmp_path, verify_allow_networks="10.0.0.0/33")


class ResettingServer(CountingListener):
    """Accepts each connection and resets it at once (RST, no answer)."""

    def answer(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_public_checks_reach_public_addresses_only_and_all_fail_alike(
    db: Database,
    settings: Settings,
    alice: User,
    server: LocalServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 13: in public mode a check is no way into the service's network and no
    port scanner. A loopback, private, link-local... address is refused before any
    connection (a name is checked once resolved, and a DNS proof cannot make up for
    it), with the text a closed port, a reset, a silent server, a 404 or a wrong token
    get; the reasons go to the log only."""
    settings.public = True
    settings.verify_allow_networks = ""  # 127.0.0.0/8 is loopback again
    caplog.set_level("WARNING", logger="marteau.service.hosts")

    def check(label: str) -> VerifiedHost:
        return hosts.check_host(db, settings, hosts.add_host(db, alice.id, label))

    own = hosts.add_host(db, alice.id, f"127.0.0.1:{server.port}")
    serve_token(server, f"/.well-known/marteau/{own.token}", own.token)
    serve_token(server, f"/{own.token}", own.token)
    outcomes = {"127.0.0.1 serving the token": hosts.check_host(db, settings, own)}
    assert server.requests == []  # not even asked
    with DnsServer() as dns_server:
        settings.dns_server = f"127.0.0.1:{dns_server.port}"
        named = hosts.add_host(db, alice.id, f"app.test:{server.port}")
        dns_server.addresses["app.test"] = ["127.0.0.1"]
        dns_server.records["_marteau.app.test"] = [f'"marteau-verification={named.token}"']
        serve_token(server, f"/{named.token}", named.token)
        outcomes["a name of 127.0.0.1 with its TXT proof"] = hosts.check_host(db, settings, named)
        settings.dns_server = ""
    assert server.requests == []
    for label in (
        f"10.1.2.3:{server.port}",
        "169.254.169.254",
        f"[::1]:{server.port}",
        "[::ffff:127.0.0.1]",
        "0.0.0.0",
        "224.0.0.1",
        "100.64.0.1",
        "192.168.1.1",
    ):
        outcomes[label] = check(label)
    refused = {r.getMessage() for r in caplog.records}
    for reason in (
        "127.0.0.1: a loopback",
        "10.1.2.3: a private address",
        "169.254.169.254: a private, link-local address",
        "::1: a loopback",
        "224.0.0.1: a multicast address",
        "100.64.0.1: a non-global address",
    ):
        assert any(reason in message for message in refused), (reason, refused)

    settings.verify_allow_networks = "127.0.0.0/8"  # now reachable: every other failure
    with LocalServer() as empty, ResettingServer("127.0.0.1") as reset, HangingServer() as silent:
        outcomes["a closed port"] = check(f"127.0.0.1:{free_port()}")
        outcomes["HTTP 404"] = check(f"127.0.0.1:{empty.port}")
        wrong = hosts.add_host(db, alice.id, f"127.0.0.2:{server.port}")
        with LocalServer(host="127.0.0.2", port=server.port) as other:
            serve_token(other, f"/.well-known/marteau/{wrong.token}", own.token)
            serve_token(other, f"/{wrong.token}", "not the token")
            outcomes["a wrong token"] = hosts.check_host(db, settings, wrong)
        outcomes["a reset"] = check(f"127.0.0.1:{reset.port}")
        outcomes["no answer"] = check(f"127.0.0.1:{silent.port}")
    for what, row in outcomes.items():
        assert (row.verified, row.last_error) == (None, hosts.NOT_PROVEN), what
        assert hosts.host_json(row, settings)["last_error"] == hosts.NOT_PROVEN
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for detail in ("HTTP 404", "ConnectError", "the body is not the token", "ReadTimeout"):
        assert detail in logged, detail
    assert re.search(r"RemoteProtocolError|ReadError|ConnectError.*reset", logged)
    # and the guard lets a public (here: allowed) address be proven
    assert hosts.check_host(db, settings, own).method == hosts.WELL_KNOWN


# -- the API, the page and public mode on a real server --------------------------------


@pytest.fixture
def web(settings: Settings, db: Database) -> Iterator[Uvicorn]:
    with Uvicorn(settings, db) as running:
        yield running


def test_hosts_api_and_page(
    web: Uvicorn, alice: User, bob: User, server: LocalServer, settings: Settings
) -> None:
    with closing(web.client(alice.email)) as api, closing(web.client(bob.email)) as other:
        bad = api.post("/api/hosts", json={"host": "https://app.example.org/"})
        assert bad.status_code == 400 and bad.json()["detail"].startswith("host ")
        r = api.post("/api/hosts", json={"host": f"127.0.0.1:{server.port}"})
        assert r.status_code == 201, r.text
        host = r.json()
        token = host["token"]
        assert (host["host"], host["status"], host["verified"]) == (
            f"127.0.0.1:{server.port}",
            "pending",
            None,
        )
        assert host["proofs"][0]["urls"] == [
            f"https://127.0.0.1:{server.port}/.well-known/marteau/{token}",
            f"http://127.0.0.1:{server.port}/.well-known/marteau/{token}",
        ]
        assert api.get("/api/hosts").json()["enforced"] is True
        assert other.get("/api/hosts").json()["hosts"] == []
        assert other.post(f"/api/hosts/{host['id']}/verify").status_code == 404
        assert other.delete(f"/api/hosts/{host['id']}").status_code == 404
        failed = api.post(f"/api/hosts/{host['id']}/verify").json()
        assert failed["status"] == "failed" and "HTTP 404" in failed["last_error"]
        serve_token(server, f"/.well-known/marteau/{token}", token)
        verified = api.post(f"/api/hosts/{host['id']}/verify").json()
        assert (verified["status"], verified["method"]) == ("verified", "well-known")
        assert verified["expires"] == pytest.approx(verified["verified"] + 30 * 86400)
        named = api.post("/api/hosts", json={"host": "LocalHost"}).json()
        # the page: status, token, the three ways, Verify and Remove with CSRF
        page = httpx.get(web.url + "/hosts", cookies=api.cookies)
        assert page.status_code == 200
        text = page.text
        assert '<a href="/hosts">Hosts</a>' in text
        assert f"http://127.0.0.1:{server.port}/.well-known/marteau/{token}" in text
        assert f"http://127.0.0.1:{server.port}/{token}" in text
        assert "<code>_marteau.localhost</code>" in text
        assert f"marteau-verification={named['token']}" in text
        assert ">verified</span>" in text and ">pending</span>" in text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)
        assert f'action="/hosts/{named["id"]}/verify"' in text
        with httpx.Client(base_url=web.url, cookies=api.cookies, timeout=30) as browser:
            refused = browser.post("/hosts", data={"host": "a b", "csrf_token": csrf})
            assert refused.status_code == 400 and "without a scheme, a path or spaces" in (
                refused.text
            )
            assert browser.post("/hosts", data={"host": "x.example"}).status_code == 403
            added = browser.post("/hosts", data={"host": "x.example", "csrf_token": csrf})
            assert added.status_code == 303
            with DnsServer() as dns_server:  # an address, no TXT record: NXDOMAIN
                settings.dns_server = f"127.0.0.1:{dns_server.port}"
                dns_server.addresses["localhost"] = ["127.0.0.1"]
                checked = browser.post(f"/hosts/{named['id']}/verify", data={"csrf_token": csrf})
            assert checked.status_code == 303
            assert dns_server.queries == ["localhost", "localhost", "_marteau.localhost"]
            shown = browser.get("/hosts").text
            assert "DNS: no TXT record _marteau.localhost" in shown and ">failed</span>" in shown
            removed = browser.post(f"/hosts/{named['id']}/remove", data={"csrf_token": csrf})
            assert removed.status_code == 303
        listed = {h["host"]: h for h in api.get("/api/hosts").json()["hosts"]}
        assert sorted(listed) == [f"127.0.0.1:{server.port}", "x.example"]
        assert api.delete(f"/api/hosts/{host['id']}").json() == {"deleted": host["id"]}


def test_a_user_has_a_bounded_number_of_hosts(
    web: Uvicorn, settings: Settings, alice: User, bob: User
) -> None:
    settings.max_hosts_per_user = 3
    full = (
        "host h3.example: you have 3 hosts, the most a user may have here: remove one you "
        "no longer use first"
    )
    with closing(web.client(alice.email)) as api, closing(web.client(bob.email)) as other:
        added = [api.post("/api/hosts", json={"host": f"h{i}.example"}) for i in range(3)]
        assert [r.status_code for r in added] == [201, 201, 201]
        refused = api.post("/api/hosts", json={"host": "h3.example"})
        assert (refused.status_code, refused.json()["detail"]) == (400, full)
        form = {"host": "h3.example", "csrf_token": api.headers["X-CSRF-Token"]}
        page = api.post("/hosts", data=form)
        assert page.status_code == 400 and full in page.text
        assert other.post("/api/hosts", json={"host": "h3.example"}).status_code == 201
        api.delete(f"/api/hosts/{added[0].json()['id']}")
        assert api.post("/api/hosts", json={"host": "h3.example"}).status_code == 201
        assert len(api.get("/api/hosts").json()["hosts"]) == 3


def project_for(path: Path, url: str) -> Path:
    make_project(path)
    (path / "Simple.conf").write_text(f"[main]\ntitle = t\nurl = {url}\n")
    return path


def test_a_name_pointed_elsewhere_since_its_proof_needs_a_new_proof(
    db: Database, settings: Settings, alice: User
) -> None:
    """Attack 6 of issue 11: a name proven on the owner's server, then pointed at
    someone else's address (same port), must not carry the load there."""
    with DnsServer() as dns_server, LocalServer(host="127.0.0.2") as own:
        settings.dns_server = f"127.0.0.1:{dns_server.port}"
        label = f"app.test:{own.port}"
        row = hosts.add_host(db, alice.id, label)
        serve_token(own, f"/.well-known/marteau/{row.token}", row.token)
        dns_server.addresses["app.test"] = ["127.0.0.2"]
        row = hosts.check_host(db, settings, row)
        assert (row.method, row.addresses, row.last_error) == ("well-known", ["127.0.0.2"], None)
        assert {r.header("Host") for r in own.requests} == {label}  # asked by name
        hosts.check_addresses(db, settings, alice.id, [label])  # unchanged: the job may run
        with db.write() as session:  # a job prepared while the name pointed there
            job = Job(
                owner_id=alice.id,
                source_kind="path",
                source_url="/nowhere",
                created=1.0,
                prepared=True,
                pool="marteau",
                nodes_wanted=1,
                allowed_hosts=[label],
            )
            session.add(job)
            session.flush()
            job_id = job.id

        dns_server.addresses["app.test"] = ["127.0.0.3"]  # someone else's address
        with CountingListener("127.0.0.3", own.port) as victim:
            moved = (
                f"host {label}: the name now resolves to 127.0.0.3, not to 127.0.0.2 where it "
                "was proven: prove it again on the Hosts page (/hosts, Verify) and replay the job"
            )
            with pytest.raises(MarteauError) as caught:
                hosts.check_addresses(db, settings, alice.id, [label])
            assert str(caught.value) == moved
            job = run_queue(settings, db, job_id)
            assert (job.state, job.exit_code, job.exit_reason) == ("failed", 2, moved)
            assert "fake run" not in console_path(settings, job_id).read_text()
            # the new address cannot be proven: it does not serve the owner's token
            row = hosts.check_host(db, settings, row)
            assert row.addresses == ["127.0.0.2"] and "(at 127.0.0.3): " in row.last_error
            # nor a name pointing at both: every address must serve it
            dns_server.addresses["app.test"] = ["127.0.0.2", "127.0.0.3"]
            row = hosts.check_host(db, settings, row)
            assert row.addresses == ["127.0.0.2"] and "(at 127.0.0.3): " in row.last_error
            proven_url = f"http://{label}/.well-known/marteau/{row.token}"
            assert f"{proven_url} (at 127.0.0.2)" not in row.last_error
            assert victim.connections > 0  # the proof was asked of the new address
        with pytest.raises(MarteauError, match="now resolves to 127.0.0.2, 127.0.0.3"):
            hosts.check_addresses(db, settings, alice.id, [label])

        # the owner really moved: a new proof from the new address, and jobs run again
        with LocalServer(host="127.0.0.4", port=own.port) as moved_server:
            serve_token(moved_server, f"/{row.token}", row.token)
            dns_server.addresses["app.test"] = ["127.0.0.4"]
            row = hosts.check_host(db, settings, row)
            assert (row.method, row.addresses, row.last_error) == ("root", ["127.0.0.4"], None)
            hosts.check_addresses(db, settings, alice.id, [label])
    assert hosts.host_json(row, settings)["addresses"] == ["127.0.0.4"]


def test_a_proof_from_before_addresses_were_kept_is_checked_again(
    db: Database, settings: Settings, alice: User, server: LocalServer
) -> None:
    row = hosts.add_host(db, alice.id, f"127.0.0.1:{server.port}")
    with db.write() as session:  # as migration 0004 leaves a proven row
        session.execute(
            update(VerifiedHost)
            .where(VerifiedHost.id == row.id)
            .values(verified=time.time(), method="root", addresses=None)
        )
    assert hosts.status(hosts.get_host(db, alice.id, row.id), settings) == "expired"
    serve_token(server, f"/{row.token}", row.token)
    assert hosts.fresh_labels(db, settings, alice.id) == [f"127.0.0.1:{server.port}"]
    assert hosts.get_host(db, alice.id, row.id).addresses == ["127.0.0.1"]


def test_public_mode_refuses_a_job_to_an_unproven_host(
    web: Uvicorn,
    settings: Settings,
    db: Database,
    alice: User,
    server: LocalServer,
    tmp_path: Path,
) -> None:
    settings.public = True
    target = f"http://127.0.0.1:{server.port}"
    project = project_for(tmp_path / "project", target + "/app/")
    archive = {"archive": ("p.tar.gz", tar_of(project), "application/gzip")}
    with closing(web.client(alice.email)) as api:
        refused = api.post("/api/jobs/upload", files=archive)
        assert refused.status_code == 400
        detail = refused.json()["detail"]
        assert detail.startswith(f"Simple.conf [main] url {target}/app/: host 127.0.0.1:")
        assert "not a verified host of alice@example.org" in detail
        override = api.post("/api/jobs/upload", files=archive, data={"url": "http://10.1.2.3/"})
        assert override.status_code == 400
        assert override.json()["detail"].startswith("the job's url http://10.1.2.3/: host 10.1.")
        assert api.get("/api/jobs").json()["total"] == 0
        host = api.post("/api/hosts", json={"host": f"127.0.0.1:{server.port}"}).json()
        serve_token(server, f"/{host['token']}", host["token"])
        also = api.post("/api/hosts", json={"host": "127.0.0.2"}).json()  # never proven
        accepted = api.post("/api/jobs/upload", files=archive)
        assert accepted.status_code == 201, accepted.text
    job = run_queue(settings, db, accepted.json()["id"])
    assert job.state == "succeeded", console_path(settings, job.id).read_text()
    assert job.allowed_hosts == [f"127.0.0.1:{server.port}"]
    with closing(web.client(alice.email)) as api:
        shown = api.get(f"/api/jobs/{job.id}").json()
    assert shown["allowed_hosts"] == [f"127.0.0.1:{server.port}"]
    console = console_path(settings, job.id).read_text()
    assert f"--allow-host 127.0.0.1:{server.port}" in console  # the fake run prints its options
    assert "127.0.0.2" not in console and also["status"] == "pending"


def test_the_preview_says_whether_the_target_is_verified(
    web: Uvicorn, settings: Settings, alice: User, server: LocalServer, tmp_path: Path
) -> None:
    settings.public = True
    label = f"127.0.0.1:{server.port}"
    project = project_for(tmp_path / "project", f"http://{label}/app/")
    archive = {"archive": ("p.tar.gz", tar_of(project), "application/gzip")}

    def preview(api: httpx.Client) -> str:
        form = {"csrf_token": api.headers["X-CSRF-Token"]}
        answer = api.post("/jobs/preview", files=archive, data=form)
        assert answer.status_code == 200, answer.text
        found = re.search(r'<p id="target-status" class="(\w+)"[^>]*>([^<]*)', answer.text)
        assert found, answer.text
        return f"{found.group(1)}: {found.group(2).strip()}"

    with closing(web.client(alice.email)) as api:
        assert preview(api) == (
            f"error: host {label}: not one of your verified hosts: add it on the Hosts page "
            "(/hosts) and prove you own it, or the job will be refused"
        )
        host = api.post("/api/hosts", json={"host": label}).json()
        api.post(f"/api/hosts/{host['id']}/verify")  # nothing served yet: failed
        assert preview(api).startswith(f"error: host {label}: its proof is failed: it is checked")
        serve_token(server, f"/.well-known/marteau/{host['token']}", host["token"])
        assert api.post(f"/api/hosts/{host['id']}/verify").json()["status"] == "verified"
        assert preview(api) == (
            f"ok: host {label}: verified (well-known): jobs may send load to it"
        )
    assert len([r for r in server.requests if "/.well-known/" in r.path]) == 2  # the verifies


def test_a_git_job_is_checked_when_the_worker_prepares_it(
    settings: Settings, db: Database, server: LocalServer, tmp_path: Path
) -> None:
    settings.public = True
    import subprocess

    from marteau.service.jobs import create_job
    from marteau.service.scheduler import Claim

    admin = make_user(db, "root@example.org", admin=True)
    repo = project_for(tmp_path / "repo", f"http://localhost:{server.port}/")
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "v1"], check=True)
    first = create_job(db, settings, admin, {"git_url": f"file://{repo}"})
    job = run_queue(settings, db, first.id)
    assert job.state == "failed" and job.exit_code == 2
    assert "not a verified host of root@example.org" in job.exit_reason
    console = console_path(settings, job.id).read_text()
    assert f"Error: Simple.conf [main] url http://localhost:{server.port}/: host" in console
    row = hosts.add_host(db, admin.id, "localhost")  # no port: every port of the host
    with DnsServer() as dns_server:
        settings.dns_server = f"127.0.0.1:{dns_server.port}"
        dns_server.records["_marteau.localhost"] = [f'"marteau-verification={row.token}"']
        dns_server.addresses["localhost"] = ["127.0.0.1"]
        second = create_job(db, settings, admin, {"git_url": f"file://{repo}"})
        job = run_queue(settings, db, second.id)
    assert job.state == "succeeded" and job.allowed_hosts == ["localhost"]
    with db.read() as session:
        stored = session.scalars(select(Job).where(Job.id == second.id)).one()
    args = run_arguments(stored, Claim(job.id, [], "marteau"), tmp_path, repo, settings)
    assert args[args.index("--allow-host") + 1] == "localhost"
    stored.allowed_hosts = None  # prepared before the service enforced hosts
    with pytest.raises(MarteauError, match="replay it"):
        run_arguments(stored, Claim(job.id, [], "marteau"), tmp_path, repo, settings)
