"""``--allow-host``: the engine sends nothing to a host that is not on the list.

The allowed target is a `LocalServer` on 127.0.0.2; the "third party" is a
`CountingListener` that counts every TCP connection it accepts (not only
complete requests), on 127.0.0.1 or on another port of 127.0.0.2. Each test
ends with that count at 0: the refused requests never opened a socket.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from marteau.engine import guard
from marteau.engine.http import HTTPClient, HTTPClientError
from marteau.errors import MarteauError
from tests.servers import CountingListener, LocalServer, Reply, Request, ok

REPO = Path(__file__).resolve().parents[1]
MARTEAU = str(Path(sys.executable).with_name("marteau"))


@pytest.fixture
def no_guard() -> Iterator[None]:
    guard.uninstall()
    yield
    guard.uninstall()


# -- the rules ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("Example.COM", ("example.com", None)),
        ("example.com.:8080", ("example.com", 8080)),
        ("127.0.0.2:80", ("127.0.0.2", 80)),
        ("[::1]:8443", ("::1", 8443)),
        ("0:0::1", ("::1", None)),
    ],
)
def test_entries_are_normalised(entry: str, expected: tuple[str, int | None]) -> None:
    assert guard.parse_entry(entry) == expected


@pytest.mark.parametrize("entry", ["", "a b", "x:y", "x:0", "x:65536", "x:", "[::1]x", "a/b"])
def test_a_bad_entry_names_itself(entry: str) -> None:
    with pytest.raises(MarteauError, match=r"--allow-host .*expected HOST or HOST:PORT") as info:
        guard.parse_entry(entry)
    assert repr(entry) in str(info.value)


def test_names_are_literal_ports_exact_unless_absent() -> None:
    rules = guard.HostGuard(["Target.example", "api.example:8443"], addresses={})
    assert rules.allows("target.example", 80) and rules.allows("TARGET.example.", 9999)
    assert rules.allows("api.example", 8443) and not rules.allows("api.example", 443)
    assert not rules.allows("www.target.example", 80)  # no suffix matching
    assert not rules.allows("192.0.2.1", 80)  # an IP literal must be listed itself
    assert rules.listing == "target.example, api.example:8443"


# -- the client, in this process --------------------------------------------------


def test_the_connection_goes_to_the_address_resolved_at_start(no_guard: None) -> None:
    """DNS rebinding: the name now resolves elsewhere, the client keeps the pinned address."""
    # `localhost` resolves to 127.0.0.1, where a listener has the target's port.
    target = LocalServer(routes={"/": lambda r: ok("target")}, host="127.0.0.2")
    with target, CountingListener("127.0.0.1", target.port) as rebound, HTTPClient() as client:
        guard.install(guard.HostGuard(["localhost"], {"localhost": ["127.0.0.2"]}))
        response = client.request("GET", f"http://localhost:{target.port}/")
        with pytest.raises(HTTPClientError) as info:
            client.request("GET", f"http://127.0.0.1:{target.port}/")
    assert response.body == b"target" and len(target.requests) == 1
    assert str(info.value) == (
        f"Can't load http://127.0.0.1:{target.port}/: refused: "
        f"127.0.0.1:{target.port} is not an allowed host (allowed: localhost)"
    )
    assert rebound.connections == 0


def test_the_listener_counts_what_reaches_it(no_guard: None) -> None:
    """The control for every `connections == 0` below: without a guard, it counts."""
    with CountingListener("127.0.0.1") as listener, HTTPClient() as client:
        assert client.request("GET", listener.url() + "/").body == b"no"
    assert listener.connections == 1


def test_a_proxy_set_by_test_code_is_refused(
    no_guard: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with CountingListener("127.0.0.1") as proxy:
        monkeypatch.delenv("http_proxy", raising=False)
        monkeypatch.delenv("HTTP_PROXY", raising=False)
        guard.guard_process(["127.0.0.2"])
        monkeypatch.setenv("http_proxy", proxy.url())  # after the guard: not trusted
        with HTTPClient() as client, pytest.raises(HTTPClientError) as info:
            client.request("GET", "http://127.0.0.2:1/")
    assert f"refused: proxy 127.0.0.1:{proxy.port} is not an allowed host" in str(info.value)
    assert proxy.connections == 0


@pytest.mark.parametrize("how", ["set before the guard", "an allowed host"])
def test_a_trusted_or_allowed_proxy_is_used(
    no_guard: None, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    with CountingListener("127.0.0.1") as proxy:
        monkeypatch.delenv("HTTP_PROXY", raising=False)
        if how == "set before the guard":
            monkeypatch.setenv("http_proxy", proxy.url())
            guard.guard_process(["127.0.0.2"])
        else:  # an unresolvable name, pinned to the listener's address
            name = f"proxy.invalid:{proxy.port}"
            guard.install(guard.HostGuard(["127.0.0.2", name], {"proxy.invalid": ["127.0.0.1"]}))
            monkeypatch.setenv("http_proxy", f"http://{name}")
        with HTTPClient() as client:
            assert client.request("GET", "http://127.0.0.2:1/").body == b"no"
    assert proxy.connections == 1


def test_an_allowed_name_that_did_not_resolve_is_refused(no_guard: None) -> None:
    guard.guard_process(["no-such-host.invalid"])
    with HTTPClient() as client, pytest.raises(HTTPClientError) as info:
        client.request("GET", "http://no-such-host.invalid/")
    assert "allowed host no-such-host.invalid did not resolve when the bench started" in str(
        info.value
    )


class XmlRpcServer:
    """A real XML-RPC server (the standard library's) with a `ping` method, in a thread."""

    def __init__(self, host: str) -> None:
        from xmlrpc.server import SimpleXMLRPCServer

        self.server = SimpleXMLRPCServer((host, 0), logRequests=False, allow_none=True)
        self.server.register_function(lambda: "pong", "ping")
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> XmlRpcServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_xmlrpc_and_http_client_connections_are_checked_and_pinned(no_guard: None) -> None:
    """The calls beside the engine's client (XML-RPC, comet, the credential server) use
    http.client: without a guard as they are, with one refused or sent to the pinned
    address of the name (here `localhost`, pinned to 127.0.0.2: 127.0.0.1 must see
    nothing)."""
    import http.client
    import xmlrpc.client

    with XmlRpcServer("127.0.0.2") as rpc, CountingListener("127.0.0.1", rpc.port) as rebound:
        url = f"http://localhost:{rpc.port}/RPC2"
        unguarded = http.client.HTTPConnection("localhost", rpc.port, timeout=5)
        assert guard.pin(unguarded) is unguarded
        assert unguarded._create_connection is socket.create_connection  # untouched

        guard.install(guard.HostGuard([f"localhost:{rpc.port}"], {"localhost": ["127.0.0.2"]}))
        proxy = xmlrpc.client.ServerProxy(url, transport=guard.pinned_transport(url))
        assert proxy.ping() == "pong"
        assert isinstance(guard.pinned_transport("https://x/"), xmlrpc.client.SafeTransport)
        connection = guard.pin(http.client.HTTPConnection("127.0.0.1", rpc.port), "localhost")
        connection.request("POST", "/RPC2", xmlrpc.client.dumps((), "ping"))
        assert xmlrpc.client.loads(connection.getresponse().read())[0] == ("pong",)
        connection.close()

        refused_url = f"http://127.0.0.1:{rpc.port}/RPC2"
        refused = xmlrpc.client.ServerProxy(refused_url, transport=guard.pinned_transport(url))
        with pytest.raises(guard.HostRefused, match=rf"127\.0\.0\.1:{rpc.port} is not an"):
            refused.ping()
        with pytest.raises(guard.HostRefused, match=r"localhost:80 is not an allowed host"):
            guard.pin(http.client.HTTPConnection("localhost", 80))
    assert rebound.connections == 0


# -- `marteau bench` for real ------------------------------------------------------

TEST = """
from funkload.FunkLoadTestCase import FunkLoadTestCase


class Guarded(FunkLoadTestCase):
    def setUp(self):
        self.url = self.conf_get("main", "url")
        self.other = self.conf_get("main", "other")

    def test_direct(self):
        self.get(self.other + "/direct", description="Straight to the other host")

    def test_redirect(self):
        self.get(self.url + "/redirect", description="Redirected to the other host")

    def test_image(self):
        self.get(self.url + "/page", description="A page with an image on the other host")

    def test_xmlrpc(self):
        self.xmlrpc(self.other + "/RPC2", "ping", description="XML-RPC to the other host")
"""

CONF = """
[main]
title=Allowed hosts
description=Requests to hosts that are not allowed
url={url}
other={other}

[test_direct]
description=direct
[test_redirect]
description=redirect
[test_image]
description=image
[test_xmlrpc]
description=xmlrpc

[bench]
cycles = {cycles}
duration = 1
startup_delay = 0.01
sleep_time = 0.05
cycle_time = 0
log_to =
log_path = bench.log
result_path = bench.xml
sleep_time_min = 0
sleep_time_max = 0
"""


def target_routes(other: str) -> dict:
    def redirect(request: Request) -> Reply:
        return 302, [("Location", other + "/moved")], b""

    def page(request: Request) -> Reply:
        return ok(f'<html><body><img src="{other}/logo.png"></body></html>', "text/html")

    return {"/ok": lambda request: ok("OK"), "/redirect": redirect, "/page": page}


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        env.pop(name, None)
    return env


def loopback_name() -> tuple[str, str]:
    """This machine's host name and its loopback address (skip when it has none)."""
    name = socket.gethostname()
    try:
        address = socket.gethostbyname(name)
    except OSError:
        address = ""
    if not address.startswith("127.") or address == "127.0.0.2":
        pytest.skip(f"host name {name!r} does not resolve to a loopback address but 127.0.0.2")
    return name, address


@pytest.mark.parametrize(
    ("method", "other", "workers"),
    [
        ("test_direct", "name", "1"),  # this host's name -> 127.0.0.x, not the allowed one
        ("test_direct", "ip", "2"),  # an IP literal, from spawned worker processes
        ("test_direct", "port", "1"),  # the allowed address, another port
        ("test_direct", "localhost", "1"),  # FunkLoad's browser reaches it as 127.0.0.1
        ("test_redirect", "ip", "1"),
        ("test_image", "name", "2"),
        ("test_xmlrpc", "ip", "1"),
    ],
)
def test_bench_records_an_error_and_sends_nothing_elsewhere(
    tmp_path: Path, method: str, other: str, workers: str
) -> None:
    name, address = loopback_name() if other == "name" else ("", "127.0.0.1")
    with CountingListener("127.0.0.2" if other == "port" else address) as third_party:
        other_url = third_party.url(name or ("localhost" if other == "localhost" else None))
        other_host = f"{name or third_party.host}:{third_party.port}"
        with LocalServer(routes=target_routes(other_url), host="127.0.0.2") as target:
            (tmp_path / "guarded.py").write_text(TEST)
            (tmp_path / "Guarded.conf").write_text(
                CONF.format(url=target.url, other=other_url, cycles=workers)
            )
            allowed = f"127.0.0.2:{target.port}"
            run = subprocess.run(
                [MARTEAU, "bench", "guarded.py", f"Guarded.{method}", "--workers", workers]
                + ["--allow-host", allowed, "--allow-host", "example.invalid"],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
                env=_env(),
            )
            served = len(target.requests)
    assert run.returncode == 255, run.stdout + run.stderr  # FunkLoad's "errors" status
    assert f"* Allowed hosts: {allowed}, example.invalid (did not resolve" in run.stdout
    message = f"refused: {other_host} is not an allowed host (allowed: {allowed}, example.invalid)"
    root = ET.parse(tmp_path / "bench.xml").getroot()
    config = {item.get("key"): item.get("value") for item in root.iter("config")}
    assert config["marteau:allowed_hosts"] == f"{allowed}, example.invalid"
    errors = [r for r in root.iter("response") if r.get("result") == "Error"]
    assert errors, run.stdout
    for error in errors:
        assert error.get("url").startswith(other_url), error.attrib
        assert error.get("code") == "-1"
        assert message in error.get("traceback"), error.get("traceback")
    if method in ("test_redirect", "test_image"):  # the allowed part went through
        assert served >= len(errors)
        assert {r.get("result") for r in root.iter("response")} == {"Successful", "Error"}
    assert third_party.connections == 0


def test_marteau_test_refuses_too(tmp_path: Path) -> None:
    with CountingListener("127.0.0.1") as third_party:
        (tmp_path / "guarded.py").write_text(TEST)
        (tmp_path / "Guarded.conf").write_text(
            CONF.format(url="http://127.0.0.2:1", other=third_party.url(), cycles=1)
        )
        run = subprocess.run(
            [MARTEAU, "test", "guarded.py", "Guarded.test_direct", "--allow-host", "127.0.0.2"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(),
        )
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"refused: 127.0.0.1:{third_party.port} is not an allowed host" in run.stderr
    assert third_party.connections == 0


@pytest.mark.parametrize(
    "command",
    [
        ["fl-run-bench", "guarded.py", "Guarded.test_direct"],
        ["marteau", "test", "guarded.py"],
        ["marteau", "run", "."],  # refused before the project is even read
    ],
)
def test_a_bad_allow_host_is_bad_input(tmp_path: Path, command: list[str]) -> None:
    executable = str(Path(sys.executable).with_name(command[0]))
    run = subprocess.run(
        [executable, *command[1:], "--allow-host", "ok.example", "--allow-host", "host:port"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Error: --allow-host 'host:port': expected HOST or HOST:PORT" in run.stderr
    assert not (tmp_path / "marteau-runs").exists()


# -- `marteau run`: the role passes the list to every node's bench ----------------


# the embedded node's job user gets its egress firewall in this machine's nftables
@pytest.mark.xdist_group("machine")
def test_marteau_run_passes_the_allowed_hosts_to_the_nodes(tmp_path: Path) -> None:
    """-e cannot widen the list: --allow-host is applied after the extra variables."""
    project = tmp_path / "project"
    project.mkdir()
    with CountingListener("127.0.0.1") as third_party:
        target = LocalServer(routes=target_routes(third_party.url()), host="127.0.0.2")
        with target:
            (project / "guarded.py").write_text(TEST)
            (project / "Guarded.conf").write_text(
                CONF.format(url=target.url, other=third_party.url(), cycles=1)
            )
            (project / ".marteau.yml").write_text(
                "script: guarded.py\ntest: Guarded.test_redirect\ncycles: 1\nduration: 3\n"
            )
            allowed = f"127.0.0.2:{target.port}"
            widen = f"marteau_bench_allowed_hosts=127.0.0.1:{third_party.port}"
            run = subprocess.run(
                [MARTEAU, "run", str(project), "--plain", "--workers", "1", "--allow-host"]
                + [allowed, "-e", widen, "-e", "marteau_node_tune=false"],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=240,
                env=dict(_env(), HOME=os.environ.get("HOME", "/root")),
            )
            served = len(target.requests)
    # The node's bench exited 255 (errors: the refused requests) but wrote its results:
    # collected, reported, and the run says errors as the bench did.
    assert run.returncode == 255, run.stdout + run.stderr
    run_dir = Path(run.stdout.split("Run directory: ")[1].splitlines()[0])
    assert json.loads((run_dir / "run.json").read_text())["allowed_hosts"] == [allowed]
    log = (run_dir / "results" / "localhost" / "bench.log").read_text()
    assert f"* Allowed hosts: {allowed}\n" in log
    refused = f"refused: 127.0.0.1:{third_party.port} is not an allowed host (allowed: {allowed})"
    assert f"First error: OSError: Can't load {third_party.url()}/moved. " in log
    assert refused in log
    (summary,) = (run_dir / "report").rglob("summary.json")
    totals = json.loads(summary.read_text())["totals"]
    assert totals["requests_error"] > 0 and served >= totals["requests_error"], log
    assert third_party.connections == 0


# -- `--strict-host`: the allowed address's other sites stay out of reach --------

HOST_TEST = """
from funkload.FunkLoadTestCase import FunkLoadTestCase


class Shared(FunkLoadTestCase):
    def test_other_site(self):
        self.setHeader("Host", "victim.example")
        self.get(self.conf_get("main", "url") + "/ok", description="Another site's Host")

    def test_injected_host(self):
        self.addHeader("X-Note", "a\\r\\nHost: victim.example")
        self.get(self.conf_get("main", "url") + "/ok", description="A Host in another header")

    def test_own_site(self):
        self.setHeader("Host", self.conf_get("main", "url").split("//")[1].upper())
        self.get(self.conf_get("main", "url") + "/ok", description="The URL's own host")
"""


@pytest.mark.parametrize("method", ["test_other_site", "test_injected_host", "test_own_site"])
def test_strict_host_refuses_a_host_header_naming_another_site(tmp_path: Path, method: str) -> None:
    """A shared server on an allowed address is asked for its own site only."""
    with LocalServer(routes=target_routes("http://127.0.0.1:9"), host="127.0.0.2") as target:
        (tmp_path / "shared.py").write_text(HOST_TEST)
        conf = CONF.format(url=target.url, other="", cycles=1).replace("test_direct", method)
        (tmp_path / "Shared.conf").write_text(conf)
        allowed = f"127.0.0.2:{target.port}"
        run = subprocess.run(
            [MARTEAU, "bench", "shared.py", f"Shared.{method}", "--workers", "1"]
            + ["--allow-host", allowed, "--strict-host"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(),
        )
        hosts = {request.header("Host") for request in target.requests}
    root = ET.parse(tmp_path / "bench.xml").getroot()
    config = {item.get("key"): item.get("value") for item in root.iter("config")}
    assert config["marteau:strict_host"] == "true", run.stdout + run.stderr
    assert "(Host headers checked: --strict-host)" in run.stdout
    results = {r.get("result") for r in root.iter("response")}
    if method == "test_own_site":
        assert run.returncode == 0, run.stdout + run.stderr
        assert results == {"Successful"} and hosts == {allowed.upper()}
        return
    assert run.returncode == 255, run.stdout + run.stderr
    assert results == {"Error"} and not target.requests  # nothing reached the server
    why = {
        "test_other_site": "refused: Host header 'victim.example' names another host than "
        f"the URL's {allowed} (--strict-host)",
        "test_injected_host": "refused: header 'X-Note' holds a line break (--strict-host)",
    }[method]
    for error in root.iter("response"):
        assert why in error.get("traceback"), error.get("traceback")


def test_strict_host_needs_allowed_hosts(tmp_path: Path) -> None:
    run = subprocess.run(
        [MARTEAU, "bench", "shared.py", "Shared.test_own_site", "--strict-host"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert run.returncode == 2
    assert "Error: --strict-host needs --allow-host" in run.stderr
