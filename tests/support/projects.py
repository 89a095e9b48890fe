"""Small load-test projects the tests write (a test file and its conf), and the
target a project expects: one copy each, so a change of format is made once."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

from tests.servers import Request, ok

TEST = """\
from funkload.FunkLoadTestCase import FunkLoadTestCase


class Tiny(FunkLoadTestCase):
    def test_get(self):
        self.get(self.conf_get("main", "url") + "/", description="root")
"""


CONF = """\
[main]
title=Tiny
description=One GET
url={url}

[test_get]
description=GET /

[ftest]
log_to = console file
log_path = tiny-test.log
result_path = tiny-test.xml

[bench]
cycles = 1:2
duration = 2
startup_delay = 0
sleep_time = 0
cycle_time = 0
log_to =
log_path = tiny-bench.log
result_path = tiny-bench.xml
sleep_time_min = 0.01
sleep_time_max = 0.01
"""


# Asks more users than a quota allows.
GREEDY_CONF = """
[main]
title=Greedy
description=Asks more users than its quota
url={url}

[test_get]
description=get

[bench]
cycles = 2
duration = 2
startup_delay = 0.01
sleep_time = 0.2
cycle_time = 0
log_to =
log_path = bench.log
result_path = bench.xml
sleep_time_min = 0.1
sleep_time_max = 0.1
"""


LOGIN_TEST = """\
import uuid

from funkload.FunkLoadTestCase import FunkLoadTestCase
from funkload.utils import xmlrpc_get_credential


class Login(FunkLoadTestCase):
    def test_login(self):
        if not hasattr(self, "vu"):  # once per virtual user: kept across its iterations
            self.vu = uuid.uuid4().hex
            self.login, self.password = xmlrpc_get_credential(
                self.conf_get("credential", "host"), self.conf_get("credential", "port")
            )
        self.setHeader("X-VU", self.vu)
        self.post(self.conf_get("main", "url") + "/login",
                  params=[["login", self.login], ["password", self.password]])
"""


LOGIN_CONF = """\
[main]
title=Login
description=Each user logs in with its own account
url={url}

[credential]
host=localhost
port={port}

[test_login]
description=POST /login

[bench]
cycles = {users}
duration = 2
startup_delay = 0
sleep_time = 0
cycle_time = 0
log_to =
log_path = login-bench.log
result_path = login-bench.xml
sleep_time_min = 0.05
sleep_time_max = 0.05
"""


class Logins:
    """The target: records which login each virtual user posted (refuses a bad password)."""

    def __init__(self, passwords: dict[str, str]) -> None:
        self.passwords = passwords
        self.seen: list[tuple[str, str]] = []  # (X-VU, login)

    def __call__(self, request: Request) -> tuple[int, list[tuple[str, str]], bytes]:
        form = dict(parse_qsl(request.body.decode()))
        if self.passwords.get(form.get("login", "")) != form.get("password"):
            return 403, [], b"bad login"
        self.seen.append((request.header("X-VU") or "", form["login"]))
        return ok("welcome")

    def logins_by_user(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for vu, login in self.seen:
            found.setdefault(vu, set()).add(login)
        return found


def login_project(directory: Path, url: str, port: int, users: int, logins: int) -> None:
    (directory / "test_Login.py").write_text(LOGIN_TEST)
    (directory / "Login.conf").write_text(LOGIN_CONF.format(url=url, port=port, users=users))
    (directory / "passwords.txt").write_text("".join(f"user{i}:pw{i}\n" for i in range(logins)))
    (directory / "credential.conf").write_text(
        f"[server]\nhost = localhost\nport = {port}\nloop_on_first_credentials = 0\n"
        "credentials_path = passwords.txt\n"
    )
