"""Each job on a node runs as its own throwaway Unix user (real sshd nodes with sudo).

The bench runs as the job user (the target sees its uid); the user, its processes
and its files are gone after the run, after a cancel and when a later job takes
over an expired lock; a test cannot plant a `.pth` in the shared virtualenv for
the next job; a test's `deps` live in its job's own virtualenv and go with it; the
egress firewall holds the job user's own sockets to the allowed hosts (removed, its
drop count read, before the user goes: at the bench's end and on cancel); a node
without sudo still runs jobs and says they are not isolated; a node account whose
$HOME is not its passwd home works.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.nodes import NodeSet
from tests.servers import LocalServer, ok
from tests.support.commands import MARTEAU
from tests.support.firewall import call as firewall
from tests.support.firewall import table
from tests.support.node_runs import (
    POOL,
    assert_nodes_clean,
    lock_file,
    marteau_run,
    plant_lock,
    run_dir_of,
)
from tests.support.projects import CONF, TEST

MARKER = "/tmp/marteau-isolation-pwned"

ATTACK = f"""\
import os
import sys
from urllib.parse import urlencode

from funkload.FunkLoadTestCase import FunkLoadTestCase

PAYLOAD = "import pathlib; pathlib.Path({MARKER!r}).write_text('next job ran me')\\n"


def plant(path):
    try:
        with open(path, "w") as handle:
            handle.write(PAYLOAD)
    except OSError as exc:
        return type(exc).__name__
    return "written"


class Tiny(FunkLoadTestCase):
    def test_get(self):
        shared = next(p for p in sys.path if p.endswith("site-packages"))
        outcome = {{
            "uid": os.getuid(),
            "shared": plant(os.path.join(shared, "zz-marteau-attack.pth")),
            "home": plant(os.path.expanduser("~/attack.pth")),
            "tmp": plant(f"/tmp/marteau-attack-{{os.getuid()}}"),
        }}
        self.get(self.conf_get("main", "url") + "/probe?" + urlencode(outcome), description="probe")
"""


# A test whose setUpBench opens its own socket (the engine's --allow-host never sees
# it) to a port it was not allowed.
ESCAPE = """\
import socket

from funkload.FunkLoadTestCase import FunkLoadTestCase


class Tiny(FunkLoadTestCase):
    def setUpBench(self):
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=0.5).close()
            print("escape: connected")
        except OSError as exc:
            print("escape:", type(exc).__name__)

    def test_get(self):
        self.get(self.conf_get("main", "url") + "/", description="root")
"""

# A test that says where `six` comes from (or why it cannot import it).
IMPORTS_SIX = """\
from funkload.FunkLoadTestCase import FunkLoadTestCase


class Tiny(FunkLoadTestCase):
    def test_get(self):
        try:
            import six
            where = six.__file__
        except ImportError as exc:
            where = type(exc).__name__
        self.get(self.conf_get("main", "url") + "/probe?six=" + where, description="probe")
