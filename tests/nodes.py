"""Real SSH nodes on this machine for the orchestration tests.

Each node is one Unix user with its own sshd on its own loopback address
(127.0.0.2, .3, .4 for the default three; ``NodeSet(count=N)`` makes N, on
127.0.0.2 to .N+1; one port for all), its own host key and key-only login.
Each node user has passwordless sudo (a file in /etc/sudoers.d), as a node
that isolates jobs needs; `Node.revoke_sudo()` makes a team-server node.
The controller gets a client key, a generated ``known_hosts`` and an
inventory file. Everything lives under one short directory (ssh control
sockets must stay under 108 characters) and is removed by ``down()``.

Setup is idempotent: ``up()`` first tears down whatever a crashed earlier
session left (its sshd by pid file, its users), then builds afresh. Needs
root and ``/usr/sbin/sshd`` (Debian's ``openssh-server``).

Run by hand: ``python -m tests.nodes up [N]`` / ``python -m tests.nodes down [N]``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SUDOERS = Path("/etc/sudoers.d")
BASE = Path(os.environ.get("MARTEAU_TEST_NODES_DIR", "/tmp/mtn"))
# Another prefix and directory (MARTEAU_TEST_NODES_PREFIX/_DIR) give a second,
# independent node set, e.g. for trying things by hand while the suite runs.
PREFIX = os.environ.get("MARTEAU_TEST_NODES_PREFIX", "mtnode")
FIRST_PORT = 22022


def address(index: int) -> str:
    """The loopback address of node `index` (from 1): 127.0.0.2, .3, ..."""
    return f"127.0.0.{index + 1}"


def _processes() -> list[tuple[int, int, int, str]]:
    """(pid, ppid, uid, cmdline) of every process, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            uid = entry.stat().st_uid
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        found.append((int(entry.name), ppid, uid, cmdline.strip()))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _kill_all(pids: list[int], timeout: float = 5) -> None:
    """SIGKILL `pids` (ours, by id) and wait until they are gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)


def available() -> str | None:
    """Why the nodes cannot be built here, or None when they can."""
    if os.geteuid() != 0:
        return "sshd test nodes need root"
    if not Path(SSHD).exists():
        return f"{SSHD} is missing (apt-get install openssh-server)"
    if not shutil.which("ssh-keygen") or not shutil.which("useradd"):
        return "ssh-keygen or useradd is missing"
    if not shutil.which("sudo"):
        return "sudo is missing (apt-get install sudo)"
    return None


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, capture_output=True, text=True)


def _port_free(port: int, addresses: list[str]) -> bool:
    for host in addresses:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@dataclass
class Node:
    """One sshd node: a user, an address, a private sshd."""

    name: str
    address: str
    port: int
    directory: Path

    @property
    def config(self) -> Path:
        return self.directory / "sshd_config"

    @property
    def pidfile(self) -> Path:
        return self.directory / "sshd.pid"

    @property
    def log(self) -> Path:
        return self.directory / "sshd.log"

    @property
    def home(self) -> Path:
        return Path(pwd.getpwnam(self.name).pw_dir)

    def sshd_pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid) else None

    def start(self) -> None:
        """Start this node's sshd (no-op when it runs) and wait until it listens."""
        if self.sshd_pid() is None:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
            _run(SSHD, "-f", str(self.config), "-E", str(self.log))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.address, self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"sshd of {self.name} does not listen on {self.address}:{self.port}")

    def kill_sshd(self) -> None:
        """Kill this node's sshd and every session it serves (the node "dies" for ssh)."""
        pid = self.sshd_pid()
        if pid is None:
            return
        table = _processes()
        doomed, frontier = [pid], [pid]
        while frontier:
            parent = frontier.pop()
            children = [p for p, ppid, _, _ in table if ppid == parent]
            doomed += children
            frontier += children
        _kill_all(doomed)
        self.pidfile.unlink(missing_ok=True)

    def uid(self) -> int:
        return pwd.getpwnam(self.name).pw_uid

    def processes(self) -> list[tuple[int, str]]:
        """(pid, cmdline) of the processes running as this node's user."""
        uid = self.uid()
        return [(pid, cmd) for pid, _, puid, cmd in _processes() if puid == uid]

    @property
    def sudoers(self) -> Path:
        return SUDOERS / f"marteau-test-{self.name}"

    def grant_sudo(self) -> None:
        """Passwordless sudo for this node's user (what job isolation needs)."""
        self.sudoers.write_text(f"{self.name} ALL=(ALL:ALL) NOPASSWD: ALL\n")
        self.sudoers.chmod(0o440)

    def revoke_sudo(self) -> None:
        self.sudoers.unlink(missing_ok=True)

    def job_users(self) -> list[pwd.struct_passwd]:
        """The job users this node's jobs made (their homes are under its home)."""
        home = f"{self.home}/"
        return [entry for entry in pwd.getpwall() if entry.pw_dir.startswith(home)]

    def bench_log(self) -> str:
        """The bench's console of the job running on this node (empty when none)."""
        logs = list((self.home / ".marteau" / "jobs").glob("*/bench.log"))
        return logs[0].read_text() if logs else ""

    def job_processes(self) -> list[tuple[int, str]]:
        """(pid, cmdline) of the processes of this node's job users."""
        uids = {entry.pw_uid for entry in self.job_users()}
        return [(pid, cmd) for pid, _, puid, cmd in _processes() if puid in uids]

    def remove_job_users(self) -> None:
        """Kill the job users' processes and delete them (after a test)."""
        _kill_all([pid for pid, _ in self.job_processes()])
        for entry in self.job_users():
            subprocess.run(["userdel", "--remove", entry.pw_name], capture_output=True)

    def write_config(self, port: int, host_key: Path, authorized: Path, *extra: str) -> None:
        """This node's sshd_config; `extra` lines (e.g. ``SetEnv HOME=...``) go last."""
        self.config.write_text(
            "\n".join(
                [
                    f"ListenAddress {self.address}:{port}",
                    f"HostKey {host_key}",
                    f"PidFile {self.pidfile}",
                    f"AuthorizedKeysFile {authorized}",
                    f"AllowUsers {self.name}",
                    "UsePAM no",
                    "StrictModes no",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin no",
                    "MaxStartups 100",
                    "MaxSessions 100",
                    "Subsystem sftp internal-sftp",
                    *extra,
                    "",
                ]
            )
        )

    def restart(self, *extra: str) -> None:
        """Restart this node's sshd with `extra` config lines (none: the usual config)."""
        self.kill_sshd()
        self.write_config(
            self.port,
            self.directory / "ssh_host_ed25519_key",
            self.directory.parent / "authorized_keys",
            *extra,
        )
        self.start()

    def bench_processes(self) -> list[tuple[int, str]]:
        """This node's processes that are part of a bench (``marteau bench``), its
        job users' included."""
        return [
            (pid, cmd)
            for pid, cmd in self.processes() + self.job_processes()
            if "bench" in cmd and "marteau" in cmd and not cmd.startswith("sshd")
        ]

    def kill_processes(self) -> None:
        """Kill every process of this node's user (by pid, after a test)."""
        _kill_all([pid for pid, _ in self.processes()])


