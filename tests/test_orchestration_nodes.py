"""`marteau run` and the playbooks against three real sshd nodes (tests/nodes.py).

No mocks: real ansible-runner, real ssh to 127.0.0.2-4, real benches
against a real HTTP server on 127.0.0.1. The node set is shared by the
whole module; the first test provisions it cold, the others run warm.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from marteau.orchestration import content_dir
from marteau.orchestration.driver import Ansible
from marteau.orchestration.prepare import job_vars, new_job_id
from marteau.orchestration.project import locate
from marteau.results import load
from tests.nodes import NodeSet
from tests.servers import LocalServer, free_port, ok
from tests.support.commands import MARTEAU
from tests.support.node_runs import (
    POOL,
    RUN_TIMEOUT,
    ansible_env,
    assert_nodes_clean,
    lock_file,
    marteau_run,
    plant_lock,
    run_dir_of,
    summary,
)
from tests.support.projects import CONF, TEST, Logins, login_project


@pytest.fixture(scope="module")
def target():
    with LocalServer(routes={"/": lambda request: ok("hello")}) as server:
        yield server


@pytest.fixture(scope="module")
def project(tmp_path_factory, target) -> Path:
    root = tmp_path_factory.mktemp("project")
    (root / "loadtest.py").write_text(TEST)
    (root / "Tiny.conf").write_text(CONF.format(url=target.url))
    (root / ".marteau.yml").write_text("name: Tiny\nscript: loadtest.py\ntest: Tiny.test_get\n")
    return root


def node_counts(run_dir: Path) -> dict[str, tuple[int, int]]:
    """{node: (responses, tests)} from each node's own result files (a bench stopped
    before it combined its workers' files leaves one per worker: all are reported)."""
    counts: dict[str, tuple[int, int]] = {}
    for path in sorted((run_dir / "results").glob("*/*.mrt")):
        results = load(str(path))
        responses, tests = counts.get(path.parent.name, (0, 0))
        counts[path.parent.name] = (responses + len(results.responses), tests + len(results.tests))
    return counts


def test_provision_twice_changes_nothing(
    nodes: NodeSet, inventory: Path, project: Path, tmp_path: Path
) -> None:
    job = new_job_id()
    variables = job_vars(locate(str(project)), tmp_path / "run", job)
    variables["marteau_hosts"] = POOL
    ansible = Ansible(tmp_path / "run", inventory)
    first = ansible.play("provision", variables)
    assert first.ok, first.failure_messages()
    second = ansible.play("provision", variables)
    assert second.ok, second.failure_messages()
    assert sorted(second.hosts_with("ok")) == nodes.names()
    assert second.hosts_with("changed") == set(), "a second provision changed something"
    assert (tmp_path / "run" / "ansible.log").read_text().count("PLAY RECAP") == 2


