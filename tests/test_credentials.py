"""The credential server: FunkLoad's files, its RPC methods, `fl-credential-ctl`, slices."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from marteau.errors import MarteauError
from marteau.funkload.credentials import CredentialStore, load_credentials, read_conf
from tests.servers import LocalServer, free_port
from tests.support.commands import marteau_test
from tests.support.funkload import install
from tests.support.projects import Logins, login_project

BIN = Path(sys.executable).parent

PASSWORDS = """\
# the site's accounts
admin:admin

fl_member_01:pw1
fl_member_02:pw2
fl_member_03 : p:w3
fl_member_04:pw4
fl_review_01:rv1
"""
GROUPS = """\
# a group may span several lines; logins without a password are skipped
AdminZope:admin
FL_Member:fl_member_01,fl_member_02, ghost
FL_Member:fl_member_03, fl_member_04
Review:fl_review_01
"""


def write_conf(directory: Path, port: int, extra: str = "") -> Path:
    (directory / "passwords.txt").write_text(PASSWORDS)
    (directory / "groups.txt").write_text(GROUPS)
    conf = directory / "credential.conf"
    conf.write_text(
        "[server]\nhost = localhost\n"
        f"port = {port}\nloop_on_first_credentials = 0\n"
        "credentials_path = passwords.txt\ngroups_path = groups.txt\n" + extra
    )
    return conf


def ctl(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "fl-credential-ctl"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


# -- the files and the RPC methods ---------------------------------------------------------


def test_files_read_as_funkload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the conf's paths are relative to the current directory
    conf = read_conf(str(write_conf(tmp_path, 22207)))
    assert (conf.host, conf.port, conf.url) == ("localhost", 22207, "http://localhost:22207/")
    assert (conf.pid_path, conf.log_path) == ("file_credential.pid", "file_credential.log")
    store = CredentialStore(conf.load())
    assert store.listGroups() == ["AdminZope", "FL_Member", "Review"]
    assert store.listCredentials() == [
        "admin", "fl_member_01", "fl_member_02", "fl_member_03", "fl_member_04", "fl_review_01",
    ]  # fmt: skip
    assert store.listCredentials("FL_Member")[2] == ["fl_member_03", "p:w3"]
    assert len(store.listCredentials("FL_Member")) == 4  # ghost has no password
    # round robin, per group, starting again after the last
    drawn = [store.getCredential("FL_Member")[0] for _ in range(5)]
    assert drawn == ["fl_member_01", "fl_member_02", "fl_member_03", "fl_member_04", "fl_member_01"]
    assert store.getCredential() == ["admin", "admin"]
    assert [store.getSeq(), store.getSeq()] == [1, 2]
    with pytest.raises(ValueError, match="nobody"):
        store.getCredential("nobody")


def test_loop_on_first_credentials_and_seq(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = write_conf(tmp_path, 22207, "seq = 41\n")
    text = conf.read_text().replace(
        "loop_on_first_credentials = 0", "loop_on_first_credentials = 2"
    )
    conf.write_text(text)
    monkeypatch.chdir(tmp_path)
    store = CredentialStore(read_conf(str(conf)).load())
    assert [store.getCredential()[0] for _ in range(3)] == ["admin", "fl_member_01", "admin"]
    assert store.listCredentials("FL_Member") == [["fl_member_01", "pw1"], ["fl_member_02", "pw2"]]
    assert store.getSeq() == 42


@pytest.mark.parametrize(
    ("passwords", "groups", "message"),
    [
        ("admin:admin\nno separator here\n", "", "passwords.txt:2: expected login:password"),
        ("admin:admin\n", "Admins admin\n", "groups.txt:1: expected group:login1, login2"),
    ],
)
def test_bad_lines_name_the_file_and_line(
    tmp_path: Path, passwords: str, groups: str, message: str
) -> None:
    (tmp_path / "passwords.txt").write_text(passwords)
    (tmp_path / "groups.txt").write_text(groups)
    with pytest.raises(MarteauError, match=message):
        load_credentials(str(tmp_path / "passwords.txt"), str(tmp_path / "groups.txt"))


def test_slices_are_disjoint_and_cover_every_login(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("".join(f"u{i}:p{i}\n" for i in range(10)))
    (tmp_path / "g.txt").write_text("odd:" + ", ".join(f"u{i}" for i in range(1, 10, 2)) + "\n")
    everything = load_credentials(str(tmp_path / "p.txt"), str(tmp_path / "g.txt"))
    slices = [everything.slice(index, 3) for index in range(3)]
    for group in (None, "odd"):
        drawn = [s.groups[group] for s in slices]
        assert sorted(sum(drawn, [])) == sorted(everything.groups[group])
        assert len(set(sum(drawn, []))) == len(everything.groups[group])
    assert slices[1].groups[None] == ["u1", "u4", "u7"]
    assert slices[1].groups["odd"] == ["u3", "u9"]
    assert set(slices[1].passwords) == {"u1", "u4", "u7", "u3", "u9"}
    with pytest.raises(MarteauError, match="slice 3/3"):
        everything.slice(3, 3)


# -- fl-credential-ctl -----------------------------------------------------------------------


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    port = free_port()
    write_conf(tmp_path, port)
    started = ctl(tmp_path, "credential.conf", "start")
    assert started.returncode == 0, started.stderr + started.stdout
    try:
        yield tmp_path, port
    finally:
        ctl(tmp_path, "credential.conf", "stop")


def test_ctl_start_status_test_stop(running: tuple[Path, int]) -> None:
    directory, port = running
    url = f"http://localhost:{port}/"
    pid = int((directory / "file_credential.pid").read_text())
    status = ctl(directory, "credential.conf", "status")
    assert status.stdout == f"{url} file_credential running pid = {pid}.\n"
    again = ctl(directory, "credential.conf", "start")
    assert again.returncode == 0 and again.stdout == f"Server {url} is already running.\n"
    test = ctl(directory, "credential.conf", "test")
    assert test.returncode == 0, test.stderr
    lines = test.stdout.splitlines()
    assert lines[0] == "['AdminZope', 'FL_Member', 'Review']"
    assert lines[1] == "0 getCredential() ... return ('admin', 'admin')"
    assert lines[6] == "5 getCredential() ... return ('fl_review_01', 'rv1')"
    assert "  content: [['fl_member_01', 'pw1'], ['fl_member_02', 'pw2']," in test.stdout
    assert lines[-5:] == [f"seq : {n}" for n in range(1, 6)]
    stop = ctl(directory, "credential.conf", "stop")
    assert stop.stdout == f"Server {url} is stopped.\n"
    assert not (directory / "file_credential.pid").exists()
    assert "stopped" in (directory / "file_credential.log").read_text()
    assert ctl(directory, "credential.conf", "status").stdout == f"No server reachable at {url}.\n"
    assert ctl(directory, "credential.conf", "test").returncode == 255


def test_funkload_demo_and_helpers_against_the_server(running: tuple[Path, int]) -> None:
    """FunkLoad's xmlrpc demo, then the funkload.utils helpers, as a test uses them."""
    directory, port = running
    install(directory, "test_Credential.py")
    (directory / "Credential.conf").write_text(
        f"[main]\nurl = http://localhost:{port}/\n[ftest]\nlog_to =\nresult_path = cred.xml\n"
    )
    run = marteau_test(directory, "test_Credential.py", "-v")
    assert run.returncode == 0, run.stderr
    assert 'xmlrpc="5"' in (directory / "cred.xml").read_text().splitlines()[-1]
    from funkload.utils import (
        xmlrpc_get_credential,
        xmlrpc_get_seq,
        xmlrpc_list_credentials,
        xmlrpc_list_groups,
    )

    assert xmlrpc_list_groups("localhost", port) == ["AdminZope", "FL_Member", "Review"]
    assert xmlrpc_get_credential("localhost", port, "Review") == ("fl_review_01", "rv1")
    assert xmlrpc_list_credentials("localhost", port, "AdminZope") == [["admin", "admin"]]
    assert "fl_member_04" in xmlrpc_list_credentials("localhost", port)
    assert xmlrpc_get_seq("localhost", port) == 1


