"""Public mode keeps test code off the service's machine and its secrets out of jobs.

* `marteau serve --public` makes no `localhost` node, refuses to start while an
  enabled node has a local connection, and refuses to add or enable one;
* a job's environment is an allow-list: the worker's secrets (the admin password,
  settings such as the SMTP password and the database URL) reach neither `marteau
  run` nor ansible-runner nor the test, checked with a real job whose test sends its
  `os.environ` to a local target server;
* the users-per-node quota is enforced by the node (`--max-users`) even when the
  test's code asks for more users than its conf;
* `--public` starts with the default quotas of docs/service.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs

import pytest

pytest.importorskip("fastapi")

from marteau.results import load  # noqa: E402
from marteau.service import hosts  # noqa: E402
from marteau.service.accounts import create_user  # noqa: E402
from marteau.service.db import Database, upgrade  # noqa: E402
from marteau.service.job_runs import run_arguments  # noqa: E402
from marteau.service.models import Job, Node  # noqa: E402
from marteau.service.node_pool import check_now  # noqa: E402
from marteau.service.scheduler import ISOLATED, Claim  # noqa: E402
from marteau.service.settings import PUBLIC_QUOTAS, Settings, load_settings  # noqa: E402
from tests.nodes import NodeSet  # noqa: E402
from tests.servers import LocalServer, Request, ok  # noqa: E402
from tests.service_helpers import (  # noqa: E402
    ADMIN,
    ADMIN_PASSWORD,
    MARTEAU,
    ROOT,
    Service,
    make_project,
    queue_job,
    run_queue,
    service_env,
)
from tests.support.projects import GREEDY_CONF  # noqa: E402

SECRETS = {
    "MARTEAU_ADMIN_PASSWORD": "secret-admin-password-1",
    "MARTEAU_SMTP_PASSWORD": "secret-smtp-password-2",
    "MARTEAU_DATABASE_URL": "postgresql://marteau:secret-db-password-3@db/marteau",
    "CLOUD_API_TOKEN": "secret-cloud-token-4",
}
LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3"}


# -- no local node in public mode -------------------------------------------------


def serve_public(data_dir: Path) -> subprocess.CompletedProcess:
    """`marteau serve --public` that must refuse to start (it would serve for ever)."""
    command = [*MARTEAU, "serve", "--public", "--data-dir", str(data_dir), "--port", "9"]
    return subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        env=service_env(data_dir / "locks"),
    )


def test_public_serve_refuses_an_enabled_local_node(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    db = Database(f"sqlite:///{data_dir / 'marteau.db'}")
    upgrade(db)  # a team service's database: the embedded `localhost` node
    with db.write() as session:
        session.add(Node(name="lab1", pool="lab", vars={"ansible_connection": "LOCAL"}, created=1))
    run = serve_public(data_dir)
    assert run.returncode == 2, run.stdout + run.stderr
    assert (
        "Error: marteau serve --public: node(s) lab1, localhost have a local connection "
        "(ansible_connection=local): their jobs' test code would run on this machine."
    ) in run.stderr
    assert "Disable or remove them on the Nodes page" in run.stderr
    assert not (data_dir / "admin-password").exists()  # it stopped before anything else

    with db.write() as session:  # what the admin does on the Nodes page of a team start
        for node in session.query(Node):
            node.enabled = node.name != "lab1"
    run = serve_public(data_dir)
    assert run.returncode == 2 and "node(s) localhost have a local connection" in run.stderr
    db.dispose()


def test_public_serve_has_no_local_node_and_adds_or_enables_none(tmp_path: Path) -> None:
    service = Service(tmp_path / "data", tmp_path / "locks", workers=0, options=("--public",))
    try:
        admin = service.client(ADMIN, ADMIN_PASSWORD)
        assert admin.get("/api/nodes").json()["nodes"] == []  # no embedded localhost
        refused = admin.post("/api/nodes", json={"name": "here", "vars": LOCAL})
        assert refused.status_code == 400, refused.text
        assert refused.json()["detail"].startswith(
            "node here: ansible_connection=local would run other people's test code on "
            "the service's own machine: public mode (--public) refuses it"
        )
        batch = {"names": "n1, n2", "vars": {"ansible_connection": "local"}}
        refused = admin.post("/api/nodes/batch", json=batch)
        assert refused.status_code == 400 and "node n1: ansible_connection=local" in refused.text
        assert admin.get("/api/nodes").json()["nodes"] == []  # all or none
        ssh = admin.post("/api/nodes", json={"name": "n1", "vars": {"ansible_port": "2222"}})
        assert ssh.status_code == 201, ssh.text
    finally:
        service.stop()
    # a node made local behind the service's back (the database is shared) stays off
    db = Database(f"sqlite:///{tmp_path / 'data' / 'marteau.db'}")
    with db.write() as session:
        node = session.query(Node).filter_by(name="n1").one()
        node.enabled, node.vars = False, LOCAL
    db.dispose()
    service = Service(tmp_path / "data", tmp_path / "locks", workers=0, options=("--public",))
    try:
        admin = service.client(ADMIN, ADMIN_PASSWORD)
        refused = admin.post("/api/nodes/n1/enable")
        assert refused.status_code == 400 and "node n1: ansible_connection=local" in refused.text
        assert admin.get("/api/nodes").json()["nodes"][0]["enabled"] is False
    finally:
        service.stop()


def test_a_worker_in_public_mode_fails_a_job_on_a_local_node(tmp_path: Path) -> None:
    """The last line: a worker started with --public on a database another service
    filled runs nothing on a local node."""
    settings = Settings(data_dir=tmp_path / "data", public=True, poll_interval=0.05)
    db = Database(settings.db_url)
    upgrade(db)  # the embedded localhost node, enabled
    project = make_project(tmp_path / "project")
    with db.write() as session:
        # even found isolating jobs (root with sudo), a local node runs nothing
        session.query(Node).filter_by(name="localhost").one().status = ISOLATED
        owner = create_user(session, "owner@example.org", "owner-password")
        job = Job(
            owner_id=owner.id,
            source_kind="path",
            source_url=str(project),
            created=1.0,
            prepared=True,
            state="queued",
            pool="marteau",
            nodes_wanted=1,
            allowed_hosts=["127.0.0.1"],
        )
        session.add(job)
        session.flush()
        job_id = job.id
    job = run_queue(settings, db, job_id, timeout=60)
    db.dispose()
    assert (job.state, job.exit_code) == ("failed", 2)
    assert job.exit_reason.startswith("node localhost: ansible_connection=local would run")


@pytest.mark.parametrize(
    "monitor", ["[localhost]", "{prometheus: 'http://127.0.0.1:9090', queries: {a: up}}"]
)
def test_a_public_job_may_not_monitor_hosts(tmp_path: Path, monitor: str) -> None:
    """The monitor would run Marteau's agent on hosts the job did not lease (`localhost`:
    the service's own machine) or fetch a URL from the controller."""
    settings = Settings(data_dir=tmp_path / "data", public=True, poll_interval=0.05)
    db = Database(settings.db_url)
    upgrade(db, default_node=False)
    job_id = queue_job(db, make_project(tmp_path / "project", monitor=monitor))
    job = run_queue(settings, db, job_id, timeout=60)
    db.dispose()
    assert (job.state, job.exit_code) == ("failed", 2)
    assert job.exit_reason.startswith("bad input: .marteau.yml: monitor: not on a public service")


