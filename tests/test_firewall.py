"""The job user's egress firewall (roles/marteau_bench/library/marteau_firewall.py) on
this machine's real nftables: a throwaway Unix user runs code that opens its own
sockets (`urllib`, `socket`: the engine's `--allow-host` check never sees them)
against an allowed server on 127.0.0.2 and a forbidden one on 127.0.0.3. The module
through `marteau run`, with the bench as a job user of its own, is in
tests/test_orchestration_isolation.py (sshd nodes with sudo)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import LocalServer, ok
from tests.support.firewall import call, table

SYSTEM_PYTHON = "/usr/bin/python3"  # readable by a throwaway user, unlike the venv's

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("useradd"),
    reason="needs root, nft (Debian's nftables) and useradd",
)

# Run as the job user: try each URL with urllib and with a bare socket, print what happened.
PROBE = r"""
import json, socket, sys, urllib.request
out = {}
for url, timeout in json.loads(sys.argv[1]):
    host, port = url.split("//")[1].split(":")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            seen = reply.status
    except Exception as exc:
        seen = type(exc).__name__
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
        raw = "connected"
    except OSError as exc:
        raw = type(exc).__name__
    out[url] = [seen, raw]
print(json.dumps(out))
"""


def probe(uid: int, *urls: str, timeout: float = 1.5) -> dict[str, list]:
    """What user `uid` gets from each URL: [urllib status or error, socket result].

    The allowed server answers at once; a dropped SYN waits the whole timeout,
    so the short timeout only shortens the forbidden cases."""
    done = subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        + [SYSTEM_PYTHON, "-c", PROBE, json.dumps([[u, timeout] for u in urls])],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def job_users(tmp_path: Path) -> Iterator[list[int]]:
    """Two throwaway Unix users (no home, no login), removed with any rules left. Their
    uids lie above useradd's range: the job users other workers' runs add meanwhile
    never get one of them, even once freed."""
    names = [f"mtfw{os.getpid() % 100000}{tag}" for tag in "ab"]
    uids = [61000 + 2 * (os.getpid() % 1000) + i for i in range(2)]
    for name, uid in zip(names, uids, strict=True):
        subprocess.run(
            ["useradd", "--no-create-home", "--user-group", "-p", "*", "-s", "/usr/sbin/nologin"]
            + ["--uid", str(uid), name],
            check=True,
        )
    try:
        yield uids
    finally:
        for uid in uids:
            call(tmp_path, uid=uid, state="absent")
        for name in names:
            subprocess.run(["userdel", name], check=False)


@pytest.fixture
def servers() -> Iterator[tuple[LocalServer, LocalServer]]:
    with (
        LocalServer({"/": lambda r: ok()}, host="127.0.0.2") as allowed,
        LocalServer({"/": lambda r: ok()}, host="127.0.0.3") as forbidden,
    ):
        yield allowed, forbidden


def test_own_sockets_reach_only_the_allowed_host(tmp_path: Path, job_users, servers) -> None:
    uid = job_users[0]
    allowed, forbidden = servers
    before = probe(uid, allowed.url, forbidden.url)
    assert before[forbidden.url] == [200, "connected"]  # nothing in the way yet

    installed = call(tmp_path, uid=uid, allow=[f"127.0.0.2:{allowed.port}"])
    assert installed["changed"] and installed["accepted"] == [f"127.0.0.2:{allowed.port}"]
    after = probe(uid, allowed.url, forbidden.url)
    assert after[allowed.url] == [200, "connected"]
    assert after[forbidden.url][0] != 200 and after[forbidden.url][1] != "connected"
    assert probe(0, forbidden.url)[forbidden.url] == [200, "connected"]  # only the job's uid
    hits = len(forbidden.requests)

    removed = call(tmp_path, uid=uid, state="absent")
    assert removed["removed"] and removed["changed"]
    assert removed["dropped"] >= 2  # at least one SYN each from urllib and socket
    assert removed["destinations"] == ["127.0.0.3"]
    assert f"job_{uid}" not in table()
    assert probe(uid, forbidden.url)[forbidden.url] == [200, "connected"]  # the rules are gone
    assert hits == 2  # before the rules and as root: none while they held

    again = call(tmp_path, uid=uid, state="absent")  # idempotent (release after collect)
    assert not again["changed"] and not again["removed"] and again["dropped"] == 0


def test_two_jobs_keep_their_own_rules(tmp_path: Path, job_users, servers) -> None:
    first, second = job_users
    allowed, forbidden = servers
    call(tmp_path, uid=first, allow=[f"127.0.0.2:{allowed.port}"])
    call(tmp_path, uid=second, allow=["127.0.0.3"])  # every port of 127.0.0.3
    assert probe(first, forbidden.url)[forbidden.url][1] != "connected"
    assert probe(second, allowed.url, forbidden.url) == {
        allowed.url: ["URLError", "TimeoutError"],
        forbidden.url: [200, "connected"],
    }

    second_removed = call(tmp_path, uid=second, state="absent")
    assert second_removed["destinations"] == ["127.0.0.2"]
    assert f"job_{first}" in table()  # the first job's rules untouched
    assert probe(first, allowed.url, forbidden.url) == {
        allowed.url: [200, "connected"],
        forbidden.url: ["URLError", "TimeoutError"],
    }
    first_removed = call(tmp_path, uid=first, state="absent")
    assert first_removed["destinations"] == ["127.0.0.3"] and first_removed["dropped"] >= 4


def test_installing_again_replaces_and_a_gone_user_is_pruned(tmp_path: Path, job_users) -> None:
    first, second = job_users
    call(tmp_path, uid=first, allow=["127.0.0.2:1"])
    again = call(tmp_path, uid=first, allow=["127.0.0.2:2"])  # a lock takeover, a retry
    rules = table()
    assert "tcp dport 2 accept" in rules and "tcp dport 1 accept" not in rules
    assert rules.count(f"{first} : jump job_{first}") == 1 and again["pruned"] == []
    name = subprocess.check_output(["id", "-nu", str(first)], text=True).strip()
    subprocess.run(["userdel", name], check=True)  # removed without its rules
    pruned = call(tmp_path, uid=second, allow=[])
    assert f"job_{first}" in pruned["pruned"] and f"job_{first}" not in table()


def test_bad_input_is_refused(tmp_path: Path, job_users) -> None:
    uid = job_users[0]
    bad = call(tmp_path, uid=uid, allow=["example.com:99999"])
    assert bad["failed"] and "example.com:99999" in bad["msg"]
    assert call(tmp_path, uid=0, allow=[])["failed"]
    gone = call(tmp_path, user="mtfw-no-such-user", state="absent")
    assert not gone["changed"] and not gone["removed"]
    unresolved = call(tmp_path, uid=uid, allow=["name.invalid"])
    assert unresolved["unresolved"] and unresolved["accepted"] == []
    assert "name.invalid" in " ".join(str(w) for w in unresolved["warnings"])