"""


@pytest.fixture(scope="module")
def target():
    with LocalServer(routes={"/": lambda r: ok("hello"), "/probe": lambda r: ok("seen")}) as server:
        yield server


def make_project(root: Path, url: str, test: str | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "loadtest.py").write_text(test or TEST)
    (root / "Tiny.conf").write_text(CONF.format(url=url))
    (root / ".marteau.yml").write_text("name: Tiny\nscript: loadtest.py\ntest: Tiny.test_get\n")
    return root


def probes(server: LocalServer) -> list[dict[str, str]]:
    found = []
    for request in list(server.requests):
        parts = urlsplit(request.path)
        if parts.path == "/probe":
            found.append({k: v[0] for k, v in parse_qs(parts.query).items()})
    return found


def shared_site_packages(node) -> Path:
    (site,) = (node.home / ".marteau" / "venv" / "lib").glob("python*/site-packages")
    return site


def named(project: Path, node) -> Path:
    config = project / ".marteau.yml"
    config.write_text(config.read_text().split("nodes:")[0] + f"nodes: [{node.name}]\n")
    return project


def test_jobs_run_as_their_own_user_and_cannot_plant_code_for_the_next(
    nodes: NodeSet, inventory: Path, target: LocalServer, tmp_path: Path
) -> None:
    Path(MARKER).unlink(missing_ok=True)
    target.requests.clear()
    attack = make_project(tmp_path / "attack", target.url, ATTACK)
    run = marteau_run(attack, inventory, tmp_path / "a", "--nodes", "3", "-c", "1", "-D", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    seen = probes(target)
    assert seen, "the attack's test never reported"
    node_uids = {node.uid() for node in nodes.nodes}
    uids = {int(p["uid"]) for p in seen}
    assert len(uids) == 3 and not uids & node_uids, (uids, node_uids)
    assert {p["shared"] for p in seen} == {"PermissionError"}
    assert {p["home"] for p in seen} == {p["tmp"] for p in seen} == {"written"}
    for node in nodes.nodes:
        assert not (shared_site_packages(node) / "zz-marteau-attack.pth").exists()
    for uid in uids:
        assert not Path(f"/tmp/marteau-attack-{uid}").exists(), "a job's /tmp file stayed"
    assert_nodes_clean(nodes)  # no job user left (a freed uid may be reused at once)

    target.requests.clear()
    plain = make_project(tmp_path / "plain", target.url)
    again = marteau_run(plain, inventory, tmp_path / "b", "--nodes", "3", "-c", "1", "-D", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert not Path(MARKER).exists(), "the next job ran the attack's code"
    assert_nodes_clean(nodes)


def test_cancel_removes_the_job_users_firewall_then_the_user_and_its_processes(
    nodes: NodeSet, inventory: Path, target: LocalServer, tmp_path: Path
) -> None:
    """stop.yml finds each node's job user, removes its egress firewall (the drop
    count reaches run.json) and then the user."""
    import signal

    with LocalServer(routes={"/": lambda r: ok("never")}) as other:
        test = ESCAPE.format(port=other.port)
        project = make_project(tmp_path / "p", target.url, test)
        command = [MARTEAU, "run", str(project), "-i", str(inventory), "--pool", POOL, "--plain"]
        command += ["--allow-host", f"127.0.0.1:{target.port}"]
        (tmp_path / "c").mkdir()
        run = subprocess.Popen(
            [*command, "--nodes", "3", "-c", "2", "-D", "30", "--bench-timeout", "120"],
            cwd=tmp_path / "c",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 120
            while not all("escape:" in node.bench_log() for node in nodes.nodes):
                assert time.monotonic() < deadline, "no bench tried its own socket"
                time.sleep(0.2)
            users = {entry.pw_name: entry.pw_uid for n in nodes.nodes for entry in n.job_users()}
            assert len(users) == 3 and {f"job_{uid}" for uid in users.values()} <= job_chains()
            run.send_signal(signal.SIGINT)
            out, err = run.communicate(timeout=120)
        finally:
            if run.poll() is None:
                run.kill()
    assert run.returncode == 128 + signal.SIGINT, out + err
    assert not other.requests
    assert all(node.job_processes() == [] for node in nodes.nodes)
    for name, uid in users.items():
        with pytest.raises(KeyError):
            pwd.getpwnam(name)
        assert_chain_went_with(name, uid)
    warnings = json.loads((run_dir_of(out) / "run.json").read_text())["warnings"]
    for node in nodes.nodes:
        assert any(
            w.startswith(f"node {node.name}: the egress firewall dropped ")
            and "(to 127.0.0.1)" in w
            for w in warnings
        ), warnings
    assert_nodes_clean(nodes)


def job_chains() -> set[str]:
    """The job chains of this machine's egress firewall (other tests may add theirs)."""
    return set(re.findall(r"chain (job_\d+)", table()))


def assert_chain_went_with(name: str, uid: int) -> None:
    """The deleted job user `name`'s firewall chain went too. A freed uid is reused at
    once, so a chain of that uid may be another test's live job: its user then exists
    under another name (a job adds its user before its chain and removes it after)."""
    if f"job_{uid}" in job_chains():
        owner = pwd.getpwuid(uid).pw_name if uid_exists(uid) else None
        assert owner not in (None, name), f"job_{uid} stayed after {name} went"