# -- default quotas of --public --------------------------------------------------------


def test_public_mode_starts_with_the_documented_quotas(tmp_path: Path) -> None:
    public = load_settings(data_dir=tmp_path, public=True)
    assert {name: getattr(public, name) for name in PUBLIC_QUOTAS} == {
        "quota_nodes_per_job": 2,
        "quota_users_per_node": 200,
        "quota_job_minutes": 30.0,
        "quota_disk_mb": 500.0,
        "quota_concurrent_jobs": 1,
        "quota_queued_jobs": 3,
    }
    config = tmp_path / "marteau.toml"
    config.write_text("public = true\nquota_nodes_per_job = 8\nquota_disk_mb = 0\n")
    changed = load_settings(config=config, quota_users_per_node=50)
    assert (changed.quota_nodes_per_job, changed.quota_disk_mb) == (8, 0.0)  # 0: no limit
    assert (changed.quota_users_per_node, changed.quota_job_minutes) == (50, 30.0)
    team = load_settings(data_dir=tmp_path)
    assert all(getattr(team, name) == 0 for name in PUBLIC_QUOTAS)
    # what a worker started by serve gets: the same limits
    worker_env = public.worker_env()
    assert worker_env["MARTEAU_QUOTA_USERS_PER_NODE"] == "200"


def test_the_service_passes_the_users_quota_and_the_host_check_to_marteau_run(
    tmp_path: Path,
) -> None:
    job = Job(id=3, overrides={}, allowed_hosts=["shop.example.org"])
    claim = Claim(3, [], "marteau")
    public = Settings(data_dir=tmp_path, public=True)
    args = run_arguments(job, claim, tmp_path, tmp_path, public, 5)
    assert args[args.index("--max-users") + 1] == "5" and "--strict-host" in args
    team = run_arguments(job, claim, tmp_path, tmp_path, Settings(data_dir=tmp_path))
    assert "--max-users" not in team and "--strict-host" not in team


# -- a job's environment -----------------------------------------------------------

DUMP_ENV = """
import json, os, sys
with open(sys.argv[1], "w") as f:
    json.dump(dict(os.environ), f)
"""