def test_three_node_split_run_takes_over_an_expired_lock(
    nodes: NodeSet, inventory: Path, project: Path, tmp_path: Path
) -> None:
    stale = nodes.nodes[1]
    plant_lock(stale, job="dead-job", owner="ghost@nowhere", taken=1, expires=2)
    started = time.monotonic()
    result = marteau_run(
        project, inventory, tmp_path, "--nodes", "3", "--split", "-c", "3:6", "-D", "2"
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert "took over the expired lock of job dead-job" in result.stdout
    run_dir = run_dir_of(result.stdout)
    provenance = json.loads((run_dir / "run.json").read_text())
    assert provenance["split"] is True and provenance["total_users_per_cycle"] == "3:6"
    assert provenance["completed"] == nodes.names() and provenance["missing"] == {}
    assert all(abs(offset) < 0.5 for offset in provenance["clock_offsets"].values())
    assert "total users per cycle 3:6" in result.stdout.replace("\n", " ")
    for name in nodes.names():
        node_json = json.loads((run_dir / "results" / name / "node.json").read_text())
        assert node_json["cycles"] == "1:2", node_json
        assert node_json["facts"]["python"].startswith("3.")
    counts = node_counts(run_dir)
    assert sorted(counts) == nodes.names()
    totals = summary(run_dir / "report")["totals"]
    assert totals["requests"] == sum(c[0] for c in counts.values()) > 0
    assert totals["tests"] == sum(c[1] for c in counts.values())
    assert_nodes_clean(nodes)
    print(f"3-node split run: {elapsed:.1f}s")


@pytest.fixture
def busy_cores():
    """Both cores kept busy by another process for the length of the test."""
    if not shutil.which("stress-ng"):
        pytest.skip("stress-ng is missing (make system-deps)")
    hog = subprocess.Popen(
        ["stress-ng", "--cpu", "2", "--timeout", "600", "--quiet"], start_new_session=True
    )
    try:
        time.sleep(1)
        assert hog.poll() is None, "stress-ng did not start"
        yield
    finally:
        os.killpg(hog.pid, signal.SIGTERM)
        hog.wait(timeout=30)


def test_nodes_on_two_busy_cores_arm_then_record_every_cycle(
    nodes: NodeSet, inventory: Path, project: Path, tmp_path: Path, busy_cores: None
) -> None:
    """The start barrier: each bench arms, then the start instant is chosen with a lead
    measured on this busy machine, so no node starts late (bench/busy_start.py: 8 nodes)."""
    result = marteau_run(project, inventory, tmp_path, "--nodes", "3", "-c", "1:2", "-D", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "LOAD LOST" not in result.stdout and "every node armed: fan-out" in result.stdout
    run_dir = run_dir_of(result.stdout)
    provenance = json.loads((run_dir / "run.json").read_text())
    assert provenance["lost"] == {} and provenance["completed"] == nodes.names()
    barrier = provenance["start_barrier"]
    assert barrier["fanout"] > 0 and "lead" in barrier
    for name in nodes.names():
        (path,) = (run_dir / "results" / name).glob("*.mrt")
        assert set(load(str(path)).tests["cycle"].tolist()) == {0, 1}, name
    assert not [w for w in summary(run_dir / "report")["warnings"] if "load lost" in w]


def test_plain_ansible_playbook_gives_the_same_results_directory(
    nodes: NodeSet, inventory: Path, project: Path, tmp_path: Path
) -> None:
    env = ansible_env()
    command = [
        "ansible-playbook",
        "-i",
        str(inventory),
        str(content_dir() / "playbooks" / "loadtest.yml"),
        "-e",
        f"marteau_project={project}",
        "-e",
        f"marteau_pool={POOL}",
        "-e",
        "marteau_nodes=3",
        "-e",
        "marteau_run_dir=" + str(tmp_path / "run"),
        "-e",
        '{"marteau_cycles": "2", "marteau_duration": 4}',
    ]
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=env
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    run_dir = tmp_path / "run"
    for name in nodes.names():
        files = sorted(p.name for p in (run_dir / "results" / name).iterdir())
        assert files == ["bench.log", "node.json", "tiny-bench.mrt"], files
        assert json.loads((run_dir / "results" / name / "node.json").read_text())["cycles"] == "2"
    counts = node_counts(run_dir)
    assert (
        summary(run_dir / "report")["totals"]["requests"] == sum(c[0] for c in counts.values()) > 0
    )
    assert_nodes_clean(nodes)


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def start_run(project: Path, inventory: Path, cwd: Path, *args: str) -> subprocess.Popen:
    command = [MARTEAU, "run", str(project), "-i", str(inventory), "--pool", POOL, "--plain", *args]
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def request_span(run_dir: Path, node: str) -> tuple[float, float]:
    (path,) = (run_dir / "results" / node).glob("*.mrt")
    times = load(str(path)).responses["time"]
    return float(times.min()), float(times.max())


def test_a_project_naming_its_nodes_runs_on_exactly_those(
    nodes: NodeSet, inventory: Path, project: Path, tmp_path: Path
) -> None:
    """`nodes: [NAME]` in .marteau.yml: that node, not the first free one in sorted
    order; a name outside the pool is bad input, before any node is locked."""
    chosen = sorted(nodes.names())[-1]
    named = tmp_path / "named"
    shutil.copytree(project, named)
    config = (project / ".marteau.yml").read_text()
    (named / ".marteau.yml").write_text(config + f"nodes: [{chosen}]\n")
    run = marteau_run(named, inventory, tmp_path / "a", "-c", "1", "-D", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    run_dir = run_dir_of(run.stdout)
    assert json.loads((run_dir / "run.json").read_text())["nodes"] == [chosen]
    assert list(node_counts(run_dir)) == [chosen]

    (named / ".marteau.yml").write_text(config + f"nodes: [{chosen}, elsewhere]\n")
    refused = marteau_run(named, inventory, tmp_path / "b", "-c", "1", "-D", "1")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f".marteau.yml:4: key 'nodes': elsewhere not in pool '{POOL}'" in refused.stderr
    assert not list((tmp_path / "b").glob("marteau-runs/*/results")), "the refused run ran"
    assert_nodes_clean(nodes)


def test_runs_contending_for_the_same_nodes_wait_or_fail_cleanly(
    nodes: NodeSet, inventory: Path, project: Path, tmp_path: Path
) -> None:
    # 10 s: the failing run below must find the first one's locks, however slowly a
    # busy machine starts its Ansible
    first = start_run(project, inventory, tmp_path / "a", "--nodes", "3", "-c", "1", "-D", "10")
    waiting = None
    try:
        wait_for(
            lambda: all(lock_file(n).exists() for n in nodes.nodes), 60, "the first run's locks"
        )
        holder = json.loads(lock_file(nodes.nodes[0]).read_text())["job"]
        # One that waits for the nodes, one that gives up after 2 s.
        waiting = start_run(
            project, inventory, tmp_path / "b", "--nodes", "2", "--lock-timeout", "120"
        )
        failing = marteau_run(
            project, inventory, tmp_path / "c", "--nodes", "2", "--lock-timeout", "2"
        )
        out, err = first.communicate(timeout=RUN_TIMEOUT)
        waited_out, waited_err = waiting.communicate(timeout=RUN_TIMEOUT)
    finally:
        for process in (first, waiting):
            if process is not None and process.poll() is None:
                process.kill()
    assert first.returncode == 0, out + err
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "could not lock 2 free node(s)" in failing.stderr
    for name in nodes.names():
        assert f"{name} held by job {holder}" in failing.stderr
    assert not list((tmp_path / "c").glob("marteau-runs/*/results")), "the failed run used a node"
    assert waiting.returncode == 0, waited_out + waited_err
    assert "waiting for 2 free node(s)" in waited_out
    first_dir, second_dir = run_dir_of(out), run_dir_of(waited_out)
    second_nodes = json.loads((second_dir / "run.json").read_text())["nodes"]
    assert len(second_nodes) == 2
    for node in second_nodes:  # no node served both runs at once
        assert request_span(first_dir, node)[1] < request_span(second_dir, node)[0]
    assert_nodes_clean(nodes)


def test_cancel_mid_bench_stops_everything_and_keeps_partial_results(
    nodes: NodeSet, inventory: Path, project: Path, tmp_path: Path
) -> None:
    run = start_run(
        project,
        inventory,
        tmp_path,
        "--nodes",
        "3",
        "-c",
        "2:2",
        "-D",
        "3",
        "--bench-timeout",
        "120",
    )
    try:
        wait_for(
            lambda: all("Cycle #1 with" in n.bench_log() for n in nodes.nodes),
            120,
            "the second cycle on every node (the first is on disk)",
        )
        cancelled_at = time.monotonic()
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            run.kill()
    took = time.monotonic() - cancelled_at
    assert run.returncode == 128 + signal.SIGINT, out + err
    run_dir = run_dir_of(out)
    provenance = json.loads((run_dir / "run.json").read_text())
    assert provenance["cancelled"] is True
    counts = node_counts(run_dir)
    assert sorted(counts) == nodes.names(), out
    assert all(responses > 0 for responses, _ in counts.values())
    assert summary(run_dir / "report")["totals"]["requests"] == sum(c[0] for c in counts.values())
    assert_nodes_clean(nodes)
    print(f"cancel to clean exit: {took:.1f}s")


def test_a_node_killed_mid_run_does_not_lose_the_others(
    nodes: NodeSet, inventory: Path, project: Path, tmp_path: Path
) -> None:
    victim = nodes.nodes[2]
    run = start_run(
        project, inventory, tmp_path, "--nodes", "3", "-c", "1", "-D", "6", "--bench-timeout", "60"
    )
    try:
        wait_for(lambda: all(n.bench_processes() for n in nodes.nodes), 60, "the benches")
        victim.kill_sshd()
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 4, out + err  # exits.INCOMPLETE: a node's load is missing
    assert f"Missing nodes: {victim.name}" in out
    run_dir = run_dir_of(out)
    provenance = json.loads((run_dir / "run.json").read_text())
    survivors = [n for n in nodes.names() if n != victim.name]
    assert provenance["completed"] == survivors and victim.name in provenance["missing"]
    counts = node_counts(run_dir)
    assert sorted(counts) == survivors
    report = summary(run_dir / "report")
    assert report["totals"]["requests"] == sum(c[0] for c in counts.values()) > 0
    # the report names the nodes as the inventory does, and the missing one with its reason
    assert [n["name"] for n in report["nodes"]] == survivors
    assert report["missing_nodes"] == [
        {"node": victim.name, "reason": provenance["missing"][victim.name]}
    ]
    (warning,) = [w for w in report["warnings"] if victim.name in w]
    assert warning.startswith(f"node {victim.name}: missing from this report (")
    (page,) = (run_dir / "report").rglob("index.html")
    assert "What was skipped or tolerated" in page.read_text()
    assert f"node {victim.name}: missing from this report" in page.read_text()
    for node in nodes.nodes[:2]:
        assert not lock_file(node).exists()
        assert node.bench_processes() == []


def test_nodes_list_check_unlock(nodes: NodeSet, inventory: Path) -> None:
    held = nodes.nodes[0]
    now = time.time()
    plant_lock(held, job="other-job", owner="someone@elsewhere", taken=now, expires=now + 600)
    base = ["-i", str(inventory), "--pool", POOL]
    listed = subprocess.run(
        [MARTEAU, "nodes", "list", *base], capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    lines = {
        line.split()[0]: line
        for line in listed.stdout.splitlines()
        if line.strip().startswith(nodes.prefix)
    }
    assert "locked" in lines[held.name] and "job other-job of someone@elsewhere" in lines[held.name]
    assert all("free" in lines[n.name] and "ms" in lines[n.name] for n in nodes.nodes[1:])
    as_json = subprocess.run(
        [MARTEAU, "nodes", "list", "--json", *base], capture_output=True, text=True, timeout=60
    )
    rows = {row["node"]: row for row in json.loads(as_json.stdout)}
    assert rows[held.name]["lock"]["job"] == "other-job", rows
    assert all(rows[n.name]["reachable"] and not rows[n.name]["lock"] for n in nodes.nodes[1:])
    assert all(isinstance(row["clock"], float) for row in rows.values()), rows
    nodes.nodes[2].kill_sshd()
    checked = subprocess.run(
        [MARTEAU, "nodes", "check", *base], capture_output=True, text=True, timeout=90
    )
    assert checked.returncode == 1 and "unreachable" in checked.stdout, (
        checked.stdout + checked.stderr
    )
    nodes.nodes[2].start()
    kept = subprocess.run(
        [MARTEAU, "nodes", "unlock", *base, "--job", "mine", held.name],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"{held.name}: kept, held by job other-job" in kept.stdout and lock_file(held).exists()
    freed = subprocess.run(
        [MARTEAU, "nodes", "unlock", *base, "--force", held.name],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert freed.returncode == 0, freed.stdout + freed.stderr
    assert f"{held.name}: released (was job other-job of someone@elsewhere)" in freed.stdout
    assert not lock_file(held).exists()


def test_a_clock_beyond_the_bound_stops_the_run(
    nodes: NodeSet, inventory: Path, project: Path, tmp_path: Path
) -> None:
    result = marteau_run(project, inventory, tmp_path, "--nodes", "3", "--max-clock-offset", "-1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "controller's (bound -1" in result.stdout.replace("\n", " ")
    assert not list(tmp_path.glob("marteau-runs/*/results/*/*.mrt")), "a node benched anyway"
    assert_nodes_clean(nodes)


def test_three_nodes_never_hand_out_the_same_login(
    nodes: NodeSet, inventory: Path, tmp_path: Path
) -> None:
    """`credentials` in .marteau.yml: each node serves its own slice, so the 9 users of
    three nodes (3 each) log in with 9 different accounts of a 12-login file."""

    logins = Logins({f"user{i}": f"pw{i}" for i in range(12)})
    with LocalServer(routes={"/login": logins}) as target:
        project = tmp_path / "project"
        project.mkdir()
        login_project(project, target.url, free_port(), users=3, logins=12)
        (project / ".marteau.yml").write_text(
            "script: test_Login.py\ntest: Login.test_login\ncredentials: credential.conf\n"
        )
        result = marteau_run(project, inventory, tmp_path / "run", "--nodes", "3", "-D", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    by_user = logins.logins_by_user()
    assert len(by_user) == 9, by_user
    assert all(len(found) == 1 for found in by_user.values()), by_user
    assert len(set().union(*by_user.values())) == 9
    assert_nodes_clean(nodes)