@dataclass
class NodeSet:
    """The test nodes (three by default), their client key, known_hosts and inventory."""

    base: Path = BASE
    prefix: str = PREFIX
    port: int = 0
    nodes: list[Node] = field(default_factory=list)
    count: int = 3

    @property
    def key(self) -> Path:
        return self.base / "client" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.base / "client" / "known_hosts"

    @property
    def inventory(self) -> Path:
        return self.base / "inventory.ini"

    def names(self) -> list[str]:
        return [node.name for node in self.nodes]

    @property
    def users(self) -> tuple[str, ...]:
        return tuple(f"{self.prefix}{i}" for i in range(1, self.count + 1))

    @property
    def addresses(self) -> list[str]:
        return [address(i) for i in range(1, self.count + 1)]

    def claim(self) -> NodeSet:
        """Take this node set for this process; if another live process (a
        concurrent test session) holds it, switch to a node set of our own."""
        import fcntl

        handle = open(f"{self.base}.lock", "a")  # noqa: SIM115 - held for the process's life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            self.prefix = f"mt{os.getpid() % 100000}n"
            self.base = Path(f"/tmp/{self.prefix}")
            return self
        self._claim = handle
        return self

    def up(self) -> NodeSet:
        self.down()
        self.port = next(
            p for p in range(FIRST_PORT, FIRST_PORT + 200) if _port_free(p, self.addresses)
        )
        self.base.mkdir(mode=0o755, parents=True)
        (self.base / "client").mkdir(mode=0o700)
        _run(
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "marteau-tests",
            "-f",
            str(self.key),
        )
        authorized = self.base / "authorized_keys"
        authorized.write_text(self.key.with_suffix(".pub").read_text())
        authorized.chmod(0o644)
        known = []
        for index, (user, host) in enumerate(zip(self.users, self.addresses, strict=True), 1):
            node = Node(user, host, self.port, self.base / f"node{index}")
            node.directory.mkdir(mode=0o755)
            if not _user_exists(user):
                _run("useradd", "--create-home", "--shell", "/bin/sh", "-p", "*", user)
            host_key = node.directory / "ssh_host_ed25519_key"
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key))
            node.write_config(self.port, host_key, authorized)
            node.grant_sudo()
            public = host_key.with_suffix(".pub").read_text().split()
            known.append(f"[{host}]:{self.port} {public[0]} {public[1]}")
            self.nodes.append(node)
        self.known_hosts.write_text("\n".join(known) + "\n")
        for node in self.nodes:
            node.start()
        self.write_inventory(self.inventory)
        return self

    def write_inventory(self, path: Path, group: str = "nodes", **host_vars: str) -> Path:
        """An Ansible inventory of the nodes in `group` (extra `host_vars` for every node)."""
        lines = [f"[{group}]"]
        for node in self.nodes:
            extra = "".join(f" {k}={v}" for k, v in host_vars.items())
            lines.append(f"{node.name} ansible_host={node.address} ansible_user={node.name}{extra}")
        lines += [
            "",
            f"[{group}:vars]",
            f"ansible_port={self.port}",
            f"ansible_ssh_private_key_file={self.key}",
            f"ansible_ssh_common_args='-o UserKnownHostsFile={self.known_hosts}'",
            "ansible_python_interpreter=/usr/bin/python3",
            "",
        ]
        path.write_text("\n".join(lines))
        return path

    def ssh(self, node: Node, command: str, timeout: float = 20) -> subprocess.CompletedProcess:
        """Run `command` on `node` over ssh, as the controller would."""
        return subprocess.run(
            [
                "ssh",
                "-i",
                str(self.key),
                "-p",
                str(self.port),
                "-o",
                f"UserKnownHostsFile={self.known_hosts}",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                f"{node.name}@{node.address}",
                command,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def down(self) -> None:
        """Stop every sshd, kill the users' processes, remove users and files."""
        for index, user in enumerate(self.users, 1):
            node = Node(user, address(index), self.port, self.base / f"node{index}")
            node.kill_sshd()
            node.revoke_sudo()
            if _user_exists(user):
                node.remove_job_users()
                node.kill_processes()
                subprocess.run(["userdel", "--remove", user], capture_output=True)
        self.nodes = []
        if self.base.exists():
            shutil.rmtree(self.base)


def main(argv: list[str]) -> int:
    action = argv[1] if len(argv) > 1 else "up"
    count = int(argv[2]) if len(argv) > 2 else 3
    if action == "up":
        started = time.monotonic()
        nodes = NodeSet(count=count).claim()
        if nodes.base != BASE:
            print(f"{BASE} is in use by a test session", file=sys.stderr)
            return 1
        nodes.up()
        print(f"{len(nodes.nodes)} nodes up in {time.monotonic() - started:.2f}s")
        print(f"inventory: {nodes.inventory}")
    elif action == "down":
        started = time.monotonic()
        NodeSet(count=count).down()
        print(f"nodes down in {time.monotonic() - started:.2f}s")
    else:
        print("usage: python -m tests.nodes up|down [N]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main(sys.argv))