def test_the_worker_starts_a_job_with_an_allow_listed_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HTTP_PROXY_FOR_JOBS", "http://proxy.example:3128")
    dump, out = tmp_path / "dump_env.py", tmp_path / "env.json"
    dump.write_text(DUMP_ENV)
    settings = Settings(
        data_dir=tmp_path / "data",
        run_command=[sys.executable, str(dump), str(out)],
        smtp_password=SECRETS["MARTEAU_SMTP_PASSWORD"],
        job_env=["HTTP_PROXY_FOR_JOBS"],
        poll_interval=0.05,
    )
    db = Database(settings.db_url)
    upgrade(db)
    project = make_project(tmp_path / "project")
    with db.write() as session:
        job = Job(source_kind="path", source_url=str(project), created=1.0)
        session.add(job)
        session.flush()
        job_id = job.id
    job = run_queue(settings, db, job_id, timeout=60)
    db.dispose()
    assert job.state == "succeeded", job.exit_reason
    env = json.loads(out.read_text())
    assert env["MARTEAU_SERVICE_JOB"].endswith(f"/{job_id}") and env["PATH"] == os.environ["PATH"]
    assert env["HTTP_PROXY_FOR_JOBS"] == "http://proxy.example:3128"  # the admin's choice
    assert env["MARTEAU_KEEP_ENV"] == "HTTP_PROXY_FOR_JOBS"  # for the driver below
    leaked = [name for name, value in SECRETS.items() if value in json.dumps(env)]
    assert not leaked
    assert not [name for name in env if name.startswith("MARTEAU_") and "SMTP" in name]


# -- what ansible-runner passes to ansible-playbook (and to a local node's tasks) ----

ENV_PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: The environment a task on a local node gets
      ansible.builtin.command: env
"""


@pytest.mark.parametrize("scrubbed", [True, False])
def test_the_driver_drops_what_ansible_runner_inherits_beyond_the_allow_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scrubbed: bool
) -> None:
    """A real ansible-playbook on a local connection: `marteau run` by hand, or under
    a worker whose own environment holds a secret, passes it to no task."""
    import ansible_runner

    from marteau.orchestration import content_dir
    from marteau.orchestration.driver import Ansible, _run_scrubbed

    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MARTEAU_KEEP_ENV", "KEPT_FOR_JOBS")
    monkeypatch.setenv("KEPT_FOR_JOBS", "kept-value")
    playbook = tmp_path / "env.yml"
    playbook.write_text(ENV_PLAYBOOK)
    (tmp_path / "private").mkdir()
    run = _run_scrubbed if scrubbed else ansible_runner.run  # the control: runner's own
    result = run(
        private_data_dir=str(tmp_path / "private"),
        playbook=str(playbook),
        inventory=str(content_dir() / "inventory" / "localhost.ini"),
        envvars=Ansible(tmp_path / "run").envvars(),
        settings={"suppress_ansible_output": True},
        quiet=True,
        suppress_env_files=True,
    )
    assert result.status == "successful", result.stdout.read()
    (stdout,) = [
        event["event_data"]["res"]["stdout"]
        for event in result.events
        if event.get("event") == "runner_on_ok"
    ]
    env = dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)
    leaked = sorted(name for name, value in SECRETS.items() if value in stdout)
    if not scrubbed:  # what issue 11 found: runner hands the caller's secrets on
        assert leaked == sorted(SECRETS)
        return
    assert leaked == []
    assert env["KEPT_FOR_JOBS"] == "kept-value" and env["ANSIBLE_CONFIG"].endswith("ansible.cfg")
    assert env["LC_ALL"] == "C.UTF-8"


# -- a real public job on a real sshd node: the users quota --------------------------

NOSY_TEST = """
import json
import os

from funkload.FunkLoadTestCase import FunkLoadTestCase


class Greedy(FunkLoadTestCase):
    def conf_get(self, section, key, *args, **kwargs):
        if (section, key) == ("bench", "cycles"):
            return "12"  # more than the conf's 2, and than the quota of 5
        return super().conf_get(section, key, *args, **kwargs)

    def test_get(self):
        self.post(
            self.conf_get("main", "url") + "/env",
            params=[("thread", str(self.thread_id)), ("env", json.dumps(dict(os.environ)))],
            description="What the test sees",
        )