def test_ctl_restart_and_marteau_credentials(running: tuple[Path, int]) -> None:
    directory, _ = running
    before = (directory / "file_credential.pid").read_text()
    restart = subprocess.run(
        [str(BIN / "marteau"), "credentials", "credential.conf", "restart", "-q"],
        cwd=directory, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert restart.returncode == 0 and restart.stdout == ""
    assert (directory / "file_credential.pid").read_text() != before


def test_ctl_bad_input(tmp_path: Path) -> None:
    missing = ctl(tmp_path, "nothing.conf", "status")
    assert missing.returncode == 2 and "nothing.conf" in missing.stderr
    (tmp_path / "credential.conf").write_text("[server]\nhost = localhost\n")
    no_port = ctl(tmp_path, "credential.conf", "status")
    assert no_port.returncode == 2 and "[server]" in no_port.stderr and "port" in no_port.stderr
    write_conf(tmp_path, free_port())
    (tmp_path / "passwords.txt").write_text("admin\n")
    bad = ctl(tmp_path, "credential.conf", "start")
    assert bad.returncode == 2 and "passwords.txt:1" in bad.stderr
    assert ctl(tmp_path, "credential.conf", "frobnicate").returncode == 2


def test_ctl_port_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        write_conf(tmp_path, taken.getsockname()[1])
        (tmp_path / "credential.conf").write_text(
            (tmp_path / "credential.conf").read_text().replace("localhost", "127.0.0.1")
        )
        started = ctl(tmp_path, "credential.conf", "startd")
    assert started.returncode == 2
    assert "cannot serve credentials on 127.0.0.1" in started.stderr


# -- a bench serving its own slice ---------------------------------------------------------


def test_bench_serves_its_slice_to_every_worker(tmp_path: Path) -> None:
    logins = Logins({f"user{i}": f"pw{i}" for i in range(12)})
    port = free_port()  # never opened: the bench serves the conf's host:port on a Unix socket
    with LocalServer(routes={"/login": logins}) as target:
        login_project(tmp_path, target.url, port, users=4, logins=12)
        run = subprocess.run(
            [str(BIN / "marteau"), "bench", "test_Login.py", "Login.test_login", "--workers", "2",
             "--credentials", "credential.conf", "--credential-slice", "1/3"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "* Credentials: http://localhost:" in run.stdout and "slice 1/3: 4 logins" in run.stdout
    by_user = logins.logins_by_user()
    assert len(by_user) == 4 and all(len(found) == 1 for found in by_user.values())
    used = set().union(*by_user.values())
    assert used == {"user1", "user4", "user7", "user10"}  # slice 1 of 3, one login each


def test_bench_credential_options_bad_input(tmp_path: Path) -> None:
    login_project(tmp_path, "http://127.0.0.1:9", free_port(), users=1, logins=1)
    for args, message in [
        (["--credential-slice", "1/2"], "--credential-slice needs --credentials"),
        (["--credentials", "credential.conf", "--credential-slice", "2/2"], "expected I/N"),
        (["--credentials", "missing.conf"], "missing.conf"),
    ]:
        run = subprocess.run(
            [str(BIN / "marteau"), "bench", "test_Login.py", "Login.test_login", *args],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert run.returncode == 2 and message in run.stderr, run.stderr


def test_a_run_ships_only_files_inside_the_test_directory(tmp_path: Path) -> None:
    from marteau.orchestration.prepare import credential_files
    from marteau.orchestration.project import load_config

    project_dir = tmp_path / "project"
    project_dir.mkdir()
    login_project(project_dir, "http://127.0.0.1:9", 22207, users=1, logins=3)
    (project_dir / ".marteau.yml").write_text(
        "script: test_Login.py\ntest: Login.test_login\ncredentials: credential.conf\n"
    )
    project = load_config(project_dir / ".marteau.yml")
    shipped = credential_files(project, tmp_path / "out")
    assert [p.name for p in shipped] == ["credential.conf", "passwords.txt", "groups.txt"]
    assert (tmp_path / "out" / "passwords.txt").read_text() == "user0:pw0\nuser1:pw1\nuser2:pw2\n"
    assert "credentials_path = .marteau-credentials/passwords.txt" in shipped[0].read_text()
    (tmp_path / "secret.txt").write_text("root:x\n")
    conf = project_dir / "credential.conf"
    conf.write_text(conf.read_text().replace("passwords.txt", "../secret.txt"))
    with pytest.raises(MarteauError, match=r"credentials_path: \.\./secret\.txt is outside"):
        credential_files(project, tmp_path / "out2")
    (project_dir / ".marteau.yml").write_text(
        "script: test_Login.py\ntest: Login.test_login\ncredentials: ../credential.conf\n"
    )
    with pytest.raises(MarteauError, match=r"\.marteau\.yml:3: key 'credentials'"):
        load_config(project_dir / ".marteau.yml")