def uid_exists(uid: int) -> bool:
    """Whether a user has this uid (a job user is deleted with its job)."""
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def test_the_firewall_holds_the_job_users_own_sockets_to_the_allowed_hosts(
    nodes: NodeSet, inventory: Path, target: LocalServer, tmp_path: Path
) -> None:
    """`--allow-host 127.0.0.1:<target>`: the bench loads the target; the test's own
    socket to another local port is dropped and counted, on every node."""
    target.requests.clear()
    chains = job_chains()
    with LocalServer(routes={"/": lambda r: ok("never")}) as other:
        project = make_project(tmp_path / "p", target.url, ESCAPE.format(port=other.port))
        run = marteau_run(
            project, inventory, tmp_path / "r", "--nodes", "3", "-c", "1", "-D", "1",
            "--allow-host", f"127.0.0.1:{target.port}",
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        assert target.requests and not other.requests
    run_dir = run_dir_of(run.stdout)
    provenance = json.loads((run_dir / "run.json").read_text())
    assert sorted(provenance["firewall"]) == nodes.names()
    (summary,) = (run_dir / "report").rglob("summary.json")
    warnings = json.loads(summary.read_text())["warnings"]
    for node in nodes.nodes:
        dropped = provenance["firewall"][node.name]
        assert dropped["dropped"] >= 1 and dropped["destinations"] == ["127.0.0.1"]
        warning = (
            f"node {node.name}: the egress firewall dropped {dropped['dropped']} packet(s) "
            "the job sent outside its allowed hosts (to 127.0.0.1): test code opened "
            "connections of its own"
        )
        assert warning in warnings and warning in provenance["warnings"]
        log = (run_dir / "results" / node.name / "bench.log").read_text()
        assert "escape: TimeoutError" in log, log
    # every job's rules went with its user: a chain left since is another test's live job
    left = [int(chain[4:]) for chain in job_chains() - chains]
    assert all(uid_exists(uid) for uid in left), left
    assert_nodes_clean(nodes)


def test_deps_live_in_the_jobs_own_virtualenv_and_go_with_it(
    nodes: NodeSet, inventory: Path, target: LocalServer, tmp_path: Path
) -> None:
    """`deps: [six]`: installed from the job's own wheels into `<job>/venv` (never
    into the shared virtualenv); the next job does not see it."""
    target.requests.clear()
    node = nodes.nodes[0]
    project = named(make_project(tmp_path / "p", target.url, IMPORTS_SIX), node)
    config = project / ".marteau.yml"
    config.write_text(config.read_text() + "deps: [six]\n")
    run = marteau_run(project, inventory, tmp_path / "a", "-c", "1", "-D", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    (seen,) = {tuple(sorted(p.items())) for p in probes(target)}
    found = dict(seen)
    job_venv = f"{node.home}/.marteau/jobs/{json_job(run.stdout)}/venv/"
    assert found["six"].startswith(job_venv), found
    assert not list(shared_site_packages(node).glob("six*")), "six reached the shared venv"

    target.requests.clear()
    plain = named(make_project(tmp_path / "q", target.url, IMPORTS_SIX), node)
    again = marteau_run(plain, inventory, tmp_path / "b", "-c", "1", "-D", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert {p["six"] for p in probes(target)} == {"ModuleNotFoundError"}
    assert_nodes_clean(nodes)


def json_job(output: str) -> str:
    return json.loads((run_dir_of(output) / "run.json").read_text())["job"]


@pytest.mark.parametrize("how", ["takeover", "forced unlock"])
def test_a_dead_jobs_user_goes_at_the_takeover_or_a_forced_unlock(
    nodes: NodeSet, inventory: Path, target: LocalServer, tmp_path: Path, how: str
) -> None:
    """A job whose controller died left its user, a process and its egress firewall:
    the next job that takes the node over (its lock expired), or `marteau nodes
    unlock --force`, removes the three (the firewall first: a new job user may get
    the same uid)."""
    node = nodes.nodes[0]
    expires = 2 if how == "takeover" else time.time() + 3600
    plant_lock(node, job="dead-job", owner="ghost@nowhere", taken=1, expires=expires)
    name = "mj" + hashlib.sha256(f"{node.uid()}:dead-job".encode()).hexdigest()[:12]
    registry = node.home / ".marteau" / "job-users"
    registry.mkdir(mode=0o700, exist_ok=True)
    (registry / name).write_text("dead-job")
    home = node.home / ".marteau" / "jobs" / "dead-job" / "home"
    home.parent.mkdir(parents=True, exist_ok=True)  # the node user's, as a job made them
    for path in (registry, registry / name, home.parent.parent, home.parent):
        os.chown(path, node.uid(), node.uid())
    subprocess.run(
        ["useradd", "--create-home", "--home-dir", str(home), "--user-group", name], check=True
    )
    uid = pwd.getpwnam(name).pw_uid
    assert firewall(tmp_path, uid=uid, allow=["127.0.0.1:9"])["changed"]
    left = subprocess.Popen(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                             "sleep", "300"])  # fmt: skip
    try:
        if how == "takeover":
            project = named(make_project(tmp_path / "p", target.url), node)
            run = marteau_run(project, inventory, tmp_path / "r", "-c", "1", "-D", "1")
            assert run.returncode == 0, run.stdout + run.stderr
            assert "took over the expired lock of job dead-job" in run.stdout
        else:
            command = [MARTEAU, "nodes", "unlock", "-i", str(inventory), "--pool", POOL]
            unlock = subprocess.run(
                [*command, "--force", node.name], capture_output=True, text=True, timeout=120
            )
            assert unlock.returncode == 0, unlock.stdout + unlock.stderr
            assert not lock_file(node).exists()
        assert left.wait(timeout=30) == -9, "the dead job's process survived"
        with pytest.raises(KeyError):
            pwd.getpwnam(name)
        assert not (registry / name).exists()
        assert_chain_went_with(name, uid)
    finally:
        if not uid_exists(uid) or pwd.getpwuid(uid).pw_name == name:  # else another job's
            firewall(tmp_path, uid=uid, state="absent")
        if left.poll() is None:
            left.kill()
            left.wait()
        subprocess.run(["userdel", "--remove", name], capture_output=True)
        shutil.rmtree(home.parent, ignore_errors=True)
    assert_nodes_clean(nodes)


def test_a_node_without_sudo_runs_jobs_and_says_they_are_not_isolated(
    nodes: NodeSet, inventory: Path, target: LocalServer, tmp_path: Path
) -> None:
    node = nodes.nodes[2]
    node.revoke_sudo()
    target.requests.clear()
    try:
        checked = subprocess.run(
            [MARTEAU, "nodes", "check", "-i", str(inventory), "--pool", POOL],
            capture_output=True,
            text=True,
            timeout=120,
        )
        project = named(make_project(tmp_path / "p", target.url, ATTACK), node)
        run = marteau_run(project, inventory, tmp_path / "r", "-c", "1", "-D", "1")
    finally:
        node.grant_sudo()
        (shared_site_packages(node) / "zz-marteau-attack.pth").unlink(missing_ok=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{node.name}: jobs isolated: no: no passwordless sudo" in checked.stdout
    for other in nodes.nodes[:2]:
        assert f"{other.name}: jobs isolated: yes (sudo)" in checked.stdout
    assert run.returncode == 0, run.stdout + run.stderr
    seen = probes(target)
    assert {int(p["uid"]) for p in seen} == {node.uid()}
    assert {p["shared"] for p in seen} == {"written"}, "without sudo the venv is the node user's"
    assert_nodes_clean(nodes)


def test_a_node_user_whose_home_is_elsewhere_runs(
    nodes: NodeSet, inventory: Path, target: LocalServer, tmp_path: Path
) -> None:
    """$HOME is not the passwd home (issue 13: `wheelhouse.tar: Cannot open`)."""
    node = nodes.nodes[1]
    elsewhere = Path(f"/tmp/{node.name}-home")
    shutil.rmtree(elsewhere, ignore_errors=True)
    elsewhere.mkdir(mode=0o755)
    os.chown(elsewhere, node.uid(), node.uid())
    node.restart(f"SetEnv HOME={elsewhere}")
    try:
        assert nodes.ssh(node, "echo $HOME").stdout.strip() == str(elsewhere)
        project = named(make_project(tmp_path / "p", target.url), node)
        run = marteau_run(project, inventory, tmp_path / "r", "-c", "1", "-D", "1")
        assert run.returncode == 0, run.stdout + run.stderr
        assert (elsewhere / ".marteau" / "venv" / "bin" / "marteau").exists()
        assert json.loads((run_dir_of(run.stdout) / "run.json").read_text())["completed"] == [
            node.name
        ]
        assert not (elsewhere / ".marteau" / "lock.json").exists()
        assert not lock_file(node).exists()
    finally:
        node.restart()
        node.kill_processes()
        shutil.rmtree(elsewhere, ignore_errors=True)