"""


def check_sshd_node(db: Database, settings: Settings, nodes: NodeSet, tmp_path: Path) -> dict:
    """The first sshd node in pool `marteau` (made on the first call), checked for real
    (`marteau nodes check`: its status says whether it isolates jobs)."""
    with db.write() as session:
        node = session.query(Node).filter_by(name=nodes.nodes[0].name).one_or_none()
        if node is None:
            inventory = nodes.write_inventory(tmp_path / "nodes.ini", group="marteau")
            node_line = inventory.read_text().splitlines()[1].split()
            group_vars = [line for line in inventory.read_text().splitlines() if "=" in line][3:]
            variables = dict(item.split("=", 1) for item in node_line[1:])
            variables.update(dict(line.split("=", 1) for line in group_vars))
            variables["ansible_ssh_common_args"] = variables["ansible_ssh_common_args"].strip("'")
            node = Node(name=node_line[0], pool="marteau", vars=variables, created=1)
            session.add(node)
            session.flush()
        session.expunge(node)
    return check_now(db, settings, node)


def test_public_mode_runs_jobs_only_on_nodes_that_isolate_them(
    tmp_path: Path, sshd_nodes: NodeSet
) -> None:
    """A node whose user has no passwordless sudo runs jobs as that user: public mode
    fails a job that would need it, saying why; once sudo is given and the node
    checked again, it is isolated."""
    settings = Settings(data_dir=tmp_path / "data", public=True, poll_interval=0.05)
    db = Database(settings.db_url)
    upgrade(db, default_node=False)
    node = sshd_nodes.nodes[0]
    node.revoke_sudo()
    try:
        checked = check_sshd_node(db, settings, sshd_nodes, tmp_path)
        assert checked["check"] == "reachable", checked["output"]
        assert f"{node.name}: jobs isolated: no: no passwordless sudo" in checked["output"]
        job_id = queue_job(db, make_project(tmp_path / "project"))
        job = run_queue(settings, db, job_id, timeout=60)
    finally:
        node.grant_sudo()
    assert (job.state, job.exit_code) == ("failed", 2), job.exit_reason
    assert (
        "pool 'marteau' has 0 node(s) whose jobs are isolated, the job wants 1: in public "
        "mode a job runs only on nodes where `marteau nodes check` says 'jobs isolated: yes'"
    ) in job.exit_reason
    assert check_sshd_node(db, settings, sshd_nodes, tmp_path)["check"] == ISOLATED
    db.dispose()


def test_a_public_job_runs_the_users_quota_whatever_the_test_asks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sshd_nodes: NodeSet
) -> None:
    """`--public` defaults plus a users-per-node quota of 5: a real `marteau run`
    through the service on an sshd node; the test's code asks 12 users per cycle."""
    seen: list[dict[str, list[str]]] = []

    def record(request: Request):  # type: ignore[no-untyped-def]
        seen.append(parse_qs(request.body.decode()))
        return ok("noted")

    config = tmp_path / "marteau.toml"
    config.write_text(
        "public = true\nquota_users_per_node = 5\nverify_interval = 0\n"
        'verify_allow_networks = "127.0.0.0/8"\n'  # the target is on this machine
    )
    settings = load_settings(
        config=config, data_dir=tmp_path / "data", poll_interval=0.2, lease_ttl=30
    )
    for name, value in SECRETS.items():  # in the worker's environment from now on
        monkeypatch.setenv(name, value)
    db = Database(settings.db_url)
    upgrade(db, default_node=False)
    assert check_sshd_node(db, settings, sshd_nodes, tmp_path)["check"] == ISOLATED
    project = tmp_path / "project"
    project.mkdir()
    with LocalServer(routes={"/env": record}) as target:
        (project / "greedy.py").write_text(NOSY_TEST)
        (project / "Greedy.conf").write_text(GREEDY_CONF.format(url=target.url))
        (project / ".marteau.yml").write_text("script: greedy.py\ntest: Greedy.test_get\n")
        with db.write() as session:
            owner = create_user(session, "owner@example.org", "owner-password")
            session.flush()
            owner_id = owner.id
        row = hosts.add_host(db, owner_id, f"127.0.0.1:{target.port}")
        target.routes[f"/{row.token}"] = lambda request: ok(row.token)
        with db.write() as session:
            job = Job(owner_id=owner_id, source_kind="path", source_url=str(project), created=1)
            session.add(job)
            session.flush()
            job_id = job.id
        job = run_queue(settings, db, job_id, timeout=600)
    db.dispose()
    console = (settings.job_dir(job_id) / "console.log").read_text()
    assert job.state == "succeeded", console
    assert "--max-users 5" in console and "--strict-host" in console
    forms = [form for form in seen if "thread" in form]
    assert {int(form["thread"][0]) for form in forms} == set(range(5)), console  # not 12
    leaked = {name for name, value in SECRETS.items() for form in forms if value in str(form)}
    assert not leaked
    (results,) = (settings.job_dir(job_id) / "runs").rglob("results/*/bench.mrt")
    config_items = load(str(results)).config
    assert (config_items["cycles"], config_items["marteau:cycles_asked"]) == ("[5]", "[12]")
    assert config_items["marteau:strict_host"] == "true"
    log = (results.parent / "bench.log").read_text()
    assert "* Max users: the cycle asks 12 users, --max-users 5 runs 5" in log
