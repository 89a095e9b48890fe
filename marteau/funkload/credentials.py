"""FunkLoad's credential files and the logins they hand out (`fl-credential-ctl`'s data).

A credential conf is FunkLoad's: ``[server]`` with ``host`` (default
``localhost``), ``port``, ``credentials_path`` (``login:password`` lines),
``groups_path`` (optional, ``group:login1, login2`` lines; a group may span
several lines; logins without a password are skipped),
``loop_on_first_credentials`` (0: every login; N: each group keeps its first
N) and ``seq`` (the sequence's start), plus ``pid_path`` and ``log_path``.
Relative paths are relative to the current directory, as in FunkLoad.

The files are user data: they are read with a size bound, never executed or
templated, and a bad line is an error naming the file and line (FunkLoad
crashed on it).  `CredentialSet.slice` gives node *i* of *n* every *n*-th
login of the password file and of each group, so that the nodes of a
distributed run never hand out the same login (docs/funkload-compatibility.md).
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from marteau.errors import MarteauError

SERVER_NAME = "file_credential"  # FunkLoad's: the default pid and log file names
DEFAULT_HOST = "localhost"
MAX_FILE_BYTES = 16 * 1024 * 1024  # a credential or group file larger than this is refused
# A host to bind: a name or an IPv4/IPv6 literal, nothing a conf line could smuggle.
HOST = re.compile(r"^[A-Za-z0-9._-]{1,253}$|^[0-9A-Fa-f:.]{2,45}$")


@dataclass
class CredentialSet:
    """The logins of a password file, its groups (None: every login) and the sequence."""

    passwords: dict[str, str] = field(default_factory=dict)
    groups: dict[str | None, list[str]] = field(default_factory=dict)
    seq: int = 0

    def slice(self, index: int, count: int) -> CredentialSet:
        """Node ``index`` of ``count``: every ``count``-th login of each group, from ``index``."""
        if not 0 <= index < count:
            raise MarteauError(f"credential slice {index}/{count}: expected 0 <= index < count")
        groups = {name: users[index::count] for name, users in self.groups.items()}
        kept = set(groups.get(None, [])).union(*groups.values())
        passwords = {user: pwd for user, pwd in self.passwords.items() if user in kept}
        return CredentialSet(passwords, groups, self.seq)


@dataclass
class CredentialConf:
    """The ``[server]`` section of a credential conf, paths resolved."""

    path: str
    host: str
    port: int
    credentials_path: str
    groups_path: str | None
    loop_on_first: int
    seq: int
    pid_path: str
    log_path: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def load(self) -> CredentialSet:
        return load_credentials(
            self.credentials_path, self.groups_path, self.loop_on_first, self.seq
        )


def read_conf(path: str) -> CredentialConf:
    """The credential conf at ``path``; MarteauError naming the file and key."""
    from marteau.funkload.config import REQUIRED, FunkLoadConfig

    conf = FunkLoadConfig(os.path.abspath(path))
    if conf.path.startswith("Missing: "):
        raise MarteauError(f"{path}: no such credential server configuration file")

    def get(key: str, default: str = REQUIRED) -> str:
        return str(conf.get("server", key, default)).strip()

    def integer(key: str, default: str = REQUIRED) -> int:
        value = get(key, default)
        try:
            return int(value or "")
        except ValueError:
            raise MarteauError(
                f"{path}: [server] {key}: expected an integer, got {value!r}"
            ) from None

    host = get("host", DEFAULT_HOST) or DEFAULT_HOST
    if not HOST.match(host):
        raise MarteauError(f"{path}: [server] host: not a host name or address: {host!r}")
    port = integer("port")
    if not 0 < port < 65536:
        raise MarteauError(f"{path}: [server] port: expected 1-65535, got {port}")
    credentials = get("credentials_path")
    groups = get("groups_path", "")
    loop_on_first = integer("loop_on_first_credentials")
    if loop_on_first < 0:
        raise MarteauError(f"{path}: [server] loop_on_first_credentials: expected 0 or more")
    return CredentialConf(
        path=path,
        host=host,
        port=port,
        credentials_path=credentials,
        groups_path=groups or None,
        loop_on_first=loop_on_first,
        seq=integer("seq", "0"),
        pid_path=get("pid_path", SERVER_NAME + ".pid") or SERVER_NAME + ".pid",
        log_path=get("log_path", SERVER_NAME + ".log") or SERVER_NAME + ".log",
    )


def _lines(path: str) -> list[tuple[int, str]]:
    """The file's meaningful lines, numbered: blanks and ``#`` comments dropped."""
    file = Path(path)
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            raise MarteauError(f"{path}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
        text = file.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise MarteauError(f"{path}: cannot read: {exc.strerror or exc}") from None
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            found.append((number, line))
    return found


def _pair(path: str, number: int, line: str, expected: str) -> tuple[str, str]:
    """``name:rest`` split at its first colon; an error naming the line without one."""
    name, sep, rest = line.partition(":")
    name = name.strip()
    if not sep or not name:
        raise MarteauError(f"{path}:{number}: expected {expected}, got {line[:80]!r}")
    return name, rest


def load_credentials(
    credentials_path: str, groups_path: str | None = None, loop_on_first: int = 0, seq: int = 0
) -> CredentialSet:
    """Read a password file and an optional group file as FunkLoad's file server did."""
    passwords: dict[str, str] = {}
    everyone: list[str] = []
    for number, line in _lines(credentials_path):
        user, password = _pair(credentials_path, number, line, "login:password")
        passwords[user] = password.strip()
        if (not loop_on_first or len(everyone) < loop_on_first) and user not in everyone:
            everyone.append(user)
    groups: dict[str | None, list[str]] = {None: everyone}
    if groups_path:
        for number, line in _lines(groups_path):
            name, users = _pair(groups_path, number, line, "group:login1, login2")
            members = groups.setdefault(name, [])
            for user in filter(None, (u.strip() for u in users.split(","))):
                if loop_on_first and len(members) >= loop_on_first:
                    break
                if user in passwords and user not in members:
                    members.append(user)
    return CredentialSet(passwords, groups, seq)


class CredentialStore:
    """The RPC methods of FunkLoad's file credential server, safe across threads."""

    def __init__(self, credentials: CredentialSet) -> None:
        self.credentials = credentials
        self._served: dict[str | None, int] = {}
        self._lock = threading.Lock()

    def _group(self, group: str | None) -> list[str]:
        users = self.credentials.groups.get(group)
        if users is None:
            raise ValueError(f"no group {group!r}")
        return users

    def getCredential(self, group: str | None = None) -> list[str]:  # noqa: N802 (RPC name)
        """``[login, password]``: the group's logins in turn, starting again after the last."""
        users = self._group(group)
        if not users:
            raise ValueError(f"No users for group {group}")
        with self._lock:
            count = self._served.get(group, 0)
            self._served[group] = count + 1
        user = users[count % len(users)]
        return [user, self.credentials.passwords[user]]

    def listCredentials(self, group: str | None = None) -> list:  # noqa: N802 (RPC name)
        """Every login of the password file, or a group's ``[login, password]`` pairs."""
        if group is None:
            return list(self.credentials.passwords)
        return [[user, self.credentials.passwords[user]] for user in self._group(group)]

    def listGroups(self) -> list[str]:  # noqa: N802 (RPC name)
        return [name for name in self.credentials.groups if name]

    def getSeq(self) -> int:  # noqa: N802 (RPC name)
        """The sequence, incremented first (the first call gives ``seq + 1``)."""
        with self._lock:
            self.credentials.seq += 1
            return self.credentials.seq


def write_credentials(credentials: CredentialSet, passwords_path: Path, groups_path: Path) -> None:
    """The set back in FunkLoad's two formats (what `load_credentials` reads again)."""
    passwords_path.write_text(
        "".join(f"{user}:{pwd}\n" for user, pwd in credentials.passwords.items()), encoding="utf-8"
    )
    groups_path.write_text(
        "".join(
            f"{name}:{', '.join(users)}\n" for name, users in credentials.groups.items() if name
        ),
        encoding="utf-8",
    )
