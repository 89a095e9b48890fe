"""`marteau record` with its recording proxy (mitmdump), driven by a plain HTTP client.

The browser end to end is in test_record_browser.py; here: SIGTERM and
``--duration`` end a recording, a session that converts to nothing is kept
as a HAR, and bad settings are refused before anything is recorded.
"""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from tests.record_site import PASSWORD, USER, LoginSite, recorded_calls
from tests.servers import LocalServer
from tests.support.commands import MARTEAU, marteau_test
from tests.support.recording import needs_mitmdump, start_recording

pytestmark = needs_mitmdump


@pytest.fixture
def site() -> Iterator[LoginSite]:
    with LocalServer() as server:
        yield LoginSite(server)


def browse_with_urllib(proxy: str, site: LoginSite) -> None:
    """A simple client through the proxy: a page, its image, the login form, a login, a page after."""
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": proxy}),
        urllib.request.HTTPCookieProcessor(CookieJar()),
    )
    opener.open(f"{site.url}/").read()
    opener.open(f"{site.url}/static/logo.png").read()
    opener.open(f"{site.url}/login").read()
    form = urllib.parse.urlencode({"user": USER, "pw": PASSWORD}).encode()
    with opener.open(f"{site.url}/login", data=form) as reply:
        assert reply.url.endswith("/account")
    opener.open(f"{site.url}/orders").read()


def proxies_left(workdir: Path) -> list[str]:
    """Command lines of processes still using ``workdir`` (a mitmdump left running)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(workdir) in text:
            found.append(text)
    return found


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_the_recording_and_writes_the_test(
    site: LoginSite, tmp_path: Path, stop: signal.Signals
) -> None:
    process, proxy = start_recording(tmp_path, "--save-har", "session.har", "cli_flow")
    browse_with_urllib(proxy, site)
    process.send_signal(stop)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert proxies_left(tmp_path) == []
    assert "Created ./test_CliFlow.py and ./CliFlow.conf: 4 pages" in err
    module = (tmp_path / "test_CliFlow.py").read_text()
    calls = recorded_calls(module)
    assert calls == [("get", "/"), ("get", "/login"), ("post", "/login"), ("get", "/orders")]
    assert "['pw', self.conf_get('secrets', 'pw')]," in module and PASSWORD not in module
    assert f"url = {site.url}" in (tmp_path / "CliFlow.conf").read_text()
    har = json.loads((tmp_path / "session.har").read_text())
    assert len(har["log"]["entries"]) == 6  # page, image, form, login, redirect, orders


def test_a_duration_ends_it_and_an_empty_session_is_kept(tmp_path: Path) -> None:
    process = subprocess.run(
        [MARTEAU, "record", "-p", "0", "--confdir", str(tmp_path / "mitm"), "--duration", "1", "x"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 2
    assert "Error: the recording: no HTTP request with a response was recorded" in process.stderr
    kept = list(tmp_path.glob("record-*.har"))
    assert len(kept) == 1 and f"kept in ./{kept[0].name}" in process.stderr
    assert json.loads(kept[0].read_text())["log"]["entries"] == []
    assert proxies_left(tmp_path) == []
    assert not (tmp_path / "test_X.py").exists()


def test_bad_settings_are_refused_before_recording(tmp_path: Path) -> None:
    def refused(*args: str) -> str:
        run = subprocess.run(
            [MARTEAU, "record", "--confdir", str(tmp_path / "mitm"), *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 2, run.stderr
        return run.stderr

    (tmp_path / "test_Taken.py").write_text("mine")
    assert "test_Taken.py already exists" in refused("--mitmdump", "/nonexistent", "taken")
    assert "not an executable file" in refused("--mitmdump", "/nonexistent", "free")
    assert "--listen-host 'localhost': not an IP address" in refused("--listen-host", "localhost")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert "the recording proxy did not start" in refused("-p", str(port), "free")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "mitm") == ["test_Taken.py"]


def test_https_is_recorded_through_mitmproxys_ca(
    site: LoginSite,
    certs: dict[str, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    """A site on HTTPS: the client trusts mitmproxy's CA, mitmproxy trusts the site's cert."""
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(certs["server"], certs["server_key"])
    httpd = site.server._httpd
    httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    url = site.url.replace("http://", "https://")
    confdir = (
        tmp_path / "mitmproxy"
    )  # start_recording's --confdir: mitmproxy reads its options there
    confdir.mkdir()
    (confdir / "config.yaml").write_text(f"ssl_verify_upstream_trusted_ca: {certs['server']}\n")
    process, proxy = start_recording(tmp_path, "tls_flow")
    trust = ssl.create_default_context(cafile=str(confdir / "mitmproxy-ca-cert.pem"))
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"https": proxy}),
        urllib.request.HTTPSHandler(context=trust),
        urllib.request.HTTPCookieProcessor(CookieJar()),
    )
    opener.open(f"{url}/login").read()
    form = urllib.parse.urlencode({"user": USER, "pw": PASSWORD}).encode()
    opener.open(f"{url}/login", data=form).read()
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert recorded_calls((tmp_path / "test_TlsFlow.py").read_text()) == [
        ("get", "/login"),
        ("post", "/login"),
    ]
    assert f"url = {url}\n" in (tmp_path / "TlsFlow.conf").read_text()
    recorded = len(site.protected)
    run = marteau_test(tmp_path, "test_TlsFlow.py")  # Marteau's client does not verify by default
    assert run.returncode == 0, run.stdout + run.stderr
    assert site.protected[recorded:] == [("/account", 200)]
